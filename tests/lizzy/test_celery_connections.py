"""lizzy.celery's connection receivers leave a task run eagerly alone: it runs in its caller's transaction."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from lizzy.celery import app


@app.task(name="tests.eager_boom")
def eager_boom() -> None:
    Group.objects.create(name="written by the task")
    raise RuntimeError("failed on purpose")


@pytest.mark.django_db
def test_an_eager_task_that_fails_leaves_its_callers_connection_and_transaction():
    Group.objects.create(name="written by the caller")
    opened = connection.connection
    result = eager_boom.apply(throw=False)
    assert result.failed()
    assert connection.connection is opened, "the caller's connection was closed under its transaction"
    assert set(Group.objects.values_list("name", flat=True)) >= {"written by the caller", "written by the task"}
