# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Backup sets on a remote: what a remote set is, which files of a local set travel and in which
order, what a push still owes, and what ``verify --remote`` proved. Pure but for the verification
records, which live on this host.

A set is uploaded file by file under the remote's prefix with the local file names, the manifest
last: a remote set without its manifest is debris of an interrupted upload and never counts. A
directory-format dump travels as one object per member, ``<the directory's name>/<member>``: its
objects are the set's by their folder, and they count as one file of it.
Verification records stay local: they are rewritten, which a write-once remote does not allow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence

from . import dirsets, manifest as manifest_mod, retention, verdict
from .catalog import BackupSet
from .config import DatabaseConfig
from .errors import PgdrillError
from .fsio import AtomicWriter, ensure_private_dir
from .naming import DIRECTORY_EXTENSION, BackupFileName, group_by_set, parse_file_name, parse_stamp, set_id
from .series import utcnow
from .sets import RecordedVerdict, listing_row
from .storage import RemoteObject, folder_of

log = logging.getLogger("pgdrill")


# --- remote set layout (pure) ---------------------------------------------------------------------
_UPLOAD_RANK = {"db": 0, "globals": 1, "media": 2, "manifest": 9, "pin": 10}


def upload_order(names: Iterable[str]) -> List[str]:
    """The files of one set in the order they are uploaded: data files first (a directory-format
    dump's members by their paths, ``<dir>/<member>``), the manifest last.

    Verification records (kind ``verify``) are rewritten locally and are not part of a set's
    upload. Names that are not the engine's are refused (ValueError): a caller's bug.
    """
    parsed = []
    for name in names:
        entry = parse_file_name(folder_of(name))
        if entry is None:
            raise ValueError(f"not a backup file name: {name!r}")
        if entry.kind != "verify":
            parsed.append((entry, name))
    if len({(entry.prefix, entry.stamp) for entry, _ in parsed}) > 1:
        raise ValueError("upload_order takes the files of one set")
    return [name for entry, name in sorted(parsed, key=lambda item: (_UPLOAD_RANK[item[0].kind], item[1]))]


def members_of(directory: str, objects: Iterable[str]) -> Dict[str, str]:
    """member -> object name, for the objects that lie in the remote folder ``directory``. Pure."""
    return {name[len(directory) + 1 :]: name for name in objects if folder_of(name) == directory and name != directory}


class RemoteSet(NamedTuple):
    set_id: str
    stamp: str
    files: List[BackupFileName]  # a directory-format dump once, for all its members
    complete: bool  # its manifest is on the remote; without one the set is debris
    objects: List[str]  # every object of the set, each member of a directory-format dump among them

    @property
    def manifest(self) -> Optional[str]:
        return next((entry.name for entry in self.files if entry.kind == "manifest"), None)

    @property
    def time(self) -> datetime:
        return parse_stamp(self.stamp)


def remote_sets(names: Iterable[str], prefix: str) -> List[RemoteSet]:
    """The sets of one series on a remote, oldest stamp first. Foreign names are ignored. Pure."""
    names = list(names)
    present = set(names)
    members: Dict[str, List[str]] = {}
    for name in names:
        if "/" in name:
            members.setdefault(folder_of(name), []).append(name)
    folders = [name for name in members if getattr(parse_file_name(name), "ext", None) == DIRECTORY_EXTENSION]
    found = []
    for stamp, files in sorted(group_by_set([name for name in names if "/" not in name] + folders, prefix).items()):
        files = sorted(set(files), key=lambda entry: entry.name)
        complete = any(entry.kind == "manifest" for entry in files)
        objects = sorted({name for entry in files for name in [entry.name, *members.get(entry.name, [])] if name in present})
        found.append(RemoteSet(set_id(prefix, stamp), stamp, files, complete, objects))
    return found


def remote_debris(names: Iterable[str], prefix: str) -> List[RemoteSet]:
    """Remote sets without a manifest: interrupted uploads. They never count as backups."""
    return [entry for entry in remote_sets(names, prefix) if not entry.complete]


class UploadPlan(NamedTuple):
    upload: List[str]  # in upload order, the manifest last
    present: List[str]  # already on the remote with the same size
    conflicts: List[str]  # on the remote with another size: never overwritten


def plan_upload(local: Dict[str, int], remote: Dict[str, RemoteObject]) -> UploadPlan:
    """What a push of one set still has to do, given its local files (name -> size) and the
    remote's objects: resumable after an interrupted push. Pure."""
    upload, present, conflicts = [], [], []
    for name in upload_order(local):
        there = remote.get(name)
        if there is None:
            upload.append(name)
        elif there.size == local[name]:
            present.append(name)
        else:
            conflicts.append(name)
    if conflicts:
        upload = [name for name in upload if getattr(parse_file_name(name), "kind", None) != "manifest"]
    return UploadPlan(upload, present, conflicts)


def remote_set_problems(manifest_files: Iterable[Dict[str, Any]], objects: Dict[str, RemoteObject], where: str) -> List[str]:
    """What is wrong with a remote set, compared with its manifest's ``files`` entries (name, size,
    sha256), from a listing alone: missing objects, other sizes, another sha256 where the remote
    stores one. Empty when nothing is. A listing proves what was stored, not that the storage
    still holds those bytes: only a download (``get``) checks that. Pure."""
    found = []
    for entry in manifest_files:
        name = str(entry.get("name"))
        if dirsets.is_directory(entry):
            found += _directory_problems(entry, objects, where)
            continue
        there = objects.get(name)
        if there is None:
            found.append(f"{where}/{name} is missing")
            continue
        if entry.get("size") is not None and there.size != entry["size"]:
            found.append(f"{where}/{name} has {there.size} bytes, the manifest says {entry['size']}")
        if there.sha256 and entry.get("sha256") and there.sha256 != entry["sha256"]:
            found.append(f"{where}/{name} was stored with sha256 {there.sha256}, the manifest says {entry['sha256']}")
    return found


def _directory_problems(entry: Dict[str, Any], objects: Dict[str, RemoteObject], where: str) -> List[str]:
    """A directory-format dump's members on the remote against the manifest's, by the rule a local
    directory is checked with (dirsets.member_problems), and another sha256 where the remote stores one.
    An object in the folder that the manifest does not list (a storage's leftover of an interrupted
    upload, or anyone's) is not part of the set and does not make it damaged: a pull reads only the
    listed members. Pure."""
    listed = {member["name"] for member in entry["members"]}
    members = {member: objects[name] for member, name in members_of(entry["name"], objects).items() if member in listed}
    found = [f"{where}/{entry['name']} is one object, not the folder of members the manifest lists"] if entry["name"] in objects else []
    found += dirsets.member_problems(f"{where}/{entry['name']}", entry["members"], {member: there.size for member, there in members.items()})
    for member in entry["members"]:
        there = members.get(member["name"])
        if there is not None and there.sha256 and there.sha256 != member["sha256"]:
            found.append(f"{where}/{entry['name']}/{member['name']} was stored with sha256 {there.sha256}, the manifest says {member['sha256']}")
    return found


# Files of a set that travel with it: everything but the local verification record.
TRAVELS = frozenset(("db", "globals", "media", "manifest", "pin"))


# --- decisions (pure) -----------------------------------------------------------------------------
def manifest_digests(files: Iterable[Dict[str, Any]]) -> Dict[str, str]:
    """object name -> the sha256 the manifest lists for it, each member of a directory-format dump
    as its own object. Pure."""
    return {name: listed["sha256"] for entry in files for name, listed in dirsets.entry_objects(entry)}


def set_files(backup: BackupSet) -> Dict[str, int]:
    """The objects a local set has on the remote, name -> size: each file that travels, and each
    member of a directory-format dump as one object (its path in the backup directory, :func:`dirsets.member_path`)."""
    return backup.paths(TRAVELS)


def is_sealed(backup: BackupSet) -> bool:
    """True when the set's manifest says its files are encrypted."""
    return bool(backup.manifest_trusted and backup.document.get("encryption"))


def owed_sets(
    local: Sequence[BackupSet],
    remote_objects: Dict[str, RemoteObject],
    prefix: str,
    sealed_only: bool = False,
    policy: Optional[retention.Policy] = None,
    now: Optional[datetime] = None,
) -> List[BackupSet]:
    """The complete local sets a push still owes the remote, oldest first: every one the remote
    lacks a file of (absent, or held only in part), whatever the stamps: a set planted on the
    remote, or one taken while the clock was wrong, never stops later uploads. With ``policy``
    (the remote's retention), a set absent from the remote that remote retention would remove at
    once (it removed it on purpose, or would) is not owed; one the remote holds part of always is.
    With ``sealed_only`` (an encrypted series) a set taken before encryption was turned on is
    never owed: plaintext does not leave the host on its own. Pure."""
    on_remote = {entry.set_id: entry for entry in remote_sets(remote_objects, prefix)}
    candidates = []
    for backup in sorted(local, key=lambda item: item.stamp):
        if not backup.complete or (sealed_only and not is_sealed(backup)):
            continue
        if any(name not in remote_objects or remote_objects[name].size != size for name, size in set_files(backup).items()):
            candidates.append(backup)
    if policy is None:
        return candidates
    absent = [backup for backup in candidates if backup.id not in on_remote]
    if not absent:
        return candidates
    facts = [
        retention.SetFacts(entry.set_id, parse_stamp(entry.stamp), entry.complete, kinds=frozenset(item.kind for item in entry.files))
        for entry in on_remote.values()
    ] + [retention.SetFacts(backup.id, backup.time, True, kinds=backup.kinds, pinned=backup.pinned) for backup in absent]
    removed = {decision.set_id for decision in retention.plan(facts, now or utcnow(), policy) if decision.action == retention.REMOVE}
    return [backup for backup in candidates if backup.id not in removed]


def future_remote_sets(remote_objects: Dict[str, RemoteObject], prefix: str, now: datetime) -> List[str]:
    """Sets on the remote whose manifest is there and whose stamp lies in the future: planted, or
    taken while a clock was wrong. They are owed nothing and stop nothing; a person should look. Pure."""
    return [entry.set_id for entry in remote_sets(remote_objects, prefix) if entry.complete and retention.is_future(parse_stamp(entry.stamp), now)]


@dataclass
class RemoteSetInfo(RecordedVerdict):
    """A set as the remote holds it, judged from the listing and its manifest."""

    set_id: str
    prefix: str
    stamp: str
    objects: Dict[str, RemoteObject]
    manifest: Optional[Dict[str, Any]] = None
    problems: List[str] = field(default_factory=list)
    pin: Optional[Dict[str, Any]] = None
    # What verify --remote (or a pull) proved, from this host's records (read_records): a
    # verification record as the backup directory keeps one per set, read by the same rule.
    verification: Optional[Dict[str, Any]] = None

    @property
    def id(self) -> str:
        return self.set_id

    @property
    def complete(self) -> bool:
        return self.manifest is not None and not self.problems

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    @property
    def problem(self) -> Optional[str]:
        return "; ".join(self.problems) or None

    @property
    def bad_reason(self) -> str:
        return str((self.verification or {}).get("problem") or "failed verification on the remote")

    @property
    def file_names(self) -> List[str]:
        """The set's files: a directory-format dump once, not each member."""
        return sorted({folder_of(name) for name in self.objects})

    @property
    def pinned(self) -> bool:
        return self.pin is not None

    @property
    def pin_reason(self) -> str:
        return str((self.pin or {}).get("reason") or "")

    @property
    def document(self) -> Dict[str, Any]:
        """The manifest of a set whose manifest was read and trusted; else a PgdrillError."""
        if self.manifest is None:
            raise PgdrillError(
                f"the remote copy of {self.set_id} has no trusted manifest: {'; '.join(self.problems) or 'none'}",
                "pull another set (pgdrill-backup list --remote)",
            )
        return self.manifest

    @property
    def time(self) -> datetime:
        if self.manifest is not None:
            return manifest_mod.parse_utc(self.manifest["started_at"])
        return parse_stamp(self.stamp)

    @property
    def size(self) -> int:
        return sum(item.size for item in self.objects.values())

    @property
    def kinds(self) -> "frozenset[str]":
        return frozenset(str(entry.get("kind")) for entry in (self.manifest or {}).get("files", []))

    def row(self, now: datetime) -> Dict[str, Any]:
        return {**listing_row(self, now), "files": self.file_names, "encrypted": bool((self.manifest or {}).get("encryption"))}


# --- what verify --remote proved (records on the host) ---------------------------------------------
REMOTE_RECORDS_DIR = ".pgdrill-remote-verify"


def check_blames_set(check: Dict[str, Any]) -> bool:
    """A failed check blames the set only when the set's own bytes are proven bad (one rule for
    local and remote checks: verdict.blame_of). Pure."""
    return check.get("ok") is not True and verdict.blame_of(check) == verdict.BLAME_SET


def records_path(config: DatabaseConfig, remote_text: str) -> str:
    """Where this host keeps what verify --remote proved about a remote's sets: in its own backup
    directory, keyed by the remote target and the series; never on the remote, where anyone who
    can write to the bucket could forge a record."""
    digest = hashlib.sha256(remote_text.encode()).hexdigest()[:16]
    return os.path.join(config.backup_dir, REMOTE_RECORDS_DIR, f"{config.prefix}-{digest}.json")


def read_records(config: DatabaseConfig, remote_text: str) -> Dict[str, Dict[str, Any]]:
    """set id -> this host's verification record of the remote copy; an unreadable record file
    reads as none (with a warning), which makes retention delete less, never more. The records
    written before verdicts were kept like local ones (``verdict``, ``checked_at``, ``problem``)
    read by the same rule (:func:`pgdrill.sets.verified`)."""
    path = records_path(config, remote_text)
    try:
        with open(path, "rb") as handle:
            document = manifest_mod.decode_document(handle.read(manifest_mod.MAX_DOCUMENT_BYTES + 1))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: cannot read the record of remote verifications %s (%s); every remote set counts as not proven bad", config.label, path, exc)
        return {}
    sets = document.get("sets") if isinstance(document, dict) else None
    return {str(key): value for key, value in (sets or {}).items() if isinstance(value, dict) and verdict.conclusive(value) is not None}


def remote_record(result: Dict[str, Any], checked_at: datetime, previous: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """What this host keeps of one verification of a remote set: the record a local verification
    writes (:func:`pgdrill.manifest.build_verification`: an inconclusive run keeps the last
    conclusive verdict), without its checks but with the problem that blames the set. Pure."""
    document = manifest_mod.build_verification(result["checks"], bool(result.get("restored")), checked_at, previous)
    failed = [f"{check['name']}: {check['detail']}" for check in result["checks"] if check_blames_set(check)]
    kept = {key: value for key, value in document.items() if key not in ("checks", "tool", "format", "format_version")}
    # An inconclusive run keeps the cause of the verdict it keeps (a pull names it when it skips the set).
    kept_problem = (previous or {}).get("problem") if document["verdict"] == verdict.INCONCLUSIVE else None
    return {**kept, "problem": "; ".join(failed)[:2000] or kept_problem or None}


def record_verdicts(config: DatabaseConfig, remote_text: str, results: Sequence[Dict[str, Any]]) -> None:
    """Remember what these results proved; an inconclusive one keeps the set's last conclusive
    verdict, as a local verification record does. Nothing is written when no set was ever
    verified conclusively."""
    records = read_records(config, remote_text)
    now = utcnow()
    changed = False
    for result in results:
        record = remote_record(result, now, records.get(result["set"]))
        if verdict.conclusive(record) is not None:
            records[result["set"]] = record
            changed = True
    if not changed:
        return
    path = records_path(config, remote_text)
    ensure_private_dir(os.path.dirname(path))
    document = {"format": "pgdrill-remote-verifications", "format_version": 1, "remote": remote_text, "prefix": config.prefix, "sets": records}
    with AtomicWriter(os.path.dirname(path), os.path.basename(path)) as writer:
        writer.write(json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
        writer.commit(replace=True)


def with_verifications(sets: Sequence[RemoteSetInfo], records: Dict[str, Dict[str, Any]]) -> Sequence[RemoteSetInfo]:
    """The remote sets with this host's verification records attached: what verify --remote
    proved then counts for them as a local verification counts for a local set."""
    for info in sets:
        info.verification = records.get(info.set_id)
    return sets


def remote_state(backup: BackupSet, objects: Dict[str, RemoteObject]) -> str:
    """A local set's state on the remote, from the listing alone: ``complete`` only when every
    file it sends there (its manifest included) is there with its size; ``partial`` without the
    manifest (an interrupted push: the next one finishes it); ``damaged`` when the manifest is
    there but an object is missing or has another size; ``absent`` when nothing is. Pure."""
    files = set_files(backup)
    there = {name for name in files if name in objects}
    if not there:
        return "absent"
    manifest = manifest_mod.manifest_name(backup.prefix, backup.stamp)
    if manifest not in there:
        return "partial"
    if all(name in objects and objects[name].size == size for name, size in files.items() if getattr(parse_file_name(name), "kind", None) != "pin"):
        return "complete"
    return "damaged"


def remote_states(local: Sequence[BackupSet], objects: Dict[str, RemoteObject], prefix: str) -> Dict[str, str]:
    """For ``list``, ``pgdrill_info`` and reports: each local set's state on the remote (see
    :func:`remote_state`), from one listing. Pure."""
    return {backup.id: remote_state(backup, objects) for backup in local if backup.prefix == prefix}


def uploaded_sets(local: Sequence[BackupSet], objects: Dict[str, RemoteObject], prefix: str, pushed: Sequence[str] = ()) -> List[str]:
    """The sets complete on the remote after a push (for the metrics): those this push completed,
    local sets whose every object is there with its size, and sets only the remote holds whose
    manifest is there (their objects are checked against it by list --remote and verify --remote). Pure."""
    by_id = {backup.id: backup for backup in local}
    done = set(pushed)
    for entry in remote_sets(objects, prefix):
        backup = by_id.get(entry.set_id)
        if backup is not None and backup.complete:
            if remote_state(backup, objects) == "complete":
                done.add(entry.set_id)
        elif entry.complete:
            done.add(entry.set_id)
    return sorted(done)
