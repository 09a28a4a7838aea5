"""Every key a mapping may use, at every level, and the check that refuses any other.

A DMS file with a misspelt key (``sort-key-nam``) used to be accepted and the key ignored: the table then
got the wrong keys. Here an unknown key is an error naming its JSON path and the nearest valid key
(difflib); a DMS key the engine does not implement is refused with its path as well, never ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

ERR_UNKNOWN_KEY = "unknown key {key!r} at {path}{hint}"
ERR_NOT_IMPLEMENTED = "{path}: {key!r} is a DMS setting this engine does not implement; remove it"

TOP_LEVEL = frozenset({"rules", "tables"})
SELECTION_RULE = frozenset({"rule-type", "rule-id", "rule-name", "object-locator", "rule-action", "filters"})
SELECTION_LOCATOR = frozenset({"schema-name", "table-name", "table-type"})
FILTER = frozenset({"filter-type", "column-name", "filter-conditions"})
FILTER_CONDITION = frozenset({"filter-operator", "value", "start-value", "end-value"})
OBJECT_RULE = frozenset(
    {
        "rule-type",
        "rule-id",
        "rule-name",
        "rule-action",
        "object-locator",
        "target-table-name",
        "mapping-parameters",
        # extensions (docs/MIGRATIONS.md)
        "source-query",
        "source-key",
        "entity-type",
        "ttl",
        "timestamps",
        "keep-nulls",
        "changed-at-column",
        "document-attribute-name",
        "key-types",
        "column-types",
        "key-collisions",
    }
)
OBJECT_LOCATOR = frozenset({"schema-name", "table-name"})
MAPPING_PARAMETERS = frozenset(
    {"partition-key-name", "sort-key-name", "exclude-columns", "attribute-mappings", "condition-expression"}
)
ATTRIBUTE_MAPPING = frozenset({"target-attribute-name", "attribute-type", "attribute-sub-type", "value"})
TABLE_OPTIONS = frozenset({"global-secondary-indexes", "ttl-attribute"})
GSI = frozenset({"index-name", "partition-key-name", "sort-key-name", "key-types"})

# DMS keys with a meaning this engine does not give them (refused: ignoring them would change the result).
NOT_IMPLEMENTED = frozenset(
    {"load-order", "parallel-load", "lob-settings", "apply-during-cdc", "filter-type-cdc", "object-type"}
)


def unknown_key_problem(keys: Iterable[str], allowed: frozenset[str], path: str) -> str | None:
    """The problem with the first key of ``keys`` not in ``allowed`` (None when all are known)."""
    for key in keys:
        if key in allowed:
            continue
        if key in NOT_IMPLEMENTED:
            return ERR_NOT_IMPLEMENTED.format(path=f"{path}.{key}", key=key)
        close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(sorted(allowed))})"
        return ERR_UNKNOWN_KEY.format(key=key, path=f"{path}.{key}", hint=hint)
    return None


def keys_of(node: Any) -> list[str]:
    return list(node) if isinstance(node, Mapping) else []
