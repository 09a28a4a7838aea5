"""A second process for the history checker (tests/sessions_app/store/history.py): the same product code,
its own Redis client, breaker, stores and bypass memory, driven over a pipe.

Usage: python -m tests.sessions_app.store.history_worker SETTINGS_JSON
Reads one JSON command per line on stdin, answers one JSON line on stdout (everything else the process
prints goes to stderr). Commands: ``turn``/``end`` (read, then a conditional write of what was read),
``flush``, ``mode``, ``partition`` (Redis unreachable from this process only: the partial partition),
``dynamodb`` (the same DynamoDB faults as the checker's process), ``reset_redis`` (after a Redis kill),
``stop``. A refusal (conflict, 503) is answered, never raised: the checker counts it.
"""

import json
import os
import random
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lizzy.settings.test")
django.setup()

from botocore.exceptions import EndpointConnectionError  # noqa: E402
from django.conf import settings  # noqa: E402

import lizzy.redis  # noqa: E402
from lizzy import metrics  # noqa: E402
from lizzy.dynamodb import reset_client  # noqa: E402
from lizzy.errors import ServiceUnavailable  # noqa: E402
from lizzy.redis import RedisUnavailable, reset_redis  # noqa: E402
from sessions_app.selectors import session_get  # noqa: E402
from sessions_app.services.ops import session_expire  # noqa: E402
from sessions_app.services.sessions import SessionConflict, session_delete, session_new, session_save  # noqa: E402
from sessions_app.services.store.breaker import redis_breaker  # noqa: E402
from sessions_app.services.store.bypass import REGISTRY_PK  # noqa: E402
from sessions_app.services.store.cached import recovery_pending  # noqa: E402
from sessions_app.services.store.factory import stores_reset  # noqa: E402
from sessions_app.services.store.write_behind import sessions_flush  # noqa: E402
from sessions_app.services.store_modes import store_mode_current  # noqa: E402
from tests.fixtures.dynamodb_hooks import client_error, fault_injection  # noqa: E402

ERR_UNKNOWN_COMMAND = "history worker: unknown command {command!r}"


class Worker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.registry_rng = random.Random(-seed)
        self.partitioned = False
        self.dynamodb_fault: str | None = None

    def hook(self, operation, params, send):
        if self.dynamodb_fault == "unreachable":
            raise EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
        rng = self.registry_rng if REGISTRY_PK in str(params) else self.rng  # as the checker's hook does
        if self.dynamodb_fault == "throttled" and rng.random() < 0.3:
            raise client_error("ProvisionedThroughputExceededException", "throttled (history worker)", operation)
        return send(params)

    def redis_call(self, real):
        def call(function, *args, **kwargs):
            if self.partitioned:
                raise RedisUnavailable("Redis is unreachable from this process (history checker partial partition).")
            return real(function, *args, **kwargs)

        return call

    def read(self, phone: str, answer: dict):
        current = session_get(phone=phone)
        answer["read"] = None if current is None else [int(i) for i in current.session_data.get("log", [])]
        answer["mode"] = store_mode_current()
        return current

    def handle(self, command: dict) -> dict:
        kind = command["command"]
        answer: dict = {"outcome": "ack"}
        try:
            if kind == "turn":
                current = self.read(command["phone"], answer)
                session = current or session_new(phone=command["phone"])
                session.session_data = {**session.session_data, "log": [*(answer["read"] or []), command["turn"]]}
                session_save(session=session, expected_version=current.version if current else None)
            elif kind == "end":
                current = self.read(command["phone"], answer)
                if current is None:
                    answer["outcome"] = "nothing"
                elif command["how"] == "delete":
                    if not session_delete(phone=command["phone"], expected_version=current.version):
                        raise SessionConflict("nothing deleted")
                else:
                    session_expire(phone=command["phone"], expected_version=current.version)
            elif kind == "flush":
                result = sessions_flush(mode=store_mode_current())
                answer["result"] = str(result)
                answer["bypass_read"] = result.bypass_read
            elif kind == "mode":
                settings.LIZZY_SESSION_STORE_MODE = command["mode"]
            elif kind == "partition":
                self.partitioned = command["on"]
                if not self.partitioned and command.get("phone"):
                    # back in reach: the first Redis use drops the copies written around it (the recovery)
                    self.read(command["phone"], answer)
            elif kind == "dynamodb":
                self.dynamodb_fault = command["fault"]
            elif kind == "reset_redis":
                reset_redis()
            else:
                answer = {"outcome": "error", "error": ERR_UNKNOWN_COMMAND.format(command=kind)}
        except (SessionConflict, ServiceUnavailable) as exc:
            answer["outcome"] = f"refused:{type(exc).__name__}"
        # what the checker's window rule needs to know of this process (TwoProcessHistory)
        answer["recovery_pending"] = recovery_pending()
        answer["register_failed"] = metrics.SESSION_BYPASS_REGISTRY.labels("register_failed")._value.get()
        return answer


def main() -> None:
    overrides = json.loads(sys.argv[1])
    for name, value in overrides.items():
        setattr(settings, name, value)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = overrides["AWS_ENDPOINT_URL_DYNAMODB"]
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # logs and prints go to stderr: stdout is the protocol
    reset_client()
    reset_redis()
    redis_breaker.reset()
    stores_reset()
    worker = Worker(overrides.get("LIZZY_HISTORY_SEED", 0))
    lizzy.redis.redis_call = worker.redis_call(lizzy.redis.redis_call)
    with fault_injection(worker.hook):
        out.write(json.dumps({"outcome": "ready"}) + "\n")
        for line in sys.stdin:
            command = json.loads(line)
            if command["command"] == "stop":
                break
            out.write(json.dumps(worker.handle(command)) + "\n")


if __name__ == "__main__":
    main()
