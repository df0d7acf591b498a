"""The locked operations the host command and the Ansible modules share, written once:
lock-then-prune, and lock-select-verify."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .catalog import BackupSet, find_set
from .config import DatabaseConfig
from .errors import PgdrillError
from .retention import is_future
from .series import Series, utcnow
from .verify import verify_set


def prune(config: DatabaseConfig, dry_run: bool = False, wait: Optional[float] = None) -> Dict[str, Any]:
    """Apply retention under the series lock; a dry run only reads (no lock file, no directory)."""
    series = Series(config)
    if dry_run:
        return series.prune(dry_run=True)
    with series.lock(wait):
        return series.prune()


def select_for_verify(sets: List[BackupSet], wanted: Optional[str], every: bool) -> List[BackupSet]:
    """The sets a verify looks at. By default the newest set with a trusted manifest, so that a set
    whose files went missing or were truncated is reported rather than passed over silently."""
    if every and wanted:
        raise PgdrillError(f"verify --all was given together with the set {wanted!r}", "pass either --all or one set, not both")
    if every:
        return [backup for backup in sets if backup.manifest_trusted]
    if wanted is None:
        now = utcnow()
        for backup in sets:
            if backup.manifest_trusted and not is_future(backup.time, now):
                return [backup]
        raise PgdrillError("there is no complete backup set", "take a backup first: pgdrill-backup")
    return [find_set(sets, wanted)]


def verify(config: DatabaseConfig, wanted: Optional[str] = None, every: bool = False, restore: bool = False,
           jobs: Optional[int] = None, record: bool = True, wait: Optional[float] = None) -> List[Dict[str, Any]]:
    """Verify the chosen sets under the series lock; one result per set."""
    series = Series(config)
    with series.lock(wait):
        chosen = select_for_verify(series.sets(), wanted, every)
        if not chosen:
            raise PgdrillError(f"there is no complete backup set in {config.backup_dir}", "take a backup first: pgdrill-backup")
        return [verify_set(config, backup, restore=restore, jobs=jobs, record=record) for backup in chosen]
