"""The source side of change capture, chosen by the source URL: one class per engine, one set of calls.

``slots.PgCapture`` (PostgreSQL: a logical replication slot, pgoutput) and ``binlog.BinlogCapture``
(MySQL/MariaDB: the row-based binlog from a file:position) answer what the worker's loop (worker.py) and
validation's settle step ask, so the loop itself (lease, batch, apply, quarantine, confirm) is one:

- ``read(confirmed=, upto=, limit=)``: the committed transactions after the confirmed position
  (``apply.Batch``: transactions, complete, the position to confirm after writing them);
- ``advance(position=)``: the source's own record of the position, if it keeps one (the slot; the binlog
  has none: the stream's row is the record);
- ``state()``: the confirmed position and the lag in bytes, or None when the position is gone from the
  source (the slot dropped; the binlog file purged), with ``gone_message`` saying so;
- ``end_position()``: the source's end, after every commit made so far (validation waits for the worker
  to pass it);
- ``position_int`` / ``position_text``: positions as numbers that order, and as the source writes them;
- ``applier(context)``: apply.py's ChangeApplier with the source's typing of changed rows;
- binlog only, ``changed_identities(context, start=, end=)``: the source rows changed between two positions,
  validation's stand-in for PostgreSQL's row version (``xmin``).
"""

from __future__ import annotations

from urllib.parse import urlparse

from migration_app.cdc.binlog import BinlogCapture
from migration_app.cdc.slots import PgCapture
from migration_app.models import CdcStream

BINLOG_SCHEMES = ("mysql", "mariadb")
SLOT_SCHEMES = ("postgres", "postgresql")


def capture_kind(url: str) -> str | None:
    """'slot' (PostgreSQL), 'binlog' (MySQL/MariaDB), or None: a source change capture cannot read."""
    scheme = urlparse(url).scheme
    if scheme in SLOT_SCHEMES:
        return PgCapture.kind
    if scheme in BINLOG_SCHEMES:
        return BinlogCapture.kind
    return None


def capture_open(*, stream: CdcStream, reader: str = "worker") -> PgCapture | BinlogCapture:
    """The stream's capture; ``reader`` ("worker" or "validation") keeps their binlog replica ids apart."""
    url = stream.plan.source_url
    if capture_kind(url) == BinlogCapture.kind:
        return BinlogCapture(url=url, stream=stream, reader=reader)
    return PgCapture(url=url, stream=stream)
