"""The settle step's verdicts against scripted histories (no database): what each sequence of snapshots and
item reads must come out as. The real-PostgreSQL tests are in tests/migration_app/cdc/test_cdc_validation.py."""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import psycopg
import pytest

from migration_app.services import validation_settle
from migration_app.services.canonical import item_hash, key_text
from migration_app.services.validation_settle import REASON_CHANGING, Pending
from migration_app.sources.base import KEY

ABSENT = None


class _Entity:
    name = "stock:stock"
    target_table = "T"
    key_names = ("PK",)

    @staticmethod
    def transform(row):
        return {"PK": f"ID#{row['id']}", "v": row["v"]}


class _Source:
    """``snapshots[n]``: source id → (v, xmin) or ABSENT, as the n-th snapshot sees it."""

    def __init__(self, snapshots):
        self.snapshots, self.taken = snapshots, -1

    @contextlib.contextmanager
    def snapshot(self):
        self.taken += 1
        yield True

    def relation(self, entity):
        return entity

    def _rows(self):
        script = self.snapshots[min(self.taken, len(self.snapshots) - 1)]
        return {row_id: state for row_id, state in script.items() if state is not ABSENT}

    def rows_by_keys(self, relation, *, keys):
        rows = self._rows()
        wanted = {key[0] for key in keys}
        return [({"id": i, "v": v, KEY: [i]}, xmin) for i, (v, xmin) in rows.items() if i in wanted]

    def pages(self, relation, **_kwargs):
        yield [{"id": i, "v": v, KEY: [i]} for i, (v, _xmin) in self._rows().items()]


def _key(row_id):
    return key_text({"PK": f"ID#{row_id}"}, ("PK",))


@pytest.fixture
def history(monkeypatch, settings):
    """Run the settle step over scripted snapshots, item reads (id → v or ABSENT) and worker positions."""
    settings.LIZZY_VALIDATION_SETTLE_ROUNDS = 3
    settings.LIZZY_VALIDATION_SETTLE_SECONDS = 0.05

    def run(pendings, *, snapshots, reads, worker_advances=True, flush_error=None):
        lsn = {"flushed": 0, "waits": 0}
        reads_done = []

        class _Capture:
            """The stream's capture (cdc/capture.py) as the settle step uses it: the source's end, the
            worker's confirmed position."""

            def end_position(self):
                if flush_error is not None:
                    raise flush_error
                lsn["flushed"] += 10
                return lsn["flushed"]

            def state(self):
                return {"confirmed_lsn": lsn["flushed"] if worker_advances else 0}

            def position_text(self, value):
                return f"0/{value:X}"

            def close(self):
                pass

        def batch_get(*, table, keys, consistent):
            assert consistent
            script = reads[min(len(reads_done), len(reads) - 1)]
            reads_done.append(keys)
            wanted = {key["PK"] for key in keys}
            items = [{"PK": f"ID#{i}", "v": v} for i, v in script.items() if v is not ABSENT]
            return [item for item in items if item["PK"] in wanted]

        monkeypatch.setattr(validation_settle, "capture_open", lambda *, stream: _Capture())
        monkeypatch.setattr(validation_settle, "dynamodb_batch_get", batch_get)
        entity = _Entity()
        context = SimpleNamespace(
            plan=SimpleNamespace(source_url="postgres://scripted"),
            source=_Source(snapshots),
            entity=lambda name: entity,
            entities=[entity],
        )
        outcome = validation_settle.validation_settle(
            context=context,
            stream=SimpleNamespace(slot_name="slot"),
            pendings=pendings,
            digest=lambda item, key: item_hash(item),
            target_view=lambda table, items: [(key_text(item, ("PK",)), item) for item in items],
            expired=lambda table, item: False,
        )
        outcome.reads = len(reads_done)
        return outcome

    return run


def _pending(row_id, kind="different"):
    return Pending("T", _key(row_id), kind, _Entity.name, [row_id])


def test_a_change_that_arrives_is_in_flight(history):
    outcome = history([_pending(1)], snapshots=[{1: (2, "x2")}], reads=[{1: 2}])
    assert [p.key for p in outcome.in_flight] == [_key(1)]
    assert outcome.differences == outcome.unsettled == []


def test_a_stable_row_whose_item_differs_after_the_worker_passed_is_a_difference_named_as_last_read(history):
    # the comparison said missing; the item arrived, but wrong, and the row did not change: different
    pending = _pending(1, kind="missing")
    outcome = history([pending], snapshots=[{1: (2, "x2")}, {1: (2, "x2")}], reads=[{1: 7}])
    assert outcome.differences == [pending]
    assert pending.final == "different"
    assert outcome.reads == 1


def test_a_row_changed_and_changed_back_is_not_taken_for_a_stable_one(history):
    # A (xmin 1) → read finds B (a later change arrived) → A again, but a new version (xmin 3): not stable
    outcome = history([_pending(1)], snapshots=[{1: ("A", "1")}, {1: ("A", "3")}], reads=[{1: "B"}, {1: "A"}])
    assert [p.key for p in outcome.in_flight] == [_key(1)]
    assert outcome.differences == []


def test_a_row_that_changes_in_every_round_is_unsettled_never_clean(history):
    snapshots = [{1: (n, f"x{n}")} for n in range(10)]
    outcome = history([_pending(1)], snapshots=snapshots, reads=[{1: 100 + n} for n in range(10)])
    assert [(p.key, reason) for p, reason in outcome.unsettled] == [(_key(1), REASON_CHANGING.format(rounds=3))]
    assert outcome.in_flight == outcome.differences == []
    assert outcome.reads == 3


def test_a_worker_that_does_not_advance_leaves_every_key_unsettled_after_one_wait(history):
    outcome = history(
        [_pending(1), _pending(2, kind="extra")],
        snapshots=[{1: (2, "x2"), 2: ABSENT}],
        reads=[{1: 2, 2: 5}],
        worker_advances=False,
    )
    assert len(outcome.unsettled) == 2
    assert outcome.rounds == 1
    assert outcome.reads == 0
    assert "is migration_cdc running?" in outcome.stalled
    assert {reason for _p, reason in outcome.unsettled} == {outcome.stalled}


def test_an_extra_deleted_at_the_source_settles_once_the_delete_arrives(history):
    extra = Pending("T", _key(9), "extra")
    outcome = history([extra], snapshots=[{9: ABSENT}], reads=[{9: ABSENT}])
    assert outcome.in_flight == [extra]


def test_an_extra_no_row_maps_to_in_two_snapshots_around_the_read_is_a_difference(history):
    extra = Pending("T", _key(9), "extra")
    outcome = history([extra], snapshots=[{1: (1, "x1")}, {1: (1, "x1")}], reads=[{9: 3}])
    assert outcome.differences == [extra]
    assert extra.final == "extra"


def test_an_extra_whose_row_was_inserted_meanwhile_is_traced_to_it_and_settles(history):
    # the target had the item before the source part read; the row exists now: found by the pass, then compared
    extra = Pending("T", _key(9), "extra")
    outcome = history([extra], snapshots=[{9: (4, "x4")}], reads=[{9: 4}])
    assert outcome.in_flight == [extra]
    assert (extra.entity, extra.source_key) == (_Entity.name, [9])


def test_a_row_that_moved_to_another_item_key_is_followed_by_its_old_key(history, monkeypatch):
    # row 1 now maps elsewhere (its key template uses a changed column): its old item must go, and does
    pending = _pending(1)
    monkeypatch.setattr(_Entity, "transform", staticmethod(lambda row: {"PK": f"ID#{row['v']}", "v": row["v"]}))
    pending.key = key_text({"PK": "ID#1"}, ("PK",))
    outcome = history([pending], snapshots=[{1: (5, "x5")}, {1: (5, "x5")}], reads=[{1: ABSENT}, {1: ABSENT}])
    assert [p.key for p in outcome.in_flight] == [pending.key]
    assert json.loads(pending.key) == {"PK": {"S": "ID#1"}}


def test_a_source_that_cannot_say_where_the_worker_is_leaves_the_keys_unsettled_saying_why(history):
    refused = psycopg.errors.InsufficientPrivilege("permission denied for function pg_logical_emit_message")
    outcome = history([_pending(1)], snapshots=[{1: (2, "x2")}], reads=[{1: 2}], flush_error=refused)
    assert [reason for _p, reason in outcome.unsettled] == [
        "the source could not say how far the CDC worker got (slot slot): "
        "permission denied for function pg_logical_emit_message"
    ]
    assert outcome.in_flight == outcome.differences == []


def test_a_key_whose_row_is_gone_while_another_row_took_its_item_key_is_looked_for_among_all_rows(history, monkeypatch):
    # row 1 (item ID#1) was deleted; row 7 now maps to ID#1 (a template without the primary key): in flight
    monkeypatch.setattr(
        _Entity,
        "transform",
        staticmethod(lambda row: {"PK": "ID#1" if row["id"] == 7 else f"ID#{row['id']}", "v": row["v"]}),
    )
    pending = _pending(1)
    snapshots = [{1: ABSENT}, {1: ABSENT, 7: (3, "x3")}, {1: ABSENT, 7: (3, "x3")}]
    outcome = history([pending], snapshots=snapshots, reads=[{1: 3}, {1: 3}])
    assert [p.key for p in outcome.in_flight] == [_key(1)]
    assert outcome.differences == []
