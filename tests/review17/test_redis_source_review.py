"""Issue 17 review: the Redis migration source against a real Redis (REDIS_URL).

Each test fails on the code at review time; each states the claim of issue 17 / docs it refutes.
"""

from __future__ import annotations

import json
import time

import pytest
import redis as redis_py
from django.core.management import call_command
from django.core.management.base import CommandError

from lizzy.dynamodb import dynamodb_scan_segment
from lizzy.tables import table_name
from migration_app.models import QuarantinedRow
from migration_app.sources import source_open
from tests.migration_app.test_redis_source import GENERIC_MAPPING, PLAN, all_rows


@pytest.fixture
def redis_db(redis_url):
    client = redis_py.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def generic_mapping(tmp_path):
    mapping = tmp_path / "projects.json"
    mapping.write_text(json.dumps(GENERIC_MAPPING))
    return str(mapping)


def migrate_allowing_refusal(*args: str) -> None:
    """Run the command; a refusal it reports is fine: CommandError (too many bad rows) or exit status 1
    (its validation reports the quarantined rows missing from the target, as it does for any source)."""
    status = 0
    try:
        call_command("migrate_to_dynamodb", *args)
    except CommandError:
        pass
    except SystemExit as exc:
        status = exc.code
    assert status in (0, 1)


def test_a_binary_hash_field_keeps_its_bytes_and_never_collides_with_a_text_field(redis_db, redis_url):
    # given one Redis hash with two distinct fields: the bytes b"\xff" and the text "b'\xff'"
    redis_db.hset("proj:1:h", mapping={b"\xff": b"binary", "b'\\xff'": b"text"})
    assert redis_db.hlen("proj:1:h") == 2
    (row,) = all_rows(source_open(url=redis_url), "proj:*:*")
    # then both fields are in the row's value: the binary field is not turned into its Python repr
    # (str(b"\xff") == "b'\\xff'"), which silently drops one of the two fields
    assert len(row["value"]) == 2, row["value"]


def test_a_sorted_set_with_an_infinite_score_is_copied(
    transactional_db, dynamodb, redis_db, redis_url, generic_mapping
):
    # given a legal Redis sorted set whose member has score +inf (ZADD accepts it; "each Redis type")
    redis_db.zadd("proj:1:rank", {"top": float("inf"), "low": 1})
    # when it is migrated by a mapping, then the run succeeds and the key is in the table
    call_command("migrate_to_dynamodb", "--mapping", generic_mapping, "--source", redis_url, "--json")
    assert len(list(dynamodb_scan_segment(table="RedisProjects"))) == 1


def test_a_quarantined_redis_row_is_named_by_its_redis_key_not_the_scan_cursor(
    transactional_db, dynamodb, redis_db, redis_url, generic_mapping
):
    # given two keys that cannot be written (each over DynamoDB's 400 KB item limit), read in one SCAN page
    # (the review used infinite scores, which are now copied: test_a_sorted_set_with_an_infinite_score_is_copied)
    redis_db.set("proj:1:rank", "x" * 500_000)
    redis_db.set("proj:2:rank", "y" * 500_000)
    with pytest.raises(CommandError):
        call_command("migrate_to_dynamodb", "--mapping", generic_mapping, "--source", redis_url, "--max-bad-rows", "0")
    # then the quarantine says which key failed ("The row's source key (column -> value)"); at review time
    # it is {"key": "0"}: the SCAN cursor after the page, the same for every key of the page
    keys = sorted(row.source_key["key"] for row in QuarantinedRow.objects.all())
    assert keys == ["proj:1:rank", "proj:2:rank"]


def test_a_key_that_is_not_utf8_is_copied_or_quarantined_never_a_crash(
    transactional_db, dynamodb, redis_db, redis_url, generic_mapping
):
    # given a key whose last part is not UTF-8 (Redis keys are binary-safe) next to an ordinary one
    redis_db.set(b"proj:1:\xff", "v")
    redis_db.set("proj:1:ok", "v")
    # when migrated with one bad row allowed, then the run ends (no UnicodeEncodeError out of the command)
    # and the ordinary key is copied
    # (a refusal the command reports is fine; an uncaught UnicodeEncodeError is not)
    migrate_allowing_refusal("--mapping", generic_mapping, "--source", redis_url, "--max-bad-rows", "1")
    assert {item["SK"] for item in dynamodb_scan_segment(table="RedisProjects")} >= {"ok"}


def test_keys_expiring_at_one_whole_second_all_carry_that_second(redis_db, redis_url):
    # given 200 keys that all expire at the same whole second (EXPIREAT), big enough that reading a page takes
    # a while on the server
    at = int(time.time()) + 3600
    pipe = redis_db.pipeline()
    for index in range(200):
        pipe.rpush(f"big:{index}", *[f"element-{element}" for element in range(5000)])
        pipe.expireat(f"big:{index}", at)
    pipe.execute()
    # when they are read in one page
    rows = all_rows(source_open(url=redis_url), "big:*", page_size=1000)
    # then each row's expires_at is that second ("its remaining TTL, rounded up"); at review time some are one
    # second later: each key's PTTL is taken when the script reads it, the clock (TIME) only after the last key
    assert len(rows) == 200
    assert sorted({row["expires_at"] - at for row in rows}) == [0]


def test_one_value_django_redis_cannot_read_is_quarantined_not_the_whole_run_aborted(
    transactional_db, dynamodb, redis_db, redis_url
):
    # given a django-redis JSON cache with 30 good entries and one that is not JSON (written by another tool)
    redis_db.mset({f":1:entry-{index}": json.dumps({"n": index}) for index in range(30)})
    redis_db.set(":1:foreign", b"\x80\x04not json")
    # when the shipped plan runs with one bad row allowed (--max-bad-rows: "Rows that may be quarantined
    # before the run fails")
    migrate_allowing_refusal(
        "--mapping", str(PLAN), "--source", f"{redis_url}?values=django-redis", "--max-bad-rows", "1"
    )
    # then the 30 good entries are copied and the foreign one quarantined; at review time the run fails with
    # "Cannot read the source database" and 0 items written, on every retry (the same page every time)
    assert len(list(dynamodb_scan_segment(table=table_name("LizzyCache")))) == 30
    assert QuarantinedRow.objects.count() == 1


def test_resuming_from_the_checkpoint_of_the_last_page_reads_nothing_again(redis_db, redis_url):
    # given a full pass over 50 keys, page by page: the engine checkpoints each page's KEY (the next cursor)
    redis_db.mset({f"proj:1:k{index}": "v" for index in range(50)})
    source = source_open(url=redis_url)
    rows = all_rows(source, "proj:*:*", page_size=10)
    checkpoint = source.key_of(rows[-1], None)
    # when a run resumes from the last page's checkpoint (killed or paused after its last page was written,
    # before the segment was marked done)
    again = all_rows(source, "proj:*:*", page_size=10, after=checkpoint)
    # then nothing is read again; at review time the last checkpoint is ["0"], which is also SCAN's start,
    # so the "resume" copies every key again
    assert again == []
