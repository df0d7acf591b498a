# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Push: upload the sets a remote still owes, each file proven after its upload, the manifest last."""

from __future__ import annotations

import logging
import socket
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence

from ..catalog import BackupSet, find_set, scan
from ..config import DatabaseConfig, retention_policy
from ..errors import PgdrillError
from ..fsio import sha256_of
from ..offsite_sets import (
    future_remote_sets,
    is_sealed,
    manifest_digests,
    owed_sets,
    plan_upload,
    remote_sets,
    set_files,
    uploaded_sets,
)
from ..series import utcnow
from ..storage import LockSettings, Remote, RemoteObject
from .base import DigestSink, lock_settings, objects_by_name, open_for, read_document, series_hosts

log = logging.getLogger("pgdrill")


def push_set(remote: Remote, backup: BackupSet, objects: Dict[str, RemoteObject], lock: Optional[LockSettings], dry_run: bool = False) -> Dict[str, Any]:
    """Upload what the remote lacks of one complete set, its manifest last; resumable."""
    plan = plan_upload(set_files(backup), objects)
    if plan.conflicts:
        raise PgdrillError(
            f"{', '.join(remote.where(name) for name in plan.conflicts)} already exist(s) with another size; pgdrill never overwrites a remote object",
            "find out how a different file got there (another host writing the same prefix?) and remove it by hand, then push again",
        )
    expected = manifest_digests((backup.manifest or {}).get("files", []))
    junk = [problem for problem in (_present_problem(remote, name, expected.get(name) or sha256_of(backup.path(name))[0]) for name in plan.present) if problem]
    if junk:
        raise PgdrillError(
            f"the remote holds objects of {backup.id} with the right names and sizes but other contents: {'; '.join(junk)}; "
            "the set is not complete there, and pgdrill never overwrites a remote object",
            "find out how they got there (another host writing the same prefix, or someone with write access to the bucket), "
            "remove them from the remote by hand, then push again",
        )
    uploaded = []
    for name in plan.upload:
        if not dry_run:
            remote.put(backup.path(name), name, sha256=expected.get(name), lock=lock)
        uploaded.append(name)
    return {"set": backup.id, "uploaded": uploaded, "present": plan.present, "dry_run": dry_run}


def remote_only_sets(local: Sequence[BackupSet], remote_objects: Dict[str, RemoteObject], prefix: str, limit: int = 3) -> List[str]:
    """Manifest names of the newest complete remote sets (at most ``limit``) this host does not hold:
    where another host's sets would show. Pure."""
    here = {backup.id for backup in local}
    found = [entry.manifest for entry in remote_sets(remote_objects, prefix) if entry.complete and entry.set_id not in here]
    return [name for name in reversed(found) if name][:limit]


def _other_hosts(config: DatabaseConfig, remote: Remote, local: Sequence[BackupSet], objects: Dict[str, RemoteObject]) -> List[str]:
    """The other hosts whose sets of this series the remote holds (a fleet sharing one remote path)."""
    ours = set(series_hosts(config, [config.backup_dir])) or {socket.gethostname()}
    found = set()
    for name in remote_only_sets(local, objects, config.prefix):
        try:
            document = read_document(remote, name)
        except (ValueError, PgdrillError):
            continue  # list --remote and verify --remote name what is wrong with it
        host = document.get("host") if isinstance(document, dict) else None
        if isinstance(host, str) and host not in ours:
            found.add(host)
    return sorted(found)


def _abort_stale_uploads(config: DatabaseConfig, remote: Remote, now: datetime) -> List[str]:
    """Abort the series' uploads interrupted over a day ago. Credentials that may not list or abort
    them (put-only hosts) do not fail the push: a warning says what to grant, or what does it instead."""
    try:
        return remote.abort_stale_uploads(config.prefix, now)
    except PgdrillError as exc:
        log.warning(
            "%s: cannot abort interrupted uploads on %s (%s); their parts stay billed: grant s3:ListBucketMultipartUploads and "
            "s3:AbortMultipartUpload, or give the bucket a lifecycle rule that aborts incomplete multipart uploads",
            config.label,
            remote.text,
            exc.problem,
        )
        return []


def _present_problem(remote: Remote, name: str, sha256: str) -> Optional[str]:
    """None when the remote's ``name`` is this very file: its stored sha256 equals the local one,
    or, where the remote stores none (an object written by someone else, a backend without
    sha256), the download hashes to it. Else what is wrong. A same-name, same-size object is
    never taken on trust."""
    there = remote.stat(name)
    if there is None:
        return f"{remote.where(name)} vanished while it was checked"
    if there.sha256 is not None:
        return None if there.sha256 == sha256 else f"{remote.where(name)} was stored with sha256 {there.sha256}, the local file's is {sha256}"
    sink = DigestSink()
    remote.get_into(name, sink)
    return None if sink.sha256 == sha256 else f"{remote.where(name)} has sha256 {sink.sha256} (downloaded), the local file's is {sha256}"


def push(
    config: DatabaseConfig,
    wanted: Optional[str] = None,
    every: bool = False,
    owed: bool = False,
    dry_run: bool = False,
    remote: Optional[Remote] = None,
    now: Optional[datetime] = None,
) -> Dict[str, Any]:
    """Push sets of the series (the caller holds its lock): one named set, the newest complete set
    (default), every complete set (``every``), or the sets a push still owes (``owed``: what the
    backup run does after each set, so an upload that failed is retried by the next run). Each
    real push first aborts the series' multipart uploads that were interrupted over a day ago."""
    remote = remote or open_for(config)
    now = now or utcnow()
    sets = scan(config.backup_dir, config.prefix)
    objects = objects_by_name(remote)
    aborted = [] if dry_run else _abort_stale_uploads(config, remote, now)
    if aborted:
        log.info("%s: aborted %d interrupted upload(s) on %s: %s", config.label, len(aborted), remote.text, ", ".join(aborted))
    ahead = future_remote_sets(objects, config.prefix, now)
    if ahead:
        log.warning(
            "%s: %s holds %d set(s) dated in the future (%s): planted by someone who can write there, or taken while a clock was wrong; "
            "they stop no upload and never count as recent: check them (pgdrill-backup verify --remote --all) and remove them by hand",
            config.label,
            remote.text,
            len(ahead),
            ", ".join(ahead[:5]),
        )
    shared = _other_hosts(config, remote, sets, objects)
    if shared:
        log.warning(
            "%s: %s holds sets of the series '%s' taken on other hosts (%s): hosts that share one remote path mix their sets there, "
            "and each one's pulls and remote retention see the others'; give each host its own remote path (s3://BUCKET/PREFIX/HOST, "
            "the pgdrill_backup role's default)",
            config.label,
            remote.text,
            config.prefix,
            ", ".join(shared),
        )
    if owed:
        chosen = owed_sets(sets, objects, config.prefix, sealed_only=config.encrypted, policy=retention_policy(config, remote=True), now=now)
    elif every:
        chosen = [backup for backup in sorted(sets, key=lambda item: item.stamp) if backup.complete and (is_sealed(backup) or not config.encrypted)]
    else:
        chosen = [find_set(sets, wanted)]
    for backup in chosen:
        if not backup.complete:
            raise PgdrillError(f"backup set {backup.id} is not complete ({backup.problem}); only complete sets are pushed", "verify it, or push another set")
        if config.encrypted and not is_sealed(backup):
            raise PgdrillError(
                f"backup set {backup.id} was taken before encryption was turned on: its files are plaintext, and this series keeps plaintext on the host",
                "push encrypted sets only (take a new backup), or push this one from a config without encrypt_recipients if you mean to",
            )
    lock = lock_settings(config)
    if lock is not None and chosen:
        remote.check_lock(lock)
    results = [push_set(remote, backup, objects, lock, dry_run) for backup in chosen]
    return {
        "remote": remote.text,
        "sets": results,
        "dry_run": dry_run,
        "aborted_uploads": aborted,
        "uploaded_sets": uploaded_sets(sets, objects, config.prefix, [result["set"] for result in results] if not dry_run else []),
    }
