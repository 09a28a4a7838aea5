"""The CI-sized load run: bench/sms_load.py for 5 s (the 60 s run and its figures: docs/RELIABILITY.md)."""

from __future__ import annotations

from bench.sms_load import run
from tests.figures import record_figure


def test_concurrent_sms_conversations_lose_and_duplicate_nothing():
    # given: gunicorn (2 workers x 4 threads, production settings, signed webhook) on loopback, its own SQLite
    # when: 12 clients text 40 phones for 5 s, every tenth message delivered twice
    summary = run(seconds=5, conversations=40, clients=12, workers=2, threads=4)
    record_figure("load/sms-webhook-5s", **summary)
    # then
    assert summary["acknowledged"] > 0
    assert summary["errors_5xx"] == 0, summary["error_codes"]
    assert summary["errors_other"] == 0, summary["statuses"]
    assert summary["lost"] == 0
    assert summary["duplicated"] == 0
