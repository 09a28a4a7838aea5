"""What the review of e6a1c28 and f36e36c checked and found sound (these pass)."""

from __future__ import annotations

import codecs
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lizzy.exact_json import exact_json
from lizzy.redis import json_loads
from migration_app.models import MigrationRun, RunStatus
from migration_app.services import runs
from migration_app.services.runs import run_pause, run_reopen, segment_run
from tests.review_chain.helpers import one_entity_run

# --- exact_json == json.loads(text, parse_float=Decimal), values and errors, for every input type -------------


class Text(str):
    pass


class Raw(bytes):
    pass


def _outcome(read, value):
    try:
        return ("value", repr(read(value)))
    except Exception as exc:  # noqa: BLE001 - the error's type, text and position are compared
        return ("error", type(exc), str(exc), getattr(exc, "pos", None), getattr(exc, "doc", None))


def _reference(value):
    return _outcome(lambda v: json.loads(v, parse_float=Decimal), value)


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.decimals(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


def _inputs(text: str) -> list:
    out: list = [text, Text(text), "\ufeff" + text, Text("\ufeff" + text), text[:-1], memoryview(text.encode())]
    for encoding in ENCODINGS:
        try:
            raw = text.encode(encoding, "surrogatepass")
        except UnicodeError:
            continue
        out += [raw, bytearray(raw), Raw(raw), raw[:-1], codecs.BOM_UTF8 + raw]
    return out


@hsettings(max_examples=300, deadline=None)
@given(st.one_of(documents.map(lambda d: json.dumps(d, default=str, ensure_ascii=False)), st.text(max_size=12)))
def test_exact_json_is_json_loads_for_str_subclasses_bytes_bytearray_memoryview_boms_and_utfs(text):
    for value in _inputs(text):
        assert _outcome(exact_json, value) == _reference(value), repr(value)
        assert _outcome(json_loads, value) == _reference(value), repr(value)


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=12))
def test_exact_json_is_json_loads_for_any_bytes(raw):
    for value in (raw, bytearray(raw), Raw(raw), memoryview(raw)):
        assert _outcome(exact_json, value) == _reference(value), repr(value)


@pytest.mark.parametrize("value", [None, 12, 1.5, [b"{}"], object(), '"\\ud800"', b'"\xed\xa0\x80"', "1e400"])
def test_exact_json_agrees_on_other_types_and_surrogates(value):
    assert _outcome(exact_json, value) == _reference(value)


# --- concurrency 1: two statements a page, stops and resumes --------------------------------------------------


@pytest.mark.django_db
def test_concurrency_one_writes_two_statements_a_page(sqlite_source, settings, dynamodb, monkeypatch):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 50
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 300, unit_rows=1000)
    unit = run.segments.get().pk
    per_page: list[int] = []
    write = runs._UnitPipeline.write

    def counted(self, rows, last_key):
        with CaptureQueriesContext(connection) as queries:
            write(self, rows, last_key)
        per_page.append(len(queries.captured_queries))

    monkeypatch.setattr(runs._UnitPipeline, "write", counted)
    segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)
    assert per_page == [2] * 6


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["between pages", "during a page", "during the last page"])
def test_concurrency_one_pause_then_resume_reads_every_row_once(
    sqlite_source, settings, dynamodb, sent, monkeypatch, where
):
    settings.LIZZY_MIGRATION_CHUNK_SIZE = 100
    settings.LIZZY_MIGRATION_WRITE_CONCURRENCY = 1
    run = one_entity_run(sqlite_source, settings, 300, unit_rows=1000)
    unit = run.segments.get().pk
    paused = []
    page_load, budgeted = runs.page_load, runs._budgeted

    def pause():
        if not paused:
            paused.append(True)
            run_pause(run=MigrationRun.objects.get(pk=run.pk))

    def load(**kwargs):
        if where != "between pages" and kwargs["rows"][0]["id"] == (101 if where == "during a page" else 201):
            outcome = page_load(**kwargs)
            pause()  # the page written, its checkpoint not yet
            return outcome
        return page_load(**kwargs)

    def read(source, relation, rows, remaining, checkpoint):
        if where == "between pages" and rows[0]["id"] == 101:
            pause()  # the next page read, not yet handed over
        return budgeted(source, relation, rows, remaining, checkpoint)

    monkeypatch.setattr(runs, "page_load", load)
    monkeypatch.setattr(runs, "_budgeted", read)
    segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)
    run.refresh_from_db()
    segment = run.segments.get()
    assert run.status == RunStatus.PAUSED
    assert not segment.done
    assert segment.rows_read == {"between pages": 100, "during a page": 100, "during the last page": 200}[where]
    monkeypatch.setattr(runs, "page_load", page_load)
    monkeypatch.setattr(runs, "_budgeted", budgeted)
    run_reopen(run=run)
    segment_run(segment_id=unit, on_unit=lambda unit: None, chain_seconds=0)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert (run.rows_read, run.items_written) == (300, 300)
    assert {pk for _table, pk in sent} == {f"THING#{n}" for n in range(1, 301)}
