"""Probes that pass on main (evidence of what was checked and found sound): guided unit sizes with two
entities and another runner at work, with ``--segments``, every row read and written once and the run's totals
right; ``exact_json`` on the input types the sources pass (memoryview, str subclass) as ``json.loads``."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lizzy.exact_json import exact_json
from migration_app.models import RunStatus, Segment
from migration_app.services.plans import plan_context
from migration_app.services.runs import run_create, run_finish
from tests.migration_app.services.test_guided_units import _lease
from tests.review_chain.helpers import drain_queue, two_entity_run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("concurrency", [1, 4])
def test_guided_cuts_of_two_entities_with_another_runner_cover_every_row_once(
    sqlite_source, settings, sent, concurrency
):
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = concurrency
    run = two_entity_run(sqlite_source, settings, 430, 170, unit_rows=40)
    other = _lease(run, "elsewhere:1:1:ffff")
    queue = list(run.segments.exclude(pk=other.pk).order_by("pk").values_list("pk", flat=True))
    drain_queue(queue)
    Segment.objects.filter(pk=other.pk).update(done=True, lease_owner="", lease_expires_at=None)
    units = run.segments.exclude(pk=other.pk)
    sizes = sorted(units.filter(entity__endswith=":things").values_list("rows_read", flat=True))
    assert min(sizes) < 40  # guided cuts happened
    assert sum(units.values_list("rows_read", flat=True)) == 600
    expected = [("Things", f"THING#{n}") for n in range(1, 431)] + [("Widgets", f"WIDGET#{n}") for n in range(1, 171)]
    assert sorted(set(sent)) == sorted(expected)
    assert len(sent) == 600  # each once
    run_finish(run_id=run.pk)  # the other runner's unit is done now: the run closes
    run.refresh_from_db()
    assert (run.status, run.rows_read, run.items_written) == (RunStatus.SUCCEEDED, 600, 600)


def test_guided_cuts_with_segments(sqlite_source, settings, sent):
    run = two_entity_run(sqlite_source, settings, 10, 10)  # a plan to reuse
    run.delete()
    plan = run.plan
    with plan_context(plan=plan) as context:
        run = run_create(context=context, segments=4)
    _lease(run, "elsewhere:1:1:ffff", done=False)
    queue = list(run.segments.exclude(entity__startswith="other-").values_list("pk", flat=True))
    drain_queue(queue)
    units = run.segments.exclude(entity__startswith="other-")
    assert sum(units.values_list("rows_read", flat=True)) == 20
    assert len(sent) == 20


@pytest.mark.parametrize(
    "text", [memoryview(b'{"a": 1.5}'), bytearray(b'\xef\xbb\xbf{"a": 1.5}'), b"\xff\xfe{\x00}\x00", "\ufeff{}"]
)
def test_exact_json_on_buffers_and_boms(text):
    def outcome(function):
        try:
            return ("value", function(text))
        except (ValueError, TypeError) as exc:
            return ("error", type(exc), str(exc))

    assert repr(outcome(exact_json)) == repr(outcome(lambda t: json.loads(t, parse_float=Decimal)))


def test_exact_json_on_a_str_subclass():
    class Text(str):
        pass

    assert exact_json(Text('{"a": 0.1}')) == {"a": Decimal("0.1")}
