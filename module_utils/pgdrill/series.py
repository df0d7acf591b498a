"""One backup series (a prefix in a directory): its lock, its sets, cleanup and pruning."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import catalog, manifest as manifest_mod, retention
from .config import DatabaseConfig
from .fsio import ensure_private_dir, fsync_dir
from .locking import SeriesLock

def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Series:
    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self.directory = config.backup_dir
        self.prefix = config.prefix

    def lock(self, wait: Optional[float] = None) -> SeriesLock:
        ensure_private_dir(self.directory)
        return SeriesLock(self.directory, self.prefix, self.config.lock_wait if wait is None else wait)

    def sets(self) -> List[catalog.BackupSet]:
        return catalog.scan(self.directory, self.prefix)

    def describe(self, now: Optional[datetime] = None) -> List[Dict[str, Any]]:
        """The sets, newest first, as plain data for list, info and reports."""
        now = now or utcnow()
        return [
            {
                "set": backup.id,
                "prefix": backup.prefix,
                "stamp": backup.stamp,
                "manifest": manifest_mod.manifest_name(backup.prefix, backup.stamp),
                "time": backup.time.isoformat(),
                "age_seconds": round((now - backup.time).total_seconds(), 1),
                "size": backup.size,
                "state": "complete" if backup.complete else ("damaged" if backup.damaged else "incomplete"),
                "verified": backup.verified,
                "files": [entry.name for entry in backup.files],
            }
            for backup in self.sets()
        ]

    def remove_stale_temporaries(self) -> List[str]:
        """Delete partial files left by killed runs of this series.
        Call only under the series lock: then no run of this series can be writing them."""
        removed = []
        for name in catalog.stale_temporaries(self.directory, self.prefix):
            try:
                os.unlink(os.path.join(self.directory, name))
                removed.append(name)
            except FileNotFoundError:
                pass
        return removed

    def plan_prune(self, now: Optional[datetime] = None) -> List[Dict[str, Any]]:
        sets = self.sets()
        facts = [retention.SetFacts(s.id, s.time, s.complete, s.damaged, s.known_bad) for s in sets]
        decisions = retention.plan(facts, now or utcnow(), self.config.keep_last, self.config.retention_days, self.config.debris_grace_hours)
        by_id = {s.id: s for s in sets}
        return [
            {
                "set": d.set_id,
                "action": d.action,
                "reason": d.reason,
                "time": by_id[d.set_id].time.isoformat(),
                "files": sorted(entry.name for entry in by_id[d.set_id].files),
                "size": by_id[d.set_id].size,
            }
            for d in decisions
        ]

    def prune(self, dry_run: bool = False, now: Optional[datetime] = None) -> Dict[str, Any]:
        """Apply retention. The caller holds the lock. Manifests go first, so an interrupted prune
        leaves incomplete sets (debris), never a manifest that points at missing files."""
        plan = self.plan_prune(now)
        removed = [entry for entry in plan if entry["action"] == retention.REMOVE]
        kept = [entry for entry in plan if entry["action"] == retention.KEEP]
        if not dry_run:
            for entry in removed:
                names = sorted(entry["files"], key=lambda name: 0 if "_manifest_" in name else 1)
                for name in names:
                    try:
                        os.unlink(os.path.join(self.directory, name))
                    except FileNotFoundError:
                        pass
            if removed:
                fsync_dir(self.directory)
        return {"removed": removed, "kept": kept, "dry_run": dry_run}



def recent_set(series: Series, younger_than_seconds: int, now: Optional[datetime] = None) -> Optional[Dict[str, Any]]:
    """The newest complete set if it is younger than the limit (a limit of 0 never matches)."""
    if younger_than_seconds <= 0:
        return None
    for entry in series.describe(now):
        if entry["state"] == "complete":
            return entry if entry["age_seconds"] < younger_than_seconds else None
    return None
