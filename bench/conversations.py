"""Simulated SMS conversations that count what a client would notice: lost, duplicated and failed turns.

Each conversation owns one phone and runs turns in a loop: read the session, check that it holds
exactly the turns this client had acknowledged, then write the next turn with ``If-Match``. A turn is
*acknowledged* when the write answered 200/201. A later read showing fewer turns than acknowledged is
a *lost* write; more turns than acknowledged is a *duplicated* one (nobody else writes this phone).

The transport is a callable, so the same driver runs in-process (Django's test client, the fault
tests) or over HTTP against gunicorn (bench/sms_load.py). Used with ``mode="webhook"`` a turn is an
inbound SMS instead (issue 3's webhook), checked the same way through the sessions API.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

# (method, path, body, headers) -> (status, json body or None, headers). The body is a dict (sent as
# JSON), a str (sent as is, with the Content-Type in headers) or None.
Send = Callable[[str, str, Any, dict[str, str]], tuple[int, Any, dict[str, str]]]

SESSIONS_PATH = "/api/v1/sessions/{phone}"
# A PUT names a node of the SMS workflow (anything else is a 400): seven of them, one per turn in turn.
WORKFLOW_NODES = (
    "MAIN_MENU",
    "SELECT_EQUIPMENT",
    "EQUIPMENT_MENU",
    "PARTS_UNIT_TYPE",
    "PARTS_MODEL",
    "PARTS_LIST",
    "TRANSACTIONS",
)
WEBHOOK_PATH = "/api/v1/sms/inbound"
FORM = "application/x-www-form-urlencoded"
# What a customer types; none of them opts out (STOP) or ends the conversation.
WEBHOOK_TEXTS = ("MENU", "HELP", "1", "2", "MORE", "hello")


@dataclass
class Tally:
    """Counters shared by all conversation threads (guarded by one lock)."""

    requests: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    conflicts: int = 0
    errors_5xx: int = 0
    errors_other: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    error_codes: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    # (sent, answered) time.monotonic() of each acknowledged write: whether it may sit in a fault's window
    ack_times: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def request(self, status: int, seconds: float, body: Any) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1
            self.latencies.append(seconds)
            if status >= 500:
                self.errors_5xx += 1
                code = (body or {}).get("error", {}).get("code", "?") if isinstance(body, dict) else "?"
                self.error_codes[f"{status}:{code}"] = self.error_codes.get(f"{status}:{code}", 0) + 1

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def percentiles(self) -> dict[str, float]:
        """p50/p95/p99 latency in milliseconds."""
        if len(self.latencies) < 2:
            return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
        cuts = statistics.quantiles(self.latencies, n=100, method="inclusive")
        return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "conflicts": self.conflicts,
            "errors_5xx": self.errors_5xx,
            "errors_other": self.errors_other,
            "statuses": dict(sorted(self.statuses.items())),
            "error_codes": self.error_codes,
            **{name: round(value, 2) for name, value in self.percentiles().items()},
        }


class Conversation:
    """One phone's conversation: its acknowledged turn count is the truth the server must match."""

    def __init__(self, phone: str, send: Send, tally: Tally) -> None:
        self.phone = phone
        self.send = send
        self.tally = tally
        self.acked = 0  # turns the server acknowledged
        self.version: int | None = None

    def _call(self, method: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        started = time.perf_counter()
        status, payload, _headers = self.send(method, SESSIONS_PATH.format(phone=self.phone), body, headers or {})
        self.tally.request(status, time.perf_counter() - started, payload)
        return status, payload

    def observe(self, document: dict[str, Any] | None) -> None:
        """Compare what the server holds with what it acknowledged; resynchronise on a difference."""
        seen = int((document or {}).get("sessionData", {}).get("turns", 0))
        if seen < self.acked:
            self.tally.add(lost=self.acked - seen)
        elif seen > self.acked:
            self.tally.add(duplicated=seen - self.acked)
        self.acked = seen
        self.version = int(document["version"]) if document else None

    def turn(self) -> None:
        status, document = self._call("GET")
        if status == 200:
            self.observe(document)
        elif status == 404:
            self.observe(None)
        else:
            if status < 500:
                self.tally.add(errors_other=1)
            return
        body = {
            "currentNode": WORKFLOW_NODES[(self.acked + 1) % len(WORKFLOW_NODES)],
            "sessionData": {"turns": self.acked + 1},
            "cachedData": {},
        }
        headers = {"If-Match": f'"{self.version}"'} if self.version is not None else {}
        sent = time.monotonic()
        status, stored = self._call("PUT", body, headers)
        if status in (200, 201):
            self.acked += 1
            self.version = int(stored["version"])
            self.tally.add(acknowledged=1)
            with self.tally.lock:
                self.tally.ack_times.append((sent, time.monotonic()))
        elif status in (412, 428):
            self.tally.add(conflicts=1)  # a stale read (e.g. a hot-tier copy older than DynamoDB): re-read
        elif status < 500:
            self.tally.add(errors_other=1)

    def verify(self) -> None:
        """Final read: counts anything lost since the last turn."""
        for _ in range(3):
            status, document = self._call("GET")
            if status in (200, 404):
                self.observe(document if status == 200 else None)
                return
            time.sleep(0.1)


class WebhookConversation(Conversation):
    """A customer texting through the signed webhook (issue 3); the session's ``turnCount`` is checked.

    Every tenth message is delivered twice with the same MessageSid, as Twilio does when our answer was
    late: the retry must not count as a second turn (it would show up as *duplicated*).
    """

    def __init__(self, phone: str, send: Send, tally: Tally, *, sign: Callable[[str, dict], str] | None = None):
        super().__init__(phone, send, tally)
        self.sign = sign
        self.sent = 0

    def observe(self, document: dict[str, Any] | None) -> None:
        seen = int((document or {}).get("turnCount", 0))
        if seen < self.acked:
            self.tally.add(lost=self.acked - seen)
        elif seen > self.acked:
            self.tally.add(duplicated=seen - self.acked)
        self.acked = seen

    def _deliver(self, sid: str, text: str) -> int:
        fields = {"From": self.phone, "To": "+15005550006", "Body": text, "MessageSid": sid}
        headers = {"Content-Type": FORM}
        if self.sign:
            headers["X-Twilio-Signature"] = self.sign(WEBHOOK_PATH, fields)
        started = time.perf_counter()
        status, payload, _ = self.send("POST", WEBHOOK_PATH, urlencode(fields), headers)
        self.tally.request(status, time.perf_counter() - started, payload)
        return status

    def turn(self) -> None:
        self.sent += 1
        sid = f"SM{uuid.uuid4().hex}"
        text = WEBHOOK_TEXTS[self.sent % len(WEBHOOK_TEXTS)]
        sent = time.monotonic()
        status = self._deliver(sid, text)
        if status == 200:
            self.acked += 1
            self.tally.add(acknowledged=1)
            with self.tally.lock:
                self.tally.ack_times.append((sent, time.monotonic()))
            if self.sent % 10 == 0:
                self._deliver(sid, text)  # Twilio's retry of a delivered message
        elif status < 500:
            self.tally.add(errors_other=1)
        if self.sent % 5 == 0:
            self.verify()


def run_conversations(
    *,
    phones: list[str],
    send_factory: Callable[[], Send],
    seconds: float,
    workers: int,
    tally: Tally | None = None,
    during: Callable[[], None] | None = None,
    after: Callable[[], None] | None = None,
    conversation: Callable[[str, Send, Tally], Conversation] = Conversation,
) -> tuple[Tally, list[Conversation]]:
    """Run ``workers`` threads, each driving its share of ``phones``, for ``seconds``.

    ``during`` runs in the calling thread while the load runs (a fault injection); ``after`` runs
    once the load has stopped and before the final verification (a last flush, a recovery).
    """
    tally = tally or Tally()
    stop = threading.Event()
    conversations: list[Conversation] = []
    lock = threading.Lock()

    failures: list[BaseException] = []

    def worker(share: list[str]) -> None:
        try:
            send = send_factory()
            mine = [conversation(phone, send, tally) for phone in share]
            with lock:
                conversations.extend(mine)
            while not stop.is_set():
                for each in mine:
                    if stop.is_set():
                        break
                    each.turn()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            failures.append(exc)
            raise

    threads = [threading.Thread(target=worker, args=(phones[index::workers],), daemon=True) for index in range(workers)]
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.start()
    if during:
        during()
    remaining = deadline - time.monotonic()
    if remaining > 0:
        stop.wait(remaining)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    if after:
        after()
    if failures:
        raise RuntimeError("a conversation thread crashed") from failures[0]
    for each in conversations:
        each.verify()
    return tally, conversations
