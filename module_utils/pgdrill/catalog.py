# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""What is in a backup directory: the sets of one series, and leftover temporaries."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from . import dirsets, manifest as manifest_mod
from .errors import PgdrillError
from .fsio import NOFOLLOW, os_error
from .naming import DIRECTORY_EXTENSION, group_by_set, parse_stamp, parse_temp_name, set_id
from .sets import RecordedVerdict, is_complete, newest


@dataclass
class FileEntry:
    name: str
    kind: str
    ext: str
    size: int
    mtime: float
    # A directory-format dump's directory: its entries (name -> size, -1 for one not a regular file).
    members: Optional[Dict[str, int]] = None


@dataclass
class BackupSet(RecordedVerdict):
    prefix: str
    stamp: str
    directory: str
    files: List[FileEntry] = field(default_factory=list)
    manifest: Optional[Dict[str, Any]] = None  # only when it can be trusted
    manifest_error: Optional[str] = None
    # What is wrong with the files a trusted manifest lists (missing, wrong size): a stat, no hashing.
    file_problems: List[str] = field(default_factory=list)
    verification: Optional[Dict[str, Any]] = None
    # The set's pin record; a pin file that cannot be read still pins the set (see ``pinned``).
    pin: Optional[Dict[str, Any]] = None

    @property
    def id(self) -> str:
        return set_id(self.prefix, self.stamp)

    @property
    def document(self) -> Dict[str, Any]:
        """The trusted manifest. Only for a set whose manifest is trusted: else a PgdrillError."""
        if self.manifest is None or self.manifest_error is not None:
            raise PgdrillError(f"backup set {self.id} has no trusted manifest: {self.problem}", "choose a complete set: pgdrill-backup list")
        return self.manifest

    @property
    def manifest_trusted(self) -> bool:
        return self.manifest is not None and self.manifest_error is None

    @property
    def complete(self) -> bool:
        """The manifest is trusted and every file it lists is there with its recorded size."""
        return self.manifest_trusted and not self.file_problems

    @property
    def damaged(self) -> bool:
        return self.manifest_error is not None or bool(self.file_problems)

    @property
    def problem(self) -> Optional[str]:
        """Why the set is not complete, for messages; None when it is."""
        if self.manifest is None and self.manifest_error is None:
            return "no manifest: the set is incomplete (a failed or interrupted run)"
        return self.manifest_error or ("; ".join(self.file_problems) or None)

    @property
    def kinds(self) -> "frozenset[str]":
        """The kinds of backup the manifest lists (db, globals, media)."""
        if not self.manifest_trusted:
            return frozenset()
        return frozenset(str(entry.get("kind")) for entry in self.document["files"])

    @property
    def time(self) -> datetime:
        """When the set was taken: the manifest's start time; for a set without a trustworthy
        manifest, the newest modification time of its files (never older than the truth)."""
        if self.manifest_trusted:
            return manifest_mod.parse_utc(self.document["started_at"])
        newest = max((entry.mtime for entry in self.files), default=0.0)
        return datetime.fromtimestamp(newest, tz=timezone.utc) if newest else parse_stamp(self.stamp)

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.files)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def file_of_kind(self, kind: str) -> Optional[Dict[str, Any]]:
        """The manifest's entry of a kind (db, globals, media)."""
        for entry in (self.manifest or {}).get("files", []):
            if entry.get("kind") == kind:
                return entry
        return None

    @property
    def file_names(self) -> List[str]:
        return sorted(entry.name for entry in self.files)

    def paths(self, kinds: Optional["frozenset[str]"] = None) -> Dict[str, int]:
        """Each file of the set (of ``kinds``, default all) by its path in the backup directory, with
        its size: a directory-format dump's members as ``<dir>/<member>``, what travels between hosts."""
        found = {}
        for entry in self.files:
            if kinds is not None and entry.kind not in kinds:
                continue
            if entry.members is None:
                found[entry.name] = entry.size
            else:
                found.update({dirsets.member_path(entry.name, member): size for member, size in entry.members.items()})
        return found

    @property
    def pinned(self) -> bool:
        """A pin file is there: whatever it says, retention never removes the set."""
        return any(entry.kind == "pin" for entry in self.files)

    @property
    def pin_reason(self) -> str:
        if not self.pinned:
            return ""
        reason = (self.pin or {}).get("reason")
        return str(reason) if isinstance(reason, str) and reason else "(the pin file gives no reason)"


def file_problems(listed: List[Dict[str, Any]], present: Dict[str, FileEntry]) -> List[str]:
    """What is wrong with the files a manifest lists, from their stat alone. Pure."""
    found = []
    for entry in listed:
        have = present.get(entry["name"])
        if have is None:
            found.append(f"{entry['name']} is missing")
        elif dirsets.is_directory(entry) or have.members is not None:
            found.extend(dirsets.member_problems(entry["name"], entry.get("members") or [], have.members or {}))
        elif have.size != entry["size"]:
            found.append(f"{entry['name']} is {have.size} bytes, the manifest says {entry['size']}")
    return found


def _listdir(directory: str) -> List[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
    except PermissionError:
        raise PgdrillError(f"cannot read backup directory {directory}: permission denied", "run as the backup user that owns it") from None
    except OSError as exc:
        raise os_error(exc, "read the backup directory", directory) from None


def _read_json(path: str) -> Any:
    """A manifest or record, never through a link and never more than the bound (ValueError)."""
    fd = os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > manifest_mod.MAX_DOCUMENT_BYTES:
            raise ValueError(f"larger than {manifest_mod.MAX_DOCUMENT_BYTES >> 20} MiB")
        return manifest_mod.decode_document(handle.read(manifest_mod.MAX_DOCUMENT_BYTES + 1))


def scan(directory: str, prefix: str) -> List[BackupSet]:
    """Every set of ``prefix`` in ``directory``, newest first. Foreign files are never included."""
    names = _listdir(directory)
    sets = []
    for stamp, parsed in group_by_set(names, prefix).items():
        backup = BackupSet(prefix, stamp, directory)
        for item in parsed:
            try:
                info = os.lstat(os.path.join(directory, item.name))
            except OSError:
                continue  # gone meanwhile, or not ours to look at
            members = None
            if item.ext == DIRECTORY_EXTENSION and stat.S_ISDIR(info.st_mode):
                try:
                    members = dirsets.listing(os.path.join(directory, item.name))
                except OSError:
                    continue
            elif not stat.S_ISREG(info.st_mode):
                continue  # a directory or link with a backup-like name is not ours
            size = sum(max(size, 0) for size in members.values()) if members is not None else info.st_size
            backup.files.append(FileEntry(item.name, item.kind, item.ext, size, info.st_mtime, members))
        kinds = {entry.kind: entry for entry in backup.files}
        if not backup.files:
            continue
        if "manifest" in kinds:
            try:
                document = _read_json(backup.path(kinds["manifest"].name))
                found = manifest_mod.problems(document, prefix, stamp)
                # Only a trusted manifest is kept: code reading its fields must never meet a string
                # where an object belongs. An untrusted one is described by manifest_error alone.
                backup.manifest = None if found else document
                backup.manifest_error = "; ".join(found) or None
                if not found:
                    backup.file_problems = file_problems(document["files"], {entry.name: entry for entry in backup.files})
            except (OSError, ValueError) as exc:
                backup.manifest_error = f"unreadable manifest: {exc}"
        if "verify" in kinds:
            try:
                record = _read_json(backup.path(kinds["verify"].name))
                backup.verification = record if isinstance(record, dict) else None
            except (OSError, ValueError):
                backup.verification = None
        if "pin" in kinds:
            try:
                record = _read_json(backup.path(kinds["pin"].name))
                backup.pin = record if isinstance(record, dict) else {}
            except (OSError, ValueError):
                backup.pin = {}
        sets.append(backup)
    sets.sort(key=lambda item: (item.time, item.stamp), reverse=True)
    return sets


def stale_temporaries(directory: str, prefix: str) -> List[str]:
    """Hidden partial files of this series. Only call while holding the series lock."""
    found = []
    for name in _listdir(directory):
        parsed = parse_temp_name(name)
        if parsed is not None and parsed.prefix == prefix:
            found.append(name)
    return sorted(found)


def find_set(sets: List[BackupSet], wanted: Optional[str], now: Optional[datetime] = None, usable: Callable[[BackupSet], bool] = is_complete) -> BackupSet:
    """A set by id, stamp or file name; the newest ``usable`` (by default: complete) one when
    ``wanted`` is None (a set dated in the future is never "the newest": it can only be named)."""
    if wanted is None:
        found = newest(sets, now or datetime.now(timezone.utc), usable)
        if found is not None:
            return found
        raise PgdrillError("there is no complete backup set", "take a backup first: pgdrill-backup")
    wanted_name = os.path.basename(wanted)
    for backup in sets:
        if wanted_name in (backup.id, backup.stamp) or any(entry.name == wanted_name for entry in backup.files):
            return backup
    raise PgdrillError(f"no backup set named {wanted!r}", "run 'pgdrill-backup list' to see the sets")


def select_for_verify(sets: List[BackupSet], wanted: Optional[str], every: bool) -> List[BackupSet]:
    """The sets a verify looks at. By default the newest set with a trusted manifest, so that a set
    whose files went missing or were truncated is reported rather than passed over silently."""
    if every and wanted:
        raise PgdrillError(f"verify --all was given together with the set {wanted!r}", "pass either --all or one set, not both")
    if every:
        return [backup for backup in sets if backup.manifest_trusted]
    return [find_set(sets, wanted, datetime.now(timezone.utc), usable=lambda backup: backup.manifest_trusted)]
