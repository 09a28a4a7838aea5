import pytest

from tests.migration_app.conftest import make_source, mariadb_source, sqlite_source  # noqa: F401 - the fixtures
from tests.review_chain.helpers import sent  # noqa: F401 - the fixture


@pytest.fixture
def postgres_url(postgres_url):
    """The session's server, its ``postgres`` database (every server has it; DATABASE_URL's may not exist:
    the suite's own is pytest-django's ``test_`` copy)."""
    return postgres_url.rsplit("/", 1)[0] + "/postgres"
