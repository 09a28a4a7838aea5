"""Small sources for engine tests: a ``things`` table and a mapping for it."""

from __future__ import annotations

THINGS_DDL = """
CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10, 2), active BOOLEAN,
  updated_at TIMESTAMP, tags JSON);
"""


def things_rows(count: int, start: int = 1) -> list[dict]:
    return [
        {
            "id": number,
            "name": f"thing {number}",
            "price": f"{number}.50",
            "active": number % 2,
            "updated_at": f"2025-01-01T00:00:{number % 60:02d}+00:00",
            "tags": '["a", "b"]',
        }
        for number in range(start, start + count)
    ]


def things_mapping(table: str = "Things", **extra) -> dict:
    rule = {
        "rule-type": "object-mapping",
        "rule-id": "1",
        "rule-name": "things",
        "rule-action": "map-record-to-record",
        "object-locator": {"schema-name": "main", "table-name": "things"},
        "target-table-name": table,
        "mapping-parameters": {
            "partition-key-name": "PK",
            "attribute-mappings": [
                {
                    "target-attribute-name": "PK",
                    "attribute-type": "scalar",
                    "attribute-sub-type": "string",
                    "value": "THING#${id}",
                }
            ],
        },
        "changed-at-column": "updated_at",
        **extra,
    }
    return {"rules": [rule]}


def drain_queue(queue: list[int], chain_seconds: float = 60.0) -> None:
    """Every queued unit message, as Celery workers would deliver them: each a unit task with a chain of
    ``chain_seconds``, the units its cuts queue appended; a unit another runner holds is skipped."""
    from migration_app.services.runs import UnitLeased, segment_run

    while queue:
        try:
            segment_run(
                segment_id=queue.pop(0), on_unit=lambda unit: queue.append(unit.pk), chain_seconds=chain_seconds
            )
        except UnitLeased:
            continue
