"""Shipped plans: Serenya (seed 002, PostgreSQL or SQLite → one table) and K9 (seed 004, DuckDB → three).

Each plan is a mapping JSON and DDL under ``migration_app/plans/<name>/`` plus a data generator here,
so the migration can be rehearsed on realistic data before it meets the real database.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import duckdb
import psycopg
from psycopg.types.json import Jsonb

PLANS_DIR = Path(__file__).resolve().parent.parent / "plans"
EPOCH = dt.datetime(2025, 9, 1, tzinfo=dt.UTC)


def plan_mapping(*, name: str) -> dict[str, Any]:
    return json.loads((PLANS_DIR / name / "mapping.json").read_text())


def plan_mapping_path(*, name: str) -> Path:
    return PLANS_DIR / name / "mapping.json"


def time_ordered_uuid(moment: dt.datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7-layout id: ids sort by creation time, which "latest subscription first" relies on.

    Seed 002 sorts subscriptions by ``SUBSCRIPTION#${id}``; with random (v4) ids that order is random.
    """
    millis = int(moment.timestamp() * 1000)
    value = (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return uuid.UUID(int=value)


def serenya_rows(*, users: int, seed: int = 0, now: dt.datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Rows for every Serenya table: per user sessions (one expired), a device, jobs with events and chat
    messages, two subscriptions (an expired one, then an active one), consent, biometrics, a payment."""
    rng = random.Random(seed)  # noqa: S311
    now = now or dt.datetime.now(dt.UTC).replace(microsecond=0)
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in SERENYA_TABLES}
    for category, label in (("onboarding", "Explain my results"), ("followup", "What should I ask my doctor?")):
        moment = EPOCH + dt.timedelta(minutes=len(tables["chat_options"]))
        tables["chat_options"].append(
            {
                "id": time_ordered_uuid(moment, rng),
                "category": category,
                "label": label,
                "prompt": f"{label}.",
                "sort_order": len(tables["chat_options"]),
                "is_active": True,
                "created_at": moment,
                "updated_at": moment,
            }
        )
    for number in range(users):
        created = EPOCH + dt.timedelta(hours=number)
        user_id = time_ordered_uuid(created, rng)
        provider = "google" if number % 2 else "apple"
        tables["users"].append(
            {
                "id": user_id,
                "email": f"User{number}@Example.com ",
                "name": f"User {number}",
                "auth_provider": provider,
                "external_id": str(113426185144286227617 + number),
                "account_status": "active",
                "created_at": created,
                "updated_at": created,
            }
        )
        device_id = time_ordered_uuid(created, rng)
        tables["user_devices"].append(
            {
                "id": device_id,
                "user_id": user_id,
                "device_name": "iPhone 15",
                "platform": "ios",
                "biometric_type": "faceid",
                "created_at": created,
                "updated_at": created,
            }
        )
        for index, expires in enumerate((now - dt.timedelta(days=1), now + dt.timedelta(days=1))):
            tables["user_sessions"].append(
                {
                    "id": time_ordered_uuid(created + dt.timedelta(minutes=index), rng),
                    "user_id": user_id,
                    "refresh_token_hash": f"{rng.getrandbits(128):032x}",
                    "device_id": device_id,
                    "status": "active",
                    "last_accessed_at": expires - dt.timedelta(hours=1),
                    "expires_at": expires,
                    "created_at": created,
                    "updated_at": created,
                }
            )
        subscription_id = None
        for index, status in enumerate(("expired", "active")):
            start = created + dt.timedelta(days=30 * index)
            subscription_id = time_ordered_uuid(start, rng)
            tables["subscriptions"].append(
                {
                    "id": subscription_id,
                    "user_id": user_id,
                    "subscription_type": "free" if index == 0 else "premium",
                    "status": status,
                    "provider": "internal",
                    "start_date": start,
                    "end_date": start + dt.timedelta(days=30),
                    "external_subscription_id": f"free_{user_id}",
                    "created_at": start,
                    "updated_at": start,
                }
            )
        tables["consent_records"].append(
            {
                "id": time_ordered_uuid(created, rng),
                "user_id": user_id,
                "consent_type": "medical_disclaimer",
                "granted": True,
                "version": "1.0",
                "metadata": {"ip_country": "IE", "channels": ["app"]},
                "created_at": created,
                "updated_at": created,
            }
        )
        tables["biometric_registrations"].append(
            {
                "id": time_ordered_uuid(created, rng),
                "user_id": user_id,
                "device_id": device_id,
                "biometric_type": "faceid",
                "public_key": rng.randbytes(32),
                "is_active": number % 3 != 0,
                "created_at": created,
                "updated_at": created,
            }
        )
        tables["payments"].append(
            {
                "id": time_ordered_uuid(created, rng),
                "user_id": user_id,
                "subscription_id": subscription_id,
                "amount": f"{9 + number % 3}.99",
                "currency": "EUR",
                "status": "succeeded",
                "provider_payment_id": None,
                "created_at": created,
                "updated_at": created,
            }
        )
        for index, status in enumerate(("completed", "processing")):
            job_created = created + dt.timedelta(minutes=10 + index)
            job_id = time_ordered_uuid(job_created, rng)
            tables["processing_jobs"].append(
                {
                    "id": job_id,
                    "user_id": user_id,
                    "original_filename": "bloodwork.pdf",
                    "status": status,
                    "s3_bucket": "serenya-temp-files-dev",
                    "confidence_score": f"{80 + number % 20}.5",
                    "file_size": 10_000_000_000 + number,
                    "created_at": job_created,
                    "updated_at": job_created,
                }
            )
            tables["processing_job_events"].append(
                {
                    "id": time_ordered_uuid(job_created, rng),
                    "job_id": job_id,
                    "event_type": "uploaded",
                    "details": {"bytes": 1024 + number, "ratio": 0.25},
                    "created_at": job_created,
                    "updated_at": job_created,
                }
            )
            tables["chat_messages"].append(
                {
                    "id": time_ordered_uuid(job_created, rng),
                    "job_id": job_id,
                    "role": "assistant",
                    "content": "Your results look normal.",
                    "tags": ["summary", "lab"],
                    "created_at": job_created,
                    "updated_at": job_created,
                }
            )
    return tables


SERENYA_TABLES = [
    "users",
    "user_sessions",
    "user_devices",
    "subscriptions",
    "consent_records",
    "processing_jobs",
    "processing_job_events",
    "biometric_registrations",
    "payments",
    "chat_options",
    "chat_messages",
]


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def serenya_generate(*, url: str, users: int, seed: int = 0) -> dict[str, int]:
    """Create Serenya's schema in the database at ``url`` (PostgreSQL or SQLite) and fill it."""
    rows = serenya_rows(users=users, seed=seed)
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        path = url.split("sqlite:///", 1)[1]
        with sqlite3.connect(path) as connection:
            connection.executescript((PLANS_DIR / "serenya" / "schema_sqlite.sql").read_text())
            for table in SERENYA_TABLES:
                _insert(connection, table, rows[table], "?", _sqlite_value)
    else:

        def pg_value(value: Any) -> Any:
            return Jsonb(value) if isinstance(value, dict) else value

        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as connection:
            connection.execute((PLANS_DIR / "serenya" / "schema_postgres.sql").read_text())
            with connection.cursor() as cursor:
                for table in SERENYA_TABLES:
                    _insert(cursor, table, rows[table], "%s", pg_value)
    return {table: len(rows[table]) for table in SERENYA_TABLES}


def _insert(target: Any, table: str, rows: list[dict[str, Any]], mark: str, convert) -> None:
    if not rows:
        return
    columns = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(mark for _ in columns)})"  # noqa: S608
    target.executemany(sql, [[convert(row[column]) for column in columns] for row in rows])


def k9_generate(*, path: str, users: int, seed: int = 0) -> dict[str, int]:
    """Create seed 004's DuckDB file (users, reports, embeddings) and fill it."""
    rng = random.Random(seed)  # noqa: S311
    counts = {"users": 0, "reports": 0, "embeddings": 0}
    with duckdb.connect(path) as connection:
        connection.execute((PLANS_DIR / "k9" / "schema_duckdb.sql").read_text())
        for number in range(users):
            created = EPOCH + dt.timedelta(hours=number)
            user_id = f"user-{number:05d}"
            connection.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                [
                    user_id,
                    f"k9user{number}@example.com",
                    f"K9 User {number}",
                    json.dumps({"theme": "dark", "alerts": number % 2 == 0}),
                    created,
                    created,
                ],
            )
            counts["users"] += 1
            for index in range(2):
                moment = created + dt.timedelta(minutes=index)
                connection.execute(
                    "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        str(time_ordered_uuid(moment, rng)),
                        user_id,
                        f"Report {index}",
                        "Dog food comparison",
                        "draft" if index else "published",
                        f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}",
                        moment,
                        moment,
                    ],
                )
                counts["reports"] += 1
        for number in range(users):
            moment = EPOCH + dt.timedelta(minutes=number)
            connection.execute(
                "INSERT INTO embeddings VALUES (?, ?, ?, ?, ?, ?)",
                [
                    f"emb-{number:05d}",
                    f"product-{number % 7}",
                    "v2" if number % 2 else "v1",
                    [round(rng.uniform(-1, 1), 6) for _ in range(8)],
                    8,
                    moment,
                ],
            )
            counts["embeddings"] += 1
    return counts
