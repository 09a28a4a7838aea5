"""What the migration engine remembers: plans, runs with per-segment checkpoints, validations, backups.

Checkpoints live in the database (not in the broker or a worker's memory) so that any worker on any
machine can resume a segment another one was killed in the middle of.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone


class Phase(models.TextChoices):
    SETUP = "setup", "Setup"
    BACKFILL = "backfill", "Backfill"
    PARALLEL = "parallel", "Parallel (catch-up)"
    VALIDATE = "validate", "Validate"
    CUTOVER = "cutover", "Cutover"
    CLEANUP = "cleanup", "Cleanup"


PHASE_ORDER = [phase.value for phase in Phase]


class MigrationPlan(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    source_url = models.CharField(max_length=500, help_text="Database URL; credentials belong in the environment.")
    mapping = models.JSONField(help_text="AWS DMS table-mapping JSON plus our extensions.")
    target_tables = models.JSONField(default=list)
    created_tables = models.JSONField(default=list, help_text="Target tables this plan created (rollback drops data).")
    max_bad_rows = models.PositiveIntegerField(
        default=0,
        help_text="Rows a run may quarantine (untransformable or unwritable) before it fails; change capture "
        "stops past as many over its stream.",
    )
    cdc = models.BooleanField(
        default=False,
        help_text="Change data capture (PostgreSQL logical decoding) instead of updated_at catch-ups "
        "(docs/MIGRATIONS.md).",
    )
    phase = models.CharField(max_length=20, choices=Phase.choices, default=Phase.SETUP)
    phase_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunKind(models.TextChoices):
    BACKFILL = "backfill", "Backfill"
    CATCH_UP = "catch_up", "Catch-up"


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    PAUSED = "paused", "Paused"
    CANCELLED = "cancelled", "Cancelled"


class MigrationRun(models.Model):
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=20, choices=RunKind.choices, default=RunKind.BACKFILL)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING)
    since = models.DateTimeField(null=True, blank=True, help_text="Catch-up: rows changed after this instant.")
    row_limit = models.PositiveIntegerField(null=True, blank=True)
    unit_rows = models.PositiveIntegerField(
        null=True, blank=True, help_text="Source rows per work unit (cut by keyset probes as units start)."
    )
    rows_read = models.BigIntegerField(default=0)
    items_written = models.BigIntegerField(default=0)
    items_skipped = models.BigIntegerField(default=0)
    items_failed = models.BigIntegerField(default=0)
    bytes_written = models.BigIntegerField(default=0)
    write_units = models.FloatField(default=0)
    unprocessed_retries = models.IntegerField(default=0)
    throttle_retries = models.IntegerField(default=0)
    duplicate_keys = models.JSONField(default=list, blank=True, help_text="Sample of keys two rows shared.")
    rows_quarantined = models.BigIntegerField(default=0)
    max_bad_rows = models.PositiveIntegerField(default=0, help_text="Quarantined rows this run tolerates.")
    last_error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan.name} {self.kind} #{self.pk}"

    @property
    def items_per_second(self) -> float:
        end = self.finished_at or timezone.now()
        seconds = max((end - self.started_at).total_seconds(), 1e-6)
        return self.items_written / seconds


class Segment(models.Model):
    """A work unit: one slice of one entity's source key range, with the checkpoint written after every page.

    A unit is worked on only under a lease (``lease_owner`` until ``lease_expires_at``): taking it adds one
    to ``fence``, and every checkpoint is written only where ``fence`` is still the runner's, so a runner
    whose lease expired and was taken over cannot write its checkpoint, and stops. Progress counters live
    here, one row per unit: the run's totals are their sum (no single row every page updates).
    """

    run = models.ForeignKey(MigrationRun, on_delete=models.CASCADE, related_name="segments")
    entity = models.CharField(max_length=200)
    index = models.PositiveIntegerField()
    lower_key = models.JSONField(null=True, blank=True, help_text="Exclusive lower bound (None: start).")
    upper_key = models.JSONField(null=True, blank=True, help_text="Inclusive upper bound (None: end).")
    last_key = models.JSONField(null=True, blank=True, help_text="Checkpoint: last source key written.")
    rows_expected = models.BigIntegerField(
        null=True, blank=True, help_text="Source rows in the key range when the run was created (progress bars)."
    )
    rows_read = models.BigIntegerField(default=0)
    items_written = models.BigIntegerField(default=0)
    items_skipped = models.BigIntegerField(default=0)
    rows_quarantined = models.BigIntegerField(default=0)
    bytes_written = models.BigIntegerField(default=0)
    write_units = models.FloatField(default=0)
    unprocessed_retries = models.IntegerField(default=0)
    throttle_retries = models.IntegerField(default=0)
    open_ended = models.BooleanField(
        default=False, help_text="Upper bound not cut yet: the runner that takes the unit cuts it (keyset probe)."
    )
    done = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0, help_text="Leases taken (a takeover adds one).")
    retries = models.PositiveIntegerField(default=0, help_text="Transient errors (throttling, timeouts) retried.")
    last_error = models.TextField(blank=True, help_text="The last transient error retried, or the error that failed.")
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    fence = models.PositiveBigIntegerField(default=0, help_text="Fencing token: one more at every lease taken.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "entity", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "entity", "index"], name="unique_run_segment")]

    def __str__(self) -> str:
        return f"{self.entity}[{self.index}]"


class ValidationMode(models.TextChoices):
    FULL = "full", "Full (values, counts, type contract)"
    QUICK = "quick", "Quick (keys only; not enough for cutover)"


class ValidationReport(models.Model):
    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="validations")
    mode = models.CharField(max_length=10, choices=ValidationMode.choices, default=ValidationMode.FULL)
    expected = models.BigIntegerField(default=0)
    found = models.BigIntegerField(default=0)
    missing = models.BigIntegerField(default=0)
    extra = models.BigIntegerField(default=0)
    different = models.BigIntegerField(default=0)
    expired_ignored = models.BigIntegerField(default=0)
    count_mismatches = models.BigIntegerField(
        default=0, help_text="Entities whose selected source rows differ from the target items they own."
    )
    contract_violations = models.BigIntegerField(
        default=0, help_text="Attributes whose DynamoDB type or value breaks the source schema's type contract."
    )
    in_flight = models.BigIntegerField(
        default=0,
        help_text="Keys that differed only because a change was on its way: equal once the CDC worker applied it.",
    )
    unsettled = models.BigIntegerField(
        default=0,
        help_text="Keys (and counts) still changing, or not settled because the CDC worker did not advance: "
        "neither a difference nor a match; the report is not clean.",
    )
    counts = models.JSONField(default=list, blank=True, help_text="Per entity: source rows selected, target items.")
    samples = models.JSONField(default=dict, help_text="Sampled keys and field-level diffs.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"validation #{self.pk} of {self.plan.name}"

    @property
    def clean(self) -> bool:
        """No difference, and nothing left unsettled (keys in flight that settled do not count against it)."""
        return not (
            self.missing
            or self.extra
            or self.different
            or self.count_mismatches
            or self.contract_violations
            or self.unsettled
        )

    @property
    def quick(self) -> bool:
        return self.mode == ValidationMode.QUICK

    def summary(self) -> dict[str, int]:
        return {
            "missing": self.missing,
            "extra": self.extra,
            "different": self.different,
            "count_mismatches": self.count_mismatches,
            "contract_violations": self.contract_violations,
            "in_flight": self.in_flight,
            "unsettled": self.unsettled,
        }


class BackupMethod(models.TextChoices):
    EXPORT = "export", "JSON Lines export (parallel Scan)"
    NATIVE = "native", "DynamoDB on-demand backup (CreateBackup)"


class BackupState(models.TextChoices):
    TAKING = "taking", "being taken, or interrupted"
    DONE = "done", "done"


class Backup(models.Model):
    """One backup of one table, and what a restore of it can be checked against.

    ``item_count`` and ``checksum`` are exact (a Scan of every item at backup time): always for an export, for a
    native backup only when the Scan was cheap (docs/MIGRATIONS.md, "Backups and restore"). Without them a restore
    is compared with DescribeBackup's ItemCount, which AWS documents as approximate, and is never "verified".
    """

    plan = models.ForeignKey(MigrationPlan, null=True, blank=True, on_delete=models.SET_NULL, related_name="backups")
    table = models.CharField(max_length=255)
    reason = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=10, choices=BackupMethod.choices, default=BackupMethod.EXPORT)
    location = models.CharField(max_length=1000, blank=True, help_text="JSON Lines export path (export method).")
    aws_backup_arn = models.CharField(max_length=1000, blank=True)
    backup_name = models.CharField(
        max_length=255,
        blank=True,
        help_text="The BackupName given to CreateBackup, recorded before the call: an interrupted one is found by it.",
    )
    state = models.CharField(
        max_length=10,
        choices=BackupState.choices,
        default=BackupState.DONE,
        help_text="taking: recorded before the backup started and not finished (still running, or interrupted).",
    )
    item_count = models.BigIntegerField(
        null=True, blank=True, help_text="Items counted by a Scan at backup time; empty: not counted."
    )
    checksum = models.CharField(
        max_length=64, blank=True, help_text="SetChecksum of a Scan at backup time; empty: not taken."
    )
    native_details = models.JSONField(
        default=dict, blank=True, help_text="DescribeBackup's details and the table's PITR status (native method)."
    )
    table_definition = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.table} @ {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def checksummed(self) -> bool:
        """A restore of this backup can be verified exactly (count and checksum were taken at backup time)."""
        return bool(self.checksum) and self.item_count is not None

    @property
    def verification_text(self) -> str:
        if self.state != BackupState.DONE:
            return "nothing: never finished (interrupted, or still being taken); not restorable"
        if self.checksummed:
            return "item count and checksum (exact)"
        approximate = self.native_details.get("approximate_item_count")
        counted = "its ItemCount unknown" if approximate is None else f"approximate: {approximate} items"
        return f"item count vs DescribeBackup ({counted}); checksum not taken"


class PhaseTransition(models.Model):
    """Who moved a plan, when, why, and which backups were taken first (rollback restores them)."""

    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="transitions")
    from_phase = models.CharField(max_length=20)
    to_phase = models.CharField(max_length=20)
    rollback = models.BooleanField(default=False)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    backups = models.ManyToManyField(Backup, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan.name}: {self.from_phase} → {self.to_phase}"


class ChangeKind(models.TextChoices):
    INSERT = "insert", "Insert"
    UPDATE = "update", "Update"
    DELETE = "delete", "Delete"


def nul_escaped(value: Any) -> Any:
    """``value`` with each NUL character (U+0000) of its strings written as the six characters ``\\u0000``:
    PostgreSQL's text and jsonb hold no NUL, so a bad row, its key or its reason quoting one would make the
    quarantine's INSERT (and the run's ``last_error``) fail instead of setting the row aside."""
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {nul_escaped(key): nul_escaped(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [nul_escaped(item) for item in value]
    return value


class QuarantinedRow(models.Model):
    """A source row a run (or the CDC worker) could not transform or write, with why.

    A run fails past its ``max_bad_rows``; change capture stops past the plan's. A CDC row is the row of
    one change (``stream``, ``commit_lsn``, ``change_position``): a worker killed after quarantining it
    and before confirming the slot decodes the change again, and the constraint keeps it once.
    """

    plan = models.ForeignKey(MigrationPlan, on_delete=models.CASCADE, related_name="quarantined_rows")
    run = models.ForeignKey(
        MigrationRun, null=True, blank=True, on_delete=models.CASCADE, related_name="quarantined_rows"
    )
    stream = models.ForeignKey(
        "CdcStream",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quarantined_rows",
        help_text="Set aside by change capture (no run): the stream whose change it was.",
    )
    change = models.CharField(max_length=10, choices=ChangeKind.choices, blank=True, help_text="CDC: the change.")
    commit_lsn = models.CharField(max_length=255, blank=True, help_text="CDC: the change's commit position.")
    change_position = models.PositiveIntegerField(
        null=True, blank=True, help_text="CDC: the change's place in its transaction (0 = first)."
    )
    rule = models.CharField(max_length=200)
    source_table = models.CharField(max_length=300)
    target_table = models.CharField(max_length=255)
    source_key = models.JSONField(help_text="The row's source key (column → value).")
    reason = models.TextField()
    row = models.JSONField(default=dict, help_text="The source row as read (values as text where JSON has no type).")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream", "commit_lsn", "change_position", "rule"],
                condition=models.Q(stream__isnull=False),
                name="one_quarantined_row_per_cdc_change",
            )
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} {self.source_table} {self.source_key}"


class CdcStatus(models.TextChoices):
    ACTIVE = "active", "Active (slot on the source)"
    DROPPED = "dropped", "Dropped"


class CdcStream(models.Model):
    """A plan's change capture: its replication slot and publication on the source (PostgreSQL; a MySQL/MariaDB
    binlog stream has neither, its position lives here only), position, lease, lag.

    One active stream per plan. The plan cannot be deleted while a stream row exists (PROTECT): deleting
    the row without dropping the slot would leave a slot nobody reads, which keeps the source's WAL
    forever. The lease (owner, token, expiry) lets exactly one worker apply changes; the token fences a
    worker that lost it.
    """

    plan = models.ForeignKey(MigrationPlan, on_delete=models.PROTECT, related_name="cdc_streams")
    status = models.CharField(max_length=10, choices=CdcStatus.choices, default=CdcStatus.ACTIVE)
    slot_name = models.CharField(max_length=63)
    publication_name = models.CharField(max_length=63)
    tables = models.JSONField(default=list, help_text="Source tables published (schema.table).")
    start_lsn = models.CharField(
        max_length=255, blank=True, help_text="Where capture began (an LSN; a binlog file:position)."
    )
    confirmed_lsn = models.CharField(max_length=255, blank=True, help_text="Applied to DynamoDB up to here.")
    caught_up_at = models.DateTimeField(
        null=True, blank=True, help_text="Every change committed before this instant is in DynamoDB."
    )
    last_read_at = models.DateTimeField(null=True, blank=True, help_text="Last time a worker read the slot.")
    last_commit_at = models.DateTimeField(null=True, blank=True, help_text="Commit time of the last change applied.")
    applying_since = models.DateTimeField(
        null=True, blank=True, help_text="When a worker began applying (runs are refused from then on)."
    )
    lag_bytes = models.BigIntegerField(
        default=0, help_text="WAL (binlog) bytes behind the source's end, after the confirmed position."
    )
    source_lost_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker found the position gone from the source (slot, binlog purged)."
    )
    changes_applied = models.BigIntegerField(default=0)
    transactions_applied = models.BigIntegerField(default=0)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_token = models.BigIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    dropped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan"], condition=models.Q(status="active"), name="one_active_cdc_stream_per_plan"
            )
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} CDC {self.slot_name} ({self.status})"

    @property
    def lag_seconds(self) -> float | None:
        """Seconds since the worker last had every committed change applied (None: never caught up)."""
        if self.caught_up_at is None:
            return None
        return max((timezone.now() - self.caught_up_at).total_seconds(), 0.0)
