"""Redis killed and restarted while simulated conversations run through the API, in every store mode.

Counted per mode: acknowledged writes later missing (lost), turns counted twice (duplicated) and 5xx
answers. Write-through modes must lose nothing; the cached modes must not answer 5xx at all;
write-behind may lose at most what was acknowledged since the last flush before the kill.
"""

from __future__ import annotations

import threading
import time

import pytest

from bench.conversations import run_conversations
from lizzy.redis import reset_redis
from sessions_app.services.store.breaker import redis_breaker
from sessions_app.services.store.write_behind import sessions_flush
from tests.figures import record_figure

PHONES = [f"+1206555{n:04d}" for n in range(100, 112)]
WORKERS = 4


class Flusher:
    """The beat's write-behind flush, every 0.1 s, remembering when the last good flush started."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.last_good_start = 0.0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                if sessions_flush().status == "flushed":
                    self.last_good_start = started
            except Exception:  # noqa: BLE001, S110 - Redis is down: the next beat retries
                pass
            self.stop.wait(0.1)


@pytest.mark.parametrize(
    ("mode", "max_lost", "max_5xx"),
    [
        ("dynamodb_only", 0, 0),
        ("cached", 0, 0),
        ("cutover", 0, 0),
        ("cached_write_behind", "window", 0),
        ("parallel", 0, None),  # Redis is the primary: writes answer 503 while it is down
        ("redis_only", None, None),  # a diskless Redis is the only copy: everything goes with it
    ],
)
def test_redis_killed_under_load(mode, max_lost, max_5xx, live_dynamodb, own_redis, inprocess_send, settings):
    # given: the mode, a breaker that retries Redis after 0.3 s, and a beat flushing every 0.1 s
    settings.LIZZY_SESSION_STORE_MODE = mode
    settings.LIZZY_BREAKER_THRESHOLD = 2
    settings.LIZZY_BREAKER_RESET_SECONDS = 0.3
    redis_breaker.reset()
    reset_redis()
    flusher = Flusher()
    if mode == "cached_write_behind":
        flusher.thread.start()
    marks: dict[str, float] = {}

    def during() -> None:
        time.sleep(0.5)
        marks["last_flush_start"] = flusher.last_good_start
        marks["killed_at"] = time.monotonic()
        own_redis.kill()
        time.sleep(0.6)
        own_redis.start()  # empty: nothing was on disk

    def after() -> None:
        flusher.stop.set()
        if mode == "cached_write_behind":
            flusher.thread.join(timeout=10)
            sessions_flush()

    # when: conversations run for 2 s; Redis dies at 0.5 s and comes back empty at 1.1 s
    tally, _ = run_conversations(
        phones=PHONES,
        send_factory=inprocess_send,
        seconds=2.0,
        workers=WORKERS,
        during=during,
        after=after,
    )

    # then
    # writes answered after the last good flush began and sent before the kill: only these can be lost
    window = sum(
        1 for sent, answered in tally.ack_times if answered >= marks["last_flush_start"] and sent <= marks["killed_at"]
    )
    summary = tally.summary()
    record_figure(f"faults/redis-killed-under-load[{mode}]", unflushed_window=window, **summary)
    assert tally.acknowledged > 0
    assert tally.duplicated == 0
    assert set(summary["error_codes"]) <= {"503:redis_unavailable"}, "a clear 503 naming Redis, never a 500"
    if max_5xx is not None:
        assert tally.errors_5xx == max_5xx
    if max_lost == "window":
        # At most the writes acknowledged between the start of the last good flush and the kill. Since
        # issue 13 a flush caught by the kill cannot land its snapshot over a write made through to
        # DynamoDB meanwhile (each write is conditional on the version its Redis copy descends from), so
        # nothing comes back duplicated (docs/RELIABILITY.md).
        assert tally.lost <= window
    elif max_lost is not None:
        assert tally.lost == max_lost
    else:
        assert tally.lost > 0  # the test does kill Redis: redis_only shows what that costs
