"""Sources (the pipeline's extract stage): one base class, one module per engine, chosen by URL scheme here.

``base.SqlSource`` states the contract (describe tables, stream pages in key order, count, cut segments);
``postgres``, ``mysql``, ``sqlite`` and ``duckdb`` implement it. Engine modules are imported when their
scheme is used, so a deployment without DuckDB files never loads DuckDB.
"""

from __future__ import annotations

from importlib import import_module
from urllib.parse import urlparse

from migration_app.sources.base import (
    ERR_SCHEME,
    KEY,
    ROWID,
    FilterCondition,
    Relation,
    SourceError,
    SourceFilter,
    SqlSource,
)

ENGINES = {
    "postgres": "migration_app.sources.postgres.PostgresSource",
    "postgresql": "migration_app.sources.postgres.PostgresSource",
    "mysql": "migration_app.sources.mysql.MysqlSource",
    "mariadb": "migration_app.sources.mysql.MysqlSource",
    "sqlite": "migration_app.sources.sqlite.SqliteSource",
    "duckdb": "migration_app.sources.duckdb.DuckdbSource",
    "redis": "migration_app.sources.redis.RedisSource",  # issue 17: keys by pattern, not tables
}


def source_open(*, url: str) -> SqlSource:
    """The source for a URL (postgres://, mysql://, sqlite:///FILE, duckdb:///FILE)."""
    scheme = urlparse(url).scheme
    if scheme not in ENGINES:
        raise SourceError(ERR_SCHEME.format(scheme=scheme))
    module_name, class_name = ENGINES[scheme].rsplit(".", 1)
    return getattr(import_module(module_name), class_name)(url)


__all__ = ["KEY", "ROWID", "FilterCondition", "Relation", "SourceError", "SourceFilter", "SqlSource", "source_open"]
