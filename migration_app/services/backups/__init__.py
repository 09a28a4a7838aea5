"""Backups of target tables and verified restores (docs/MIGRATIONS.md, "Backups and restore").

==========  ==============================================================================================
``base``    errors, the estimate shown before starting, checksums, what "verified" means
``export``  the ``export`` method: JSON Lines by a parallel Scan, restorable into any table on any endpoint
``native``  the ``native`` method: CreateBackup / RestoreTableFromBackup (into a new table only)
``choose``  the one place that picks the method (``LIZZY_BACKUP_METHOD``), backs up and restores
``records`` what a backup made, found and deleted: interrupted backups (orphans), ``backup_delete``
``pitr``    RestoreTableToPointInTime into a new table (never over the live one; never "verified")
==========  ==============================================================================================
"""

from migration_app.services.backups.base import (
    ERR_RESTORE_MISMATCH,
    ERR_TABLE_MISSING,
    VERIFIED_BY_APPROXIMATE,
    VERIFIED_BY_CHECKSUM,
    BackupError,
    BackupEstimate,
    backup_estimate,
    backup_estimate_cached,
    table_checksum,
)
from migration_app.services.backups.choose import (
    ERR_BACKUP_UNFINISHED,
    ERR_METHOD_UNKNOWN,
    ERR_NATIVE_UNSUPPORTED,
    METHODS,
    BackupChoice,
    backup_choice,
    backup_choose,
    backup_choose_cached,
    backup_name_for,
    backup_restore,
    backup_restore_refusal,
    backup_table,
    backup_text,
)
from migration_app.services.backups.export import ERR_BACKUP_CORRUPT, ERR_BACKUP_FILE, backup_verify
from migration_app.services.backups.native import (
    ERR_NATIVE_GONE,
    ERR_NATIVE_NOT_AVAILABLE,
    ERR_NATIVE_TARGET_EXISTS,
    PITR_OFF,
    PITR_UNSUPPORTED,
    backup_pitr_enable,
)
from migration_app.services.backups.pitr import (
    ERR_PITR_OFF,
    ERR_PITR_OUTSIDE,
    ERR_PITR_SAME_TABLE,
    ERR_PITR_SOURCE_MISSING,
    ERR_PITR_TARGET_EXISTS,
    ERR_PITR_UNSUPPORTED,
    LATEST,
    VERIFIED_BY_NOTHING,
    backup_restore_point_in_time,
)
from migration_app.services.backups.records import (
    BackupOrphan,
    backup_delete,
    backup_orphans,
    backup_orphans_delete,
)

__all__ = [
    "ERR_BACKUP_CORRUPT",
    "ERR_BACKUP_FILE",
    "ERR_BACKUP_UNFINISHED",
    "ERR_PITR_OFF",
    "ERR_PITR_OUTSIDE",
    "ERR_PITR_SAME_TABLE",
    "ERR_PITR_SOURCE_MISSING",
    "ERR_PITR_TARGET_EXISTS",
    "ERR_PITR_UNSUPPORTED",
    "LATEST",
    "VERIFIED_BY_NOTHING",
    "BackupOrphan",
    "backup_choice",
    "backup_choose_cached",
    "backup_delete",
    "backup_estimate_cached",
    "backup_name_for",
    "backup_orphans",
    "backup_orphans_delete",
    "backup_restore_point_in_time",
    "ERR_METHOD_UNKNOWN",
    "ERR_NATIVE_GONE",
    "ERR_NATIVE_NOT_AVAILABLE",
    "ERR_NATIVE_TARGET_EXISTS",
    "ERR_NATIVE_UNSUPPORTED",
    "ERR_RESTORE_MISMATCH",
    "ERR_TABLE_MISSING",
    "PITR_OFF",
    "PITR_UNSUPPORTED",
    "VERIFIED_BY_APPROXIMATE",
    "VERIFIED_BY_CHECKSUM",
    "METHODS",
    "BackupChoice",
    "BackupError",
    "BackupEstimate",
    "backup_choose",
    "backup_estimate",
    "backup_pitr_enable",
    "backup_restore",
    "backup_restore_refusal",
    "backup_table",
    "backup_text",
    "backup_verify",
    "table_checksum",
]
