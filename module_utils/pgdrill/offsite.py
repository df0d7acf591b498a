# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""A series' off-host copies: push, pull, list, verify and prune on the remote.

The remote holds a series' sets under the same file names as the backup directory. A set is
uploaded file by file, its manifest last: a remote set without a manifest is debris of an
interrupted push and never counts. Objects are written once (``storage.Remote.put`` refuses to
overwrite), so versioned and Object-Lock buckets keep every copy as first written. Verification
records stay local: they are rewritten, which a write-once remote does not allow.

The decisions (which sets a push still owes, what a remote set is) are pure functions in
:mod:`offsite_sets`; the I/O here is thin and goes through :mod:`storage` only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional, Sequence

from . import manifest as manifest_mod, retention, verdict
from .catalog import BackupSet, scan
from .config import DatabaseConfig, retention_policy
from .errors import PgdrillError
from .fsio import ensure_private_dir, private_work_dir, sha256_of, write_atomic
from .naming import parse_file_name
from .offsite_sets import (
    RemoteSetInfo,
    future_remote_sets,
    is_sealed,
    owed_sets,
    plan_upload,
    read_records,
    record_verdicts,
    remote_set_problems,
    remote_sets,
    set_files,
    uploaded_sets,
    with_verifications,
)
from .storage import LOCKED, LockSettings, Mismatch, Remote, RemoteObject, open_remote, parse_lock
from .series import utcnow
from .sets import deletion_order, newest, prune_plan

log = logging.getLogger("pgdrill")
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
        info = RemoteSetInfo(entry.set_id, prefix, entry.stamp, {item.name: objects[item.name] for item in entry.files})
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


def push_set(remote: Remote, backup: BackupSet, objects: Dict[str, RemoteObject], lock: Optional[LockSettings], dry_run: bool = False) -> Dict[str, Any]:
    """Upload what the remote lacks of one complete set, its manifest last; resumable."""
    plan = plan_upload(set_files(backup), objects)
    if plan.conflicts:
        raise PgdrillError(
            f"{', '.join(remote.where(name) for name in plan.conflicts)} already exist(s) with another size; pgdrill never overwrites a remote object",
            "find out how a different file got there (another host writing the same prefix?) and remove it by hand, then push again",
        )
    expected = {entry["name"]: entry["sha256"] for entry in (backup.manifest or {}).get("files", [])}
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
    import socket

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
    from .catalog import find_set

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


ACCEPT_FOREIGN_FIX = "pull a set of this series' own, or pass --accept-foreign (pgdrill_pull: accept_foreign: true) if you mean to take this one"


def foreign_problem(document: Dict[str, Any], recipients: Sequence[str], hosts: Sequence[str]) -> Optional[str]:
    """Why a remote set does not belong in an encrypted series (whose recipients' fingerprints are
    ``recipients``, and whose sets on this host name ``hosts``), or None: a plaintext set, one
    encrypted to none of the series' recipients, one taken on another host than the series' own
    sets. Anyone who can write to the bucket can plant a set; it is not taken silently. Pure."""
    if not recipients:
        return None  # a plaintext series: nothing to compare with
    sealed = document.get("encryption")
    if not isinstance(sealed, dict):
        return f"its files are plaintext, and this series is encrypted (taken on {document.get('host')!r})"
    theirs = {str(item) for item in sealed.get("recipients") or []}
    if not theirs & set(recipients):
        return f"it is encrypted to other recipients than this series ({', '.join(sorted(theirs)) or 'none named'})"
    if hosts and document.get("host") not in hosts:
        return f"it was taken on {document.get('host')!r}, and this series' sets here come from {', '.join(sorted(hosts))}"
    return None


def series_hosts(config: DatabaseConfig, directories: Sequence[str]) -> List[str]:
    """The hosts the series' complete sets in these directories name (where its sets come from)."""
    found = set()
    for directory in dict.fromkeys(directories):
        for backup in scan(directory, config.prefix) if os.path.isdir(directory) else []:
            if backup.complete and isinstance(backup.document.get("host"), str):
                found.add(backup.document["host"])
    return sorted(found)


def pull(
    config: DatabaseConfig,
    wanted: Optional[str] = None,
    to_dir: Optional[str] = None,
    remote: Optional[Remote] = None,
    dry_run: bool = False,
    accept_foreign: bool = False,
) -> Dict[str, Any]:
    """Download a complete set into ``to_dir`` (default: the backup directory). Each file gets its
    final name only after its sha256 and size matched the manifest; the manifest comes last, so an
    interrupted pull leaves no set that counts.

    A named set is that set or an error. Without one, the newest set that verifies: sets dated in
    the future, damaged on the remote, proven bad by verify --remote, or whose bytes do not match
    their manifest on arrival are skipped, each named with why (``skipped``); an error only when
    no set verifies. Into an encrypted series, a foreign set (:func:`foreign_problem`) is refused
    or skipped unless ``accept_foreign``."""
    from .encryption import recipient_fingerprint

    remote = remote or open_for(config)
    sets = catalog(remote, config.prefix)
    directory = os.path.abspath(to_dir or config.backup_dir)
    recipients = [recipient_fingerprint(item) for item in config.encrypt_recipients] if config.encrypted and not accept_foreign else []
    hosts = series_hosts(config, [directory, config.backup_dir]) if recipients else []
    if wanted is not None:
        info = choose(sets, wanted)
        if not info.complete:
            raise PgdrillError(
                f"the remote copy of {info.set_id} is not complete: {'; '.join(info.problems) or 'no manifest'}",
                "pull another set (pgdrill-backup list --remote)",
            )
        foreign = foreign_problem(info.document, recipients, hosts)
        if foreign:
            raise PgdrillError(f"{info.set_id} on {remote.text} is not a set of this series: {foreign}", ACCEPT_FOREIGN_FIX)
        return _pull_set(config, info, directory, remote, dry_run)
    with_verifications(sets, read_records(config, remote.text))
    now = utcnow()
    skipped: List[Dict[str, str]] = []
    for info in sets:
        why = pull_skip_reason(info, now)
        foreign = foreign_problem(info.document, recipients, hosts) if why is None else None
        why = f"not a set of this series: {foreign} (--accept-foreign takes it)" if foreign else why
        if why is None:
            try:
                result = _pull_set(config, info, directory, remote, dry_run)
            except Mismatch as exc:
                why = f"its bytes do not match its manifest: {exc.problem}"
                record_verdicts(config, remote.text, [{"set": info.set_id, "checks": [verdict.check("pull", False, exc.problem)]}])
            else:
                result["skipped"] = skipped
                return result
        if why:
            log.warning("%s: skipped %s on %s: %s", config.label, info.set_id, remote.text, why)
            skipped.append({"set": info.set_id, "why": why})
    if not skipped:
        raise PgdrillError("the remote holds no complete backup set of this series", "push one first: pgdrill-backup push (or check remote and prefix)")
    raise PgdrillError(
        "the remote holds no backup set of this series that verifies: " + "; ".join(f"{entry['set']}: {entry['why']}" for entry in skipped),
        "check the remote storage (pgdrill-backup verify --remote --all) and bring the sets back from another copy",
    )


def pull_skip_reason(info: RemoteSetInfo, now: datetime) -> Optional[str]:
    """Why a pull without a named set passes over this remote set ("" for debris of an interrupted
    push, not worth naming), or None to try it. Pure."""
    if info.manifest is None and not info.problems:
        return ""
    if not info.complete:
        return "damaged on the remote: " + "; ".join(info.problems)
    if retention.is_future(info.time, now):
        return "dated in the future: planted, or taken while a clock was wrong"
    if info.known_bad:
        return f"verify --remote proved it bad: {info.bad_reason}"
    return None


def _pull_set(config: DatabaseConfig, info: RemoteSetInfo, directory: str, remote: Remote, dry_run: bool) -> Dict[str, Any]:
    files = info.document["files"]
    manifest_name = manifest_mod.manifest_name(config.prefix, info.stamp)
    result: Dict[str, Any] = {
        "set": info.set_id,
        "directory": directory,
        "remote": remote.text,
        "downloaded": [],
        "present": [],
        "dry_run": dry_run,
        "files": [entry["name"] for entry in files] + [manifest_name],
    }
    if not dry_run:
        ensure_private_dir(directory)
    try:
        for entry in files:
            path = os.path.join(directory, entry["name"])
            if os.path.isfile(path) and sha256_of(path) == (entry["sha256"], entry["size"]):
                result["present"].append(entry["name"])
                continue
            if os.path.lexists(path):
                raise PgdrillError(f"{path} exists and is not the file the remote set lists", "pull into an empty directory (--to DIR), or move that file away")
            if not dry_run:
                remote.get(entry["name"], directory, expected_sha256=entry["sha256"], expected_size=entry["size"])
            result["downloaded"].append(entry["name"])  # in a dry run: what would be
    except Mismatch:
        if not dry_run:  # what this pull brought of a set that proved bad goes again: no debris of it stays
            for name in result["downloaded"]:
                os.unlink(os.path.join(directory, name))
        raise
    if dry_run:
        return result
    for name in sorted(info.objects):  # a pin travels with its set
        if getattr(parse_file_name(name), "kind", None) == "pin" and not os.path.exists(os.path.join(directory, name)):
            remote.get(name, directory)
    if not os.path.exists(os.path.join(directory, manifest_name)):
        write_atomic(directory, manifest_name, manifest_mod.encode(info.document))
    return result


def verify_remote(
    config: DatabaseConfig,
    wanted: Optional[str] = None,
    every: bool = False,
    restore: bool = False,
    jobs: Optional[int] = None,
    remote: Optional[Remote] = None,
    on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> List[Dict[str, Any]]:
    """Prove remote sets: the listing against the manifest, then every object downloaded and
    hashed (nothing is stored); with ``restore``, the set is pulled into a temporary directory
    and restored and compared there (that needs the identity for an encrypted set)."""
    from .verify import verify_set

    remote = remote or open_for(config)
    sets = catalog(remote, config.prefix)
    chosen = [info for info in sets if info.manifest is not None or info.problems] if every else [choose(sets, wanted)]
    results = []
    for info in chosen:
        checks: List[Dict[str, Any]] = []
        if info.manifest is None:
            checks.append({"name": "manifest", "ok": False, "blame": "set", "detail": "; ".join(info.problems) or "no manifest"})
        else:
            checks.append(
                {
                    "name": "listing",
                    "ok": not info.problems,
                    "blame": "set",
                    "detail": "; ".join(info.problems) or f"{len(info.objects)} objects as the manifest lists them",
                }
            )
            if restore and not info.problems:
                # One download: the pull checks each object's sha256 on arrival, then the restore runs on it.
                checks.extend(_restore_pulled(config, info, remote, jobs, verify_set))
            else:
                checks.extend(_remote_checksum(remote, entry) for entry in info.manifest["files"])
        result: Dict[str, Any] = {
            "set": info.set_id,
            "remote": remote.text,
            "ok": all(check["ok"] for check in checks),
            "verdict": verdict.of_checks(checks),
            "checks": checks,
            "restored": restore,
        }
        results.append(result)
        record_verdicts(config, remote.text, [result])
        if on_result is not None:
            on_result(result)
    return results


def _remote_checksum(remote: Remote, entry: Dict[str, Any]) -> Dict[str, Any]:
    name = f"remote checksum {entry['name']}"
    sink = DigestSink()
    try:
        remote.get_into(entry["name"], sink, expected_sha256=entry["sha256"], expected_size=entry["size"])
    except PgdrillError as exc:
        return verdict.failed_check(name, exc)
    return {"name": name, "ok": True, "detail": f"downloaded: sha256 and size ({sink.size} bytes) match the manifest"}


def _restore_pulled(config: DatabaseConfig, info: RemoteSetInfo, remote: Remote, jobs: Optional[int], verify_set) -> List[Dict[str, Any]]:
    # A private directory that the next run removes should this one be killed (its files may be plaintext).
    with private_work_dir(config.work_dir or None, "pulled") as directory:
        checks: List[Dict[str, Any]] = []
        for entry in info.document["files"]:
            name = f"remote checksum {entry['name']}"
            try:
                remote.get(entry["name"], directory, expected_sha256=entry["sha256"], expected_size=entry["size"])
            except PgdrillError as exc:
                return checks + [verdict.failed_check(name, exc)]
            checks.append({"name": name, "ok": True, "detail": f"downloaded: sha256 and size ({entry['size']} bytes) match the manifest"})
        write_atomic(directory, manifest_mod.manifest_name(info.prefix, info.stamp), manifest_mod.encode(info.document))
        local = replace(config, backup_dir=directory)
        backup = next(item for item in scan(directory, config.prefix) if item.id == info.set_id)
        outcome = verify_set(local, backup, restore=True, jobs=jobs)  # its record goes with the temporary directory
        return checks + [check for check in outcome["checks"] if check["name"] != "manifest" and not check["name"].startswith("checksum ")]


def prune_remote(config: DatabaseConfig, dry_run: bool = False, remote: Optional[Remote] = None, now: Optional[datetime] = None) -> Dict[str, Any]:
    """Apply retention to the remote copies with the same rules and code as local retention,
    over the remote manifests (never object timestamps). Manifests are deleted first, so an
    interrupted prune leaves debris, never a manifest without its files. An object that Object
    Lock protects is reported as kept (locked), not as an error."""
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
        outcomes = {name: remote.delete(name) for name in names}
        locked = [name for name, outcome in outcomes.items() if outcome == LOCKED]
        if locked:
            why = f"{row['reason']}; but {LOCKED}: Object Lock protects {len(locked)} object(s) until their retain-until date"
            kept.append({**row, "action": "keep", "reason": why, "reasons": [why], "locked": locked})
        else:
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
    from .series import check_pin_reason, pinned_by

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
