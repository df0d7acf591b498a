# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""One backup series (a prefix in a directory): its lock, its sets, cleanup and pruning."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import catalog, manifest as manifest_mod, retention
from .config import DatabaseConfig
from .fsio import ensure_private_dir, fsync_dir, remove_file
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
        """The sets, newest first, as plain data for list, info and reports.

        ``state`` is complete, damaged, incomplete or future (a complete set dated ahead of the
        clock). A set dated in the future has no age (``age_seconds`` None) but ``ahead_seconds``."""
        now = now or utcnow()
        return [describe_set(backup, now) for backup in self.sets()]

    def remove_stale_temporaries(self) -> List[str]:
        """Delete partial files left by killed runs of this series.
        Call only under the series lock: then no run of this series can be writing them."""
        return [name for name in catalog.stale_temporaries(self.directory, self.prefix) if remove_file(os.path.join(self.directory, name))]

    def plan_prune(self, now: Optional[datetime] = None, protect: Optional[str] = None) -> List[Dict[str, Any]]:
        """The retention decisions; ``protect`` is the id of a set this run has just written."""
        sets = self.sets()
        facts = [
            retention.SetFacts(s.id, s.time, s.complete, s.damaged, s.known_bad, s.kinds, s.id == protect, s.problem if s.damaged else "")
            for s in sets
        ]
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

    def prune(self, dry_run: bool = False, now: Optional[datetime] = None, protect: Optional[str] = None) -> Dict[str, Any]:
        """Apply retention. The caller holds the lock. Manifests go first, so an interrupted prune
        leaves incomplete sets (debris), never a manifest that points at missing files."""
        plan = self.plan_prune(now, protect)
        removed = [entry for entry in plan if entry["action"] == retention.REMOVE]
        kept = [entry for entry in plan if entry["action"] == retention.KEEP]
        if not dry_run:
            for entry in removed:
                names = sorted(entry["files"], key=lambda name: 0 if "_manifest_" in name else 1)
                for name in names:
                    remove_file(os.path.join(self.directory, name))
            if removed:
                fsync_dir(self.directory)
        return {"removed": removed, "kept": kept, "dry_run": dry_run}



def set_state(backup: catalog.BackupSet, now: datetime) -> str:
    """complete, damaged, incomplete, or future (complete but dated ahead of the clock)."""
    if backup.complete:
        return "future" if retention.is_future(backup.time, now) else "complete"
    return "damaged" if backup.damaged else "incomplete"


def describe_set(backup: catalog.BackupSet, now: datetime) -> Dict[str, Any]:
    age = (now - backup.time).total_seconds()
    ahead = retention.is_future(backup.time, now)
    return {
        "set": backup.id,
        "prefix": backup.prefix,
        "stamp": backup.stamp,
        "manifest": manifest_mod.manifest_name(backup.prefix, backup.stamp),
        "time": backup.time.isoformat(),
        # A set from the future has no age: a negative one would read as "very fresh".
        "age_seconds": None if ahead else round(max(age, 0.0), 1),
        "ahead_seconds": round(-age, 1) if ahead else 0.0,
        "size": backup.size,
        "state": set_state(backup, now),
        "problem": backup.problem if backup.damaged else None,
        "kinds": sorted(backup.kinds),
        "verified": backup.verified,
        "verification": _verification_summary(backup.verification),
        "finished_at": (backup.manifest or {}).get("finished_at"),
        "duration_seconds": (backup.manifest or {}).get("duration_seconds"),
        "sizes": {entry.kind: entry.size for entry in backup.files if entry.kind not in ("manifest", "verify")},
        "files": [entry.name for entry in backup.files],
    }


def _verification_summary(record: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """When the set was last verified, how deep, and whether it passed (for metrics and reports)."""
    if not isinstance(record, dict):
        return None
    return {"ok": bool(record.get("ok")), "restored": bool(record.get("restored")), "checked_at": record.get("checked_at")}


def future_sets_problem(rows: List[Dict[str, Any]]) -> Optional[str]:
    """A message naming the clock when sets are dated in the future, else None. Pure."""
    ahead = [row for row in rows if row["state"] == "future"]
    if not ahead:
        return None
    worst = max(row["ahead_seconds"] for row in ahead)
    return (
        f"{len(ahead)} backup set(s) are dated in the future (up to {worst / 3600:.1f} h ahead of this host's clock, "
        f"e.g. {ahead[0]['set']}): the clock was wrong when they were taken, or is wrong now. They never count as "
        "recent backups; check the host's time (timedatectl, NTP), then verify and remove them by hand"
    )


def recent_set(series: Series, younger_than_seconds: int, now: Optional[datetime] = None) -> Optional[Dict[str, Any]]:
    """The newest complete set if it is younger than the limit (a limit of 0 never matches).
    Sets dated in the future never count as recent."""
    if younger_than_seconds <= 0:
        return None
    for entry in series.describe(now):
        if entry["state"] == "complete":
            return entry if entry["age_seconds"] < younger_than_seconds else None
    return None
