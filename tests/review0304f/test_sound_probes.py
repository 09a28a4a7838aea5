"""Attacks on 010c787 (and the change 1cbdf73..010c787) that found the promise kept (one file at a time)."""

from __future__ import annotations

import types

import pytest
from django.db import connection

from lizzy import celery as lizzy_celery
from migration_app.cdc.apply import BadChange, ChangeApplier
from migration_app.cdc.quarantine import cdc_quarantined_rows, changes_quarantine
from migration_app.models import CdcStream, QuarantinedRow
from migration_app.services.plans import plan_context, plan_save
from migration_app.sources import KEY
from migration_app.sources.base import encode_key
from tests.migration_app.factories import things_mapping

pytestmark = pytest.mark.django_db(transaction=True)

DDL = "CREATE TABLE things (id VARCHAR(20) PRIMARY KEY, name VARCHAR(40), updated_at TIMESTAMP)"


class _Tx:
    def __init__(self, lsn: int) -> None:
        self.commit_lsn = lsn


@pytest.mark.parametrize("engine", ["sqlite"])
def test_a_nul_key_change_decoded_again_after_a_kill_is_one_row_and_one_of_the_allowance(make_source, engine):
    """The same bad change decoded twice (a kill between quarantine and confirm), then the same row bad again
    in a later change: one QuarantinedRow per change, and the allowance counts one source row (the shown key
    is a pure function of the encoded key: stable across the kill)."""
    mapping = things_mapping()
    mapping["rules"][0]["object-locator"]["schema-name"] = "%"
    plan = plan_save(name="cdcnul2", source_url=make_source(DDL, {"things": []}), mapping=mapping, max_bad_rows=1)
    stream = CdcStream.objects.create(plan=plan, slot_name="r0304f2", publication_name="r0304f2")
    key = "a\x00b"
    with plan_context(plan=plan) as context:
        entity = context.entities[0]

        def decoded(lsn):
            applier = ChangeApplier(context=context, type_names=lambda r: [], rows=lambda *a, **k: [])
            row = {"id": key, "name": None, KEY: encode_key([key])}
            return BadChange(applier._ref(entity, "update", _Tx(lsn), 0, row, row), "bad")

        assert changes_quarantine(stream=stream, plan=plan, bad=[decoded(100)]) == 1
        assert changes_quarantine(stream=stream, plan=plan, bad=[decoded(100)]) == 0  # decoded again
        assert changes_quarantine(stream=stream, plan=plan, bad=[decoded(200)]) == 1  # bad again later
    assert QuarantinedRow.objects.filter(stream=stream).count() == 2
    assert cdc_quarantined_rows(stream=stream) == 1
    # change capture keeps the checkpoint form of a NUL key (exact: the allowance counts distinct rows by it)
    assert QuarantinedRow.objects.filter(stream=stream).first().source_key == {"id": {"$text": "YQBi"}}


@pytest.mark.parametrize("state", ["RETRY", "FAILURE"])
def test_a_unit_task_that_retried_or_failed_leaves_the_next_task_a_fresh_connection(state):
    """backfill_segment_task's UnitLeased retry (RETRY) and RunFailed (FAILURE): task_postrun closes every
    connection; the next task's prerun keeps nothing of it and its first query opens a new session."""
    sender = types.SimpleNamespace(request=types.SimpleNamespace(is_eager=False))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (before,) = cursor.fetchone()
    lizzy_celery.db_connections_after_task(sender=sender, state=state)
    assert connection.connection is None
    lizzy_celery.db_connections_before_task(sender=sender)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_setting('transaction_isolation')")
        after, _isolation = cursor.fetchone()
    assert after != before
    assert connection.get_autocommit()


def test_a_db_error_swallowed_in_autocommit_leaves_a_usable_connection_for_the_next_task():
    """A task that succeeded after its code swallowed a DB error in autocommit (the unit's close logs a
    failed cost UPDATE and goes on): the connection stays usable for the next task."""
    from django.db import DatabaseError

    sender = types.SimpleNamespace(request=types.SimpleNamespace(is_eager=False))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1/0")
    except DatabaseError:
        pass
    lizzy_celery.db_connections_after_task(sender=sender, state="SUCCESS")
    lizzy_celery.db_connections_before_task(sender=sender)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
