"""Plans: find, check, save, and bind one to its source (the context every stage works in).

``plan_context`` is what the stages share: the checked mapping, its entities resolved against an open
source connection, and the target table specs. Nothing here runs or dispatches anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lizzy.dynamodb import dynamodb_describe_table
from lizzy.errors import NotFound
from lizzy.tables import TableSpec, table_ensure
from migration_app.models import MigrationPlan
from migration_app.services.backups import backup_pitr_enable
from migration_app.services.mapping import (
    EntityMapping,
    MappingError,
    TableMapping,
    mapping_parse,
    mapping_resolve,
    table_specs,
)
from migration_app.sources import SqlSource, source_open

ERR_PLAN_MISSING = "No migration plan {plan!r}. Known plans: {known}."
ERR_UNEXACT = (
    "column {column!r} holds {value}, which DynamoDB cannot store exactly (38 significant digits, 1E-130 to 9.99E+125)"
)


@dataclass
class PlanContext:
    plan: MigrationPlan
    mapping: TableMapping
    entities: list[EntityMapping]
    source: SqlSource
    specs: list[TableSpec]
    pitr: dict[str, str] = field(default_factory=dict)  # plan_setup_tables: point-in-time recovery per table

    def entity(self, name: str) -> EntityMapping:
        return next(entity for entity in self.entities if entity.name == name)


@contextmanager
def plan_context(*, plan: MigrationPlan) -> Iterator[PlanContext]:
    """The plan's mapping checked and bound to an open source connection."""
    mapping = mapping_parse(document=plan.mapping)
    source = source_open(url=plan.source_url)
    try:
        entities = mapping_resolve(mapping=mapping, source=source)
        specs = table_specs(mapping=mapping, entities=entities)
        yield PlanContext(plan, mapping, entities, source, specs)
    finally:
        source.close()


def plan_get(*, name_or_id: str | int) -> MigrationPlan:
    text = str(name_or_id)
    plan = MigrationPlan.objects.filter(name=text).first()
    if plan is None and text.isdigit():
        plan = MigrationPlan.objects.filter(pk=int(text)).first()
    if plan is None:
        known = ", ".join(MigrationPlan.objects.values_list("name", flat=True)) or "none"
        raise NotFound(ERR_PLAN_MISSING.format(plan=text, known=known))
    return plan


def plan_check(*, mapping: dict[str, Any], source_url: str, probe_values: bool = False) -> list[EntityMapping]:
    """Check a mapping against its source without writing anything (raises MappingError).

    ``probe_values`` (``--check``) also asks the source for values DynamoDB cannot hold exactly, where the
    engine can find them with a query (PostgreSQL, MySQL/MariaDB): the column is named before anything runs.
    """
    parsed = mapping_parse(document=mapping)
    with source_open(url=source_url) as source:
        entities = mapping_resolve(mapping=parsed, source=source)
        table_specs(mapping=parsed, entities=entities)
        if probe_values:
            for entity in entities:
                read = {c: t for c, t in entity.declared_types.items() if c not in entity.exclude}
                found = source.unexact_values(source.relation(entity), columns=read)
                if found:
                    problems = "; ".join(ERR_UNEXACT.format(column=column, value=value) for column, value in found)
                    raise MappingError(entity.rule, "object-locator" if entity.table else "source-query", problems)
    return entities


def plan_save(
    *, name: str, source_url: str, mapping: dict[str, Any], max_bad_rows: int | None = None, cdc: bool | None = None
) -> MigrationPlan:
    """Create or update a plan; the mapping is checked against the source first."""
    entities = plan_check(mapping=mapping, source_url=source_url)
    targets = list(dict.fromkeys(entity.target_table for entity in entities))
    defaults: dict[str, Any] = {"source_url": source_url, "mapping": mapping, "target_tables": targets}
    if max_bad_rows is not None:
        defaults["max_bad_rows"] = max_bad_rows
    if cdc is not None:
        defaults["cdc"] = cdc
    plan, _created = MigrationPlan.objects.update_or_create(name=name, defaults=defaults)
    return plan


def plan_setup_tables(*, context: PlanContext) -> list[str]:
    """Create missing target tables from the mapping's keys and GSIs (on demand, TTL), as DMS does, and switch
    point-in-time recovery on for each where the endpoint has it (``context.pitr``: table → status)."""
    created = []
    for spec in context.specs:
        existed = dynamodb_describe_table(table=spec.base_name) is not None
        table_ensure(spec=spec, name=spec.base_name)
        if not existed:
            created.append(spec.base_name)
        context.pitr[spec.base_name] = backup_pitr_enable(table=spec.base_name)
    if created:
        plan = context.plan
        plan.created_tables = sorted(set(plan.created_tables) | set(created))
        plan.save(update_fields=["created_tables", "updated_at"])
    return created
