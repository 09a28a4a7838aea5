"""Change capture on /metrics and on the dashboard's alarms, read from the streams' rows at scrape time.

The worker writes its position, lag and last read to its stream row every loop; any web process can
then report every plan's lag without a connection to the source. A stream whose row has not been
touched for ``LIZZY_CDC_ALARM_UNREAD_SECONDS`` is a slot nobody reads: its WAL piles up on the source
(an abandoned slot is the classic way logical decoding fills a disk), so that is an alarm of its own. A
MySQL/MariaDB stream keeps nothing on the source; unread for long, its position's binlog may be purged: the
worker then records ``source_lost_at`` and stops, and that is an alarm too (``cdc_source_lost``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from lizzy.observability.alarms import AlarmRule, AlarmState
from migration_app.models import CdcStatus, CdcStream

logger = logging.getLogger(__name__)

GAUGES = {
    "lizzy_cdc_lag_seconds": "Seconds since the CDC worker last had every committed source change applied.",
    "lizzy_cdc_lag_bytes": "WAL (binlog) bytes behind the source's end after the confirmed position (last read).",
    "lizzy_cdc_unread_seconds": "Seconds since a worker last read the plan's replication slot or binlog.",
    "lizzy_cdc_source_lost": "1 when the stream's position is gone from the source (slot dropped, binlog purged).",
}


def _active_streams() -> list[CdcStream]:
    try:
        return list(CdcStream.objects.filter(status=CdcStatus.ACTIVE).select_related("plan"))
    except Exception:  # before migrations, or the database is away: no CDC figures rather than no /metrics
        logger.warning("could not read the CDC streams", exc_info=True)
        return []


def unread_seconds(stream: CdcStream) -> float:
    last = stream.last_read_at or stream.created_at
    return max((timezone.now() - last).total_seconds(), 0.0)


class CdcCollector:
    """A prometheus_client custom collector: one gauge sample per active stream, labelled by plan."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(name, text, labels=["plan"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {name: GaugeMetricFamily(name, text, labels=["plan"]) for name, text in GAUGES.items()}
        for stream in _active_streams():
            lag = stream.lag_seconds
            if lag is not None:
                families["lizzy_cdc_lag_seconds"].add_metric([stream.plan.name], lag)
            families["lizzy_cdc_lag_bytes"].add_metric([stream.plan.name], stream.lag_bytes)
            families["lizzy_cdc_unread_seconds"].add_metric([stream.plan.name], unread_seconds(stream))
            families["lizzy_cdc_source_lost"].add_metric([stream.plan.name], int(stream.source_lost_at is not None))
        yield from families.values()


def cdc_alarm_states() -> list[AlarmState]:
    """Per active stream: lag (seconds, bytes), an unread (abandoned) slot, and a position gone from the source
    (a PostgreSQL slot dropped; a MySQL/MariaDB binlog purged before it was read), each against its threshold."""
    states = []
    for stream in _active_streams():
        plan = stream.plan.name
        lag = stream.lag_seconds
        # Never caught up: the lag is as old as the stream.
        seconds = lag if lag is not None else max((timezone.now() - stream.created_at).total_seconds(), 0.0)
        states += [
            AlarmState(
                AlarmRule(
                    f"cdc_lag_seconds:{plan}", f"CDC lag of {plan} (s)", "cdc", settings.LIZZY_CDC_ALARM_LAG_SECONDS
                ),
                int(seconds),
            ),
            AlarmState(
                AlarmRule(
                    f"cdc_lag_bytes:{plan}", f"CDC WAL of {plan} (bytes)", "cdc", settings.LIZZY_CDC_ALARM_LAG_BYTES
                ),
                int(stream.lag_bytes),
            ),
            AlarmState(
                AlarmRule(
                    f"cdc_slot_unread:{plan}",
                    f"CDC slot {stream.slot_name} unread (s)",
                    "cdc",
                    settings.LIZZY_CDC_ALARM_UNREAD_SECONDS,
                ),
                int(unread_seconds(stream)),
            ),
            AlarmState(
                AlarmRule(f"cdc_source_lost:{plan}", f"CDC position of {plan} gone from the source", "cdc", 0),
                int(stream.source_lost_at is not None),
            ),
        ]
    return states
