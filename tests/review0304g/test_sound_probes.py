"""Attacks on 33545e8 that found the promise kept."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import pytest

from migration_app.cdc.apply import BadChange, CdcApplyError, ChangeApplier
from migration_app.cdc.quarantine import cdc_quarantined_rows, changes_quarantine
from migration_app.models import CdcStream, QuarantinedRow
from migration_app.services.plans import plan_context, plan_save
from migration_app.sources import KEY
from migration_app.sources.base import encode_key, key_shown
from tests.migration_app.factories import things_mapping

DDL = "CREATE TABLE things (id VARCHAR(20) PRIMARY KEY, name VARCHAR(40), updated_at TIMESTAMP)"
VALUES = [Decimal("1.50"), b"\x00\xff", dt.date(2025, 1, 2), dt.datetime(2025, 1, 2, 3, 4, 5), float("nan"), "a\x00b"]


class _Tx:
    def __init__(self, lsn: int) -> None:
        self.commit_lsn = lsn


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("engine", ["sqlite"])
def test_cdc_quarantine_stores_tagged_keys_as_1cbdf73_did_and_counts_them_apart(make_source, engine):
    """Decimal, bytes, date, datetime, NaN and NUL keys: stored exactly as encode_key (1cbdf73's
    dict(zip(key, row[KEY]))), 6 distinct rows, and the crossing message names the 2nd one."""
    mapping = things_mapping()
    mapping["rules"][0]["object-locator"]["schema-name"] = "%"
    plan = plan_save(name="cdctag", source_url=make_source(DDL, {"things": []}), mapping=mapping, max_bad_rows=1)
    stream = CdcStream.objects.create(plan=plan, slot_name="r0304g", publication_name="r0304g")
    with plan_context(plan=plan) as context:
        entity = context.entities[0]
        applier = ChangeApplier(context=context, type_names=lambda r: [], rows=lambda *a, **k: [])
        bad = []
        for lsn, value in enumerate(VALUES, start=100):
            row = {"id": value, "name": None, KEY: encode_key([value])}
            bad.append(BadChange(applier._ref(entity, "insert", _Tx(lsn), 0, row, None), "bad"))
        with pytest.raises(CdcApplyError) as raised:
            changes_quarantine(stream=stream, plan=plan, bad=bad)
    stored = list(QuarantinedRow.objects.filter(stream=stream).order_by("id").values_list("source_key", flat=True))
    assert stored == [{"id": encode_key([value])[0]} for value in VALUES]
    assert cdc_quarantined_rows(stream=stream) == len(VALUES)
    assert "'$bytes': 'AP8='" in str(raised.value), str(raised.value)


def test_validation_sample_json_encodes_every_tagged_key_and_a_redis_checkpoint():
    """json.dumps(key_shown(...)) of every encoded key type and of Redis' checkpoint (a list of a cursor)
    raises nothing; NUL as \\u0000, a backslash doubled, NaN stays tagged."""
    for value in VALUES:
        json.dumps(key_shown(encode_key([value])), ensure_ascii=False)
    assert (
        json.dumps(key_shown(encode_key(["a\x00b", "a\\u0000b"])), ensure_ascii=False) == '["a\\u0000b", "a\\\\u0000b"]'
    )
    assert json.dumps(key_shown(encode_key([math.inf])), ensure_ascii=False) == '[{"$float": "inf"}]'
    assert json.dumps(key_shown(["done"]), ensure_ascii=False) == '["done"]'
    assert json.dumps(key_shown("12"), ensure_ascii=False) == '"12"'  # not a list: as is
