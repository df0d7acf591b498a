# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Pull and verify --remote: bring a set back (or only download and hash it), each file checked
against the manifest before it gets its final name; what a verification proved is recorded."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import dirsets, manifest as manifest_mod
from .. import retention, verdict
from ..catalog import scan
from ..config import DatabaseConfig
from ..encryption import recipient_fingerprint
from ..errors import PgdrillError
from ..fsio import ensure_private_dir, private_work_dir, remove_file, sha256_of, write_atomic
from ..naming import parse_file_name
from ..offsite_sets import (
    RemoteSetInfo,
    read_records,
    record_verdicts,
    with_verifications,
)
from ..series import utcnow
from ..storage import Mismatch, Received, Remote
from ..verify import verify_set
from .base import DigestSink, catalog, choose, open_for, series_hosts

log = logging.getLogger("pgdrill")


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
            if _already_here(path, entry):
                result["present"].append(entry["name"])
                continue
            if os.path.lexists(path):
                raise PgdrillError(f"{path} exists and is not the file the remote set lists", "pull into an empty directory (--to DIR), or move that file away")
            if not dry_run:
                fetch_entry(remote, entry, directory)
            result["downloaded"].append(entry["name"])  # in a dry run: what would be
    except Mismatch:
        if not dry_run:  # what this pull brought of a set that proved bad goes again: no debris of it stays
            for name in result["downloaded"]:
                remove_file(os.path.join(directory, name))
        raise
    if dry_run:
        return result
    for name in sorted(info.objects):  # a pin travels with its set
        if getattr(parse_file_name(name), "kind", None) == "pin" and not os.path.exists(os.path.join(directory, name)):
            remote.get(name, directory)
    if not os.path.exists(os.path.join(directory, manifest_name)):
        write_atomic(directory, manifest_name, manifest_mod.encode(info.document))
    return result


def _already_here(path: str, entry: Dict[str, Any]) -> bool:
    if dirsets.is_directory(entry):
        return os.path.isdir(path) and not os.path.islink(path) and bool(dirsets.check_members(path, entry)["ok"])
    return os.path.isfile(path) and sha256_of(path) == (entry["sha256"], entry["size"])


def fetch_entry(remote: Remote, entry: Dict[str, Any], directory: str) -> str:
    """Download one file the manifest lists into ``directory``; it gets its final name only once its
    sha256 and size matched. A directory-format dump comes member by member into a partial
    directory that gets its final name only when all are there (dirsets.receive)."""
    if not dirsets.is_directory(entry):
        return remote.get(entry["name"], directory, expected_sha256=entry["sha256"], expected_size=entry["size"])

    def fetch(member: Dict[str, Any], writer: Received) -> None:
        remote.get_into(dirsets.member_path(entry["name"], member["name"]), writer, expected_sha256=member["sha256"], expected_size=member["size"])

    return dirsets.receive(directory, entry, fetch)


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
    """Download and hash one file the manifest lists (each member of a directory-format dump)."""
    name = f"remote checksum {entry['name']}"
    pieces = dirsets.entry_objects(entry)
    size = 0
    for object_name, listed in pieces:
        sink = DigestSink()
        try:
            remote.get_into(object_name, sink, expected_sha256=listed["sha256"], expected_size=listed["size"])
        except PgdrillError as exc:
            return verdict.failed_check(name, exc)
        size += sink.size
    what = f"all {len(pieces)} members' sha256 and size" if dirsets.is_directory(entry) else "sha256 and size"
    return {"name": name, "ok": True, "detail": f"downloaded: {what} ({size} bytes) match the manifest"}


def _restore_pulled(config: DatabaseConfig, info: RemoteSetInfo, remote: Remote, jobs: Optional[int], verify_set) -> List[Dict[str, Any]]:
    # A private directory that the next run removes should this one be killed (its files may be plaintext).
    with private_work_dir(config.work_dir or None, "pulled") as directory:
        checks: List[Dict[str, Any]] = []
        for entry in info.document["files"]:
            name = f"remote checksum {entry['name']}"
            try:
                fetch_entry(remote, entry, directory)
            except PgdrillError as exc:
                return checks + [verdict.failed_check(name, exc)]
            checks.append({"name": name, "ok": True, "detail": f"downloaded: sha256 and size ({entry['size']} bytes) match the manifest"})
        write_atomic(directory, manifest_mod.manifest_name(info.prefix, info.stamp), manifest_mod.encode(info.document))
        local = replace(config, backup_dir=directory)
        backup = next(item for item in scan(directory, config.prefix) if item.id == info.set_id)
        outcome = verify_set(local, backup, restore=True, jobs=jobs)  # its record goes with the temporary directory
        return checks + [check for check in outcome["checks"] if check["name"] != "manifest" and not check["name"].startswith("checksum ")]
