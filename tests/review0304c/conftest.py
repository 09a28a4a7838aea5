from tests.migration_app.conftest import sqlite_source  # noqa: F401 - the fixture, for this directory
from tests.review_chain.helpers import sent  # noqa: F401 - the fixture
