# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""What push, pull, verify and prune share: the remote a series' config names, its listing, its
sets read and checked against their manifests, a set chosen by name or the newest complete one."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence

from .. import manifest as manifest_mod
from ..catalog import scan
from ..config import DatabaseConfig
from ..errors import PgdrillError
from ..offsite_sets import (
    RemoteSetInfo,
    remote_set_problems,
    remote_sets,
)
from ..storage import LockSettings, Remote, RemoteObject, parse_lock
from ..storage.backends import open_remote
from ..series import utcnow
from ..sets import newest


NO_REMOTE_FIX = "set remote = s3://BUCKET/PREFIX or rclone:REMOTE:PATH in the config (the pgdrill_backup role: pgdrill_backup_remote)"


# --- a sink that only hashes -------------------------------------------------------------------
class DigestSink:
    """Receives a download and keeps only its size and sha256 (and, when asked, the bytes of a
    small document). Stands in for an AtomicWriter where nothing is stored."""

    def __init__(self, keep: bool = False, limit: int = manifest_mod.MAX_DOCUMENT_BYTES) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self.keep = keep
        self.limit = limit
        self.chunks: List[bytes] = []

    def write(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)
        if self.keep:
            if self.size > self.limit:
                raise PgdrillError(f"a remote document is larger than {self.limit >> 20} MiB", "this is not a pgdrill manifest; check the remote")
            self.chunks.append(bytes(data))

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


# --- I/O --------------------------------------------------------------------------------------------
def open_for(config: DatabaseConfig) -> Remote:
    if not config.remote:
        raise PgdrillError(f"{config.label}: no off-host copy is configured", NO_REMOTE_FIX)
    return open_remote(config.remote, endpoint_url=config.remote_endpoint_url, region=config.remote_region, profile=config.remote_profile)


def lock_settings(config: DatabaseConfig) -> Optional[LockSettings]:
    return parse_lock(config.remote_object_lock_mode, config.remote_object_lock_days)


def objects_by_name(remote: Remote) -> Dict[str, RemoteObject]:
    return {item.name: item for item in remote.list()}


def read_document(remote: Remote, name: str) -> Any:
    sink = DigestSink(keep=True)
    remote.get_into(name, sink)
    return manifest_mod.decode_document(sink.data)


def catalog(remote: Remote, prefix: str, objects: Optional[Dict[str, RemoteObject]] = None) -> List[RemoteSetInfo]:
    """The series' sets on the remote, newest first, each with its manifest read and checked
    against the listing (names, sizes, the sha256 stored with each object)."""
    objects = objects_by_name(remote) if objects is None else objects
    found = []
    for entry in remote_sets(objects, prefix):
        info = RemoteSetInfo(entry.set_id, prefix, entry.stamp, {name: objects[name] for name in entry.objects})
        if entry.manifest is not None:
            try:
                document = read_document(remote, entry.manifest)
                problems = manifest_mod.problems(document, prefix, entry.stamp)
            except (ValueError, PgdrillError) as exc:
                document, problems = None, [f"unreadable manifest: {exc}"]
            if problems:
                info.problems = problems
            else:
                info.manifest = document
                info.problems = remote_set_problems(document["files"], info.objects, remote.text)
        pins = [item.name for item in entry.files if item.kind == "pin"]
        if pins:
            try:
                pin = read_document(remote, pins[0])
                info.pin = pin if isinstance(pin, dict) else {"reason": "(unreadable pin)"}
            except (ValueError, PgdrillError):
                info.pin = {"reason": "(unreadable pin)"}
        found.append(info)
    found.sort(key=lambda item: (item.time, item.stamp), reverse=True)
    return found


def choose(sets: List[RemoteSetInfo], wanted: Optional[str], now: Optional[datetime] = None) -> RemoteSetInfo:
    """A remote set by id or stamp, or the newest complete one (never one dated in the future)."""
    if wanted is None:
        found = newest(sets, now or utcnow())
        if found is not None:
            return found
        raise PgdrillError("the remote holds no complete backup set of this series", "push one first: pgdrill-backup push (or check remote and prefix)")
    name = os.path.basename(wanted)
    for info in sets:
        if name in (info.set_id, info.stamp) or name in info.objects:
            return info
    raise PgdrillError(f"the remote holds no backup set named {wanted!r}", "run 'pgdrill-backup list --remote' to see the sets there")


def series_hosts(config: DatabaseConfig, directories: Sequence[str]) -> List[str]:
    """The hosts the series' complete sets in these directories name (where its sets come from)."""
    found = set()
    for directory in dict.fromkeys(directories):
        for backup in scan(directory, config.prefix) if os.path.isdir(directory) else []:
            if backup.complete and isinstance(backup.document.get("host"), str):
                found.add(backup.document["host"])
    return sorted(found)
