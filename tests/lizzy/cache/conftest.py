"""The cache table on moto's HTTP endpoint, once per test class (Django's TestCase classes included)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.test import override_settings

from lizzy.cache_backend import CACHE_TABLE
from lizzy.dynamodb import reset_client
from lizzy.tables import table_ensure


@pytest.fixture(scope="class")
def cache_table_over_http(dynamodb_server_url: str) -> Iterator[str]:
    """A ``LizzyCache`` table of this class's own (a unique LIZZY_ENV) on the HTTP endpoint."""
    with override_settings(AWS_ENDPOINT_URL_DYNAMODB=dynamodb_server_url, LIZZY_ENV=f"c{uuid.uuid4().hex[:10]}"):
        reset_client()
        table_ensure(spec=CACHE_TABLE)
        yield dynamodb_server_url
    reset_client()
