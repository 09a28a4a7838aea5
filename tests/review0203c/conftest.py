"""Fixtures of the issue-14 third-round review probes: the migration app's source databases and backups in tmp."""

from tests.migration_app.conftest import (  # noqa: F401
    _backups_in_tmp,
    _moto_scans_binary_keys,
    make_source,
    mariadb_source,
    postgres_source,
    sqlite_source,
)
