"""Backups of target tables and verified restores (docs/MIGRATIONS.md, "Backups and restore").

==========  ==============================================================================================
``base``    errors, the estimate shown before starting, checksums, what "verified" means
``export``  the ``export`` method: JSON Lines by a parallel Scan, restorable into any table on any endpoint
``native``  the ``native`` method: CreateBackup / RestoreTableFromBackup (into a new table only)
``choose``  the one place that picks the method (``LIZZY_BACKUP_METHOD``), backs up and restores
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
    table_checksum,
)
from migration_app.services.backups.choose import (
    ERR_METHOD_UNKNOWN,
    ERR_NATIVE_UNSUPPORTED,
    METHODS,
    BackupChoice,
    backup_choose,
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

__all__ = [
    "ERR_BACKUP_CORRUPT",
    "ERR_BACKUP_FILE",
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
