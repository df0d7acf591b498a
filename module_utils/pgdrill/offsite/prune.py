# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Retention on the remote (the local rules and code, over the remote manifests) and remote pins."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Optional

from .. import manifest as manifest_mod
from .. import retention
from ..config import DatabaseConfig, retention_policy
from ..errors import PgdrillError
from ..fsio import private_work_dir, write_atomic
from ..offsite_sets import (
    RemoteSetInfo,
    read_records,
    with_verifications,
)
from ..series import check_pin_reason, pinned_by, utcnow
from ..sets import deletion_order, is_manifest, prune_plan
from ..storage import LOCKED, Remote, folder_of
from .base import catalog, choose, lock_settings, open_for


def prune_remote(config: DatabaseConfig, dry_run: bool = False, remote: Optional[Remote] = None, now: Optional[datetime] = None) -> Dict[str, Any]:
    """Apply retention to the remote copies with the same rules and code as local retention,
    over the remote manifests (never object timestamps). Manifests are deleted first, so an
    interrupted prune leaves debris, never a manifest without its files; a manifest that Object
    Lock protects keeps every file of its set. An object that Object Lock protects is reported as
    kept (locked), not as an error."""
    remote = remote or open_for(config)
    now = now or utcnow()
    sets = catalog(remote, config.prefix)
    policy = retention_policy(config, remote=True)
    with_verifications(sets, read_records(config, remote.text))
    removed, kept = [], []
    for row, info in prune_plan(sets, now, policy):
        if row["action"] != retention.REMOVE:
            kept.append(row)
            continue
        if dry_run:
            removed.append(row)
            continue
        names = deletion_order(info.objects)
        outcomes = {}
        for name in names:
            outcomes[name] = remote.delete(name)
            if outcomes[name] == LOCKED and is_manifest(name):
                break  # its files' locks may end sooner (taken when each upload began): a kept manifest keeps them all
        locked = [name for name, outcome in outcomes.items() if outcome == LOCKED]
        if locked:
            why = f"{row['reason']}; but {LOCKED}: Object Lock protects {len(locked)} object(s) until their retain-until date"
            kept.append({**row, "action": "keep", "reason": why, "reasons": [why], "locked": locked})
        else:
            for folder in sorted({folder_of(name) for name in names if folder_of(name) != name}):
                remote.remove_empty_folder(folder)
            removed.append(row)
    return {"remote": remote.text, "removed": removed, "kept": kept, "dry_run": dry_run, "policy": policy.describe()}


def unpin_remote(config: DatabaseConfig, set_id: str, remote: Optional[Remote] = None) -> str:
    """Remove a set's pin from the off-host copy (after the local unpin): deleted, absent, or kept
    (locked). Needs delete rights there; put-only hosts unpin the remote from the controller."""
    remote = remote or open_for(config)
    stamp = set_id[len(config.prefix) + 1 : -len("_utc")]
    return remote.delete(manifest_mod.pin_name(config.prefix, stamp))


def remote_pin_summary(info: RemoteSetInfo) -> Optional[Dict[str, Any]]:
    """A remote set's pin as ``list`` shows a local one (reason, when, by whom); None without one. Pure."""
    if info.pin is None:
        return None
    return {key: str(info.pin.get(key)) if isinstance(info.pin.get(key), str) else default for key, default in PIN_FIELDS}


PIN_FIELDS = (("reason", "(unreadable pin)"), ("pinned_at", None), ("by", "(unknown)"))


def pin_remote_only(
    config: DatabaseConfig, wanted: str, reason: Optional[str], unpin: bool = False, dry_run: bool = False, remote: Optional[Remote] = None
) -> Dict[str, Any]:
    """Pin (or unpin) a set that only the off-host copy holds: its pin is uploaded beside it (with
    the series' Object Lock settings), so that remote retention keeps it, as a local pin keeps a
    local set. The caller holds the series lock."""
    remote = remote or open_for(config)
    info = choose(catalog(remote, config.prefix), wanted)
    pin = remote_pin_summary(info)
    if unpin:
        if pin is None:
            return {"set": info.set_id, "changed": False, "pin": None, "remote": "not pinned on the remote"}
        return {
            "set": info.set_id,
            "changed": True,
            "pin": pin,
            "remote": "remote pin " + ("would be removed" if dry_run else unpin_remote(config, info.set_id, remote)),
        }
    text = check_pin_reason(reason)
    if pin is not None:
        if pin["reason"] == text:
            return {"set": info.set_id, "changed": False, "pin": pin, "remote": "already pinned on the remote"}
        raise PgdrillError(
            f'{info.set_id} is already pinned on {remote.text} by {pin["by"]} at {pin["pinned_at"]}: "{pin["reason"]}"',
            f"a pin is written once: 'pgdrill-backup unpin {info.set_id}' first to pin it with another reason",
        )
    if not info.complete:
        raise PgdrillError(
            f"the remote copy of {info.set_id} is not complete: {'; '.join(info.problems) or 'no manifest'}",
            "pin a complete set: 'pgdrill-backup list --remote' shows their state",
        )
    document = manifest_mod.build_pin(info.set_id, text, utcnow(), pinned_by())
    name = manifest_mod.pin_name(config.prefix, info.stamp)
    if not dry_run:
        with private_work_dir(config.work_dir or None, "pin") as directory:
            remote.put(write_atomic(directory, name, manifest_mod.encode(document)).final_path, name, lock=lock_settings(config))
    summary = {key: document[key] for key in ("reason", "pinned_at", "by")}
    return {"set": info.set_id, "changed": True, "pin": summary, "remote": "pin uploaded (the set is on the remote only)"}
