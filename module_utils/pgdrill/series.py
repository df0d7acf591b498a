# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""One backup series (a prefix in a directory): its lock, its sets, cleanup and pruning."""

from __future__ import annotations

import os
import pwd
import socket
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import catalog, manifest as manifest_mod, retention, sets, verdict
from .config import DatabaseConfig, retention_policy
from .errors import PgdrillError
from .fsio import ensure_private_dir, fsync_dir, remove_file, write_atomic
from .locking import SeriesLock

MAX_PIN_REASON = 200


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
        return [row for row, _ in sets.prune_plan(self.sets(), now or utcnow(), retention_policy(self.config), protect)]

    def prune(self, dry_run: bool = False, now: Optional[datetime] = None, protect: Optional[str] = None) -> Dict[str, Any]:
        """Apply retention. The caller holds the lock. Manifests go first, so an interrupted prune
        leaves incomplete sets (debris), never a manifest that points at missing files."""
        plan = self.plan_prune(now, protect)
        removed = [entry for entry in plan if entry["action"] == retention.REMOVE]
        kept = [entry for entry in plan if entry["action"] == retention.KEEP]
        if not dry_run:
            for entry in removed:
                for name in sets.deletion_order(entry["files"]):
                    remove_file(os.path.join(self.directory, name))
            if removed:
                fsync_dir(self.directory)
        return {"removed": removed, "kept": kept, "dry_run": dry_run, "policy": retention_policy(self.config).describe()}

    def pin(self, wanted: str, reason: str, now: Optional[datetime] = None, dry_run: bool = False) -> Dict[str, Any]:
        """Pin a complete set out of retention. The caller holds the lock. A pin is written once:
        pinning a pinned set again changes nothing (``changed`` false) when the reason is the same,
        and is refused when it differs (unpin first). ``dry_run`` checks the same and writes nothing."""
        reason = check_pin_reason(reason)
        backup = catalog.find_set(self.sets(), wanted)
        if backup.pinned:
            pin = pin_summary(backup) or {}
            if pin["reason"] == reason:
                return {"set": backup.id, "changed": False, "pin": pin}
            raise PgdrillError(
                f'{backup.id} is already pinned by {pin["by"]} at {pin["pinned_at"]}: "{pin["reason"]}"',
                f"a pin is written once: 'pgdrill-backup unpin {backup.id}' first to pin it with another reason",
            )
        if not backup.complete:
            raise PgdrillError(f"{backup.id} is not a complete backup set ({backup.problem})", "pin a complete set: 'pgdrill-backup list' shows their state")
        document = manifest_mod.build_pin(backup.id, reason, now or utcnow(), pinned_by())
        if not dry_run:
            write_atomic(self.directory, manifest_mod.pin_name(backup.prefix, backup.stamp), manifest_mod.encode(document))
        return {"set": backup.id, "changed": True, "pin": {key: document[key] for key in ("reason", "pinned_at", "by")}}

    def unpin(self, wanted: str, dry_run: bool = False) -> Dict[str, Any]:
        """Remove a set's pin (the caller holds the lock); a set without one is left as it is."""
        backup = catalog.find_set(self.sets(), wanted)
        if not backup.pinned:
            return {"set": backup.id, "changed": False, "pin": None}
        pin = pin_summary(backup)
        if not dry_run:
            for entry in backup.files:
                if entry.kind == "pin":
                    remove_file(backup.path(entry.name))
            fsync_dir(self.directory)
        return {"set": backup.id, "changed": True, "pin": pin}


def check_pin_reason(reason: Optional[str]) -> str:
    """A pin's reason: one printable line, at most MAX_PIN_REASON characters."""
    text = (reason or "").strip()
    if not text or len(text) > MAX_PIN_REASON or not text.isprintable():
        raise PgdrillError(
            f"a pin needs a reason: one line of at most {MAX_PIN_REASON} printable characters, got {reason!r}",
            'say why the set must stay, e.g. --reason "before migration 0042"',
        )
    return text


def pinned_by() -> str:
    """user@host of whoever pins a set, for the record."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name  # the effective user, whatever $USER says
    except KeyError:
        user = f"uid{os.geteuid()}"
    return f"{user}@{socket.gethostname()}"


def pin_summary(backup: catalog.BackupSet) -> Optional[Dict[str, Any]]:
    """A pinned set's reason, when and by whom; None when it is not pinned."""
    if not backup.pinned:
        return None
    record = backup.pin or {}
    return {
        "reason": backup.pin_reason,
        "pinned_at": record.get("pinned_at") if isinstance(record.get("pinned_at"), str) else None,
        "by": record.get("by") if isinstance(record.get("by"), str) else "(unknown)",
    }


def describe_set(backup: catalog.BackupSet, now: datetime) -> Dict[str, Any]:
    age = (now - backup.time).total_seconds()
    return {
        **sets.listing_row(backup, now),
        "ahead_seconds": round(-age, 1) if retention.is_future(backup.time, now) else 0.0,
        "verified": backup.verified,
        "verification": _verification_summary(backup.verification),
        "duration_seconds": (backup.manifest or {}).get("duration_seconds"),
        "pin": pin_summary(backup),
        "sizes": {entry.kind: entry.size for entry in backup.files if entry.kind not in ("manifest", "verify", "pin")},
        "files": [entry.name for entry in backup.files],
        "paths": sorted(backup.paths()),  # what a copy to another host carries: each member of a directory-format dump
    }


def _verification_summary(record: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The set's last conclusive verification (when, how deep, whether it passed: for metrics and
    reports), the latest run's verdict, and why that run could not verify, if it could not."""
    if not isinstance(record, dict):
        return None
    last = verdict.conclusive(record) or {}
    return {
        "ok": last.get("verdict") == verdict.PASSED,
        "restored": bool(last.get("restored")),
        "checked_at": last.get("checked_at"),
        "verdict": verdict.of_record(record),
        "could_not_verify": verdict.could_not_verify(record),
        "latest_checked_at": record.get("checked_at"),
    }


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
