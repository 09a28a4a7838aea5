"""The migration app's fixtures (a SQLite source, backups in tmp, moto's binary-key scans) for these tests."""

from tests.migration_app.conftest import _backups_in_tmp, _moto_scans_binary_keys, sqlite_source  # noqa: F401
