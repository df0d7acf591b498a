# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Verifying a backup set: checksums, archive readability, and optionally a real restore."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from typing import Any, Dict, List, Optional

from . import db, dirsets, manifest as manifest_mod, scratch, verdict
from .catalog import BackupSet
from .config import DatabaseConfig
from .errors import PgdrillError, SetDamaged
from .fsio import AtomicWriter, sha256_of
from .pipeline import child_env
from .recovery import RestoreOptions, restore_set, tools_for
from .encryption import read_header
from .archives import is_encrypted, list_archive, read_media
from .series import utcnow

log = logging.getLogger("pgdrill")
SCRATCH_PREFIX = "pgdrill_verify_"


def check_files(backup: BackupSet) -> List[Dict[str, Any]]:
    checks = []
    for entry in backup.document.get("files", []):
        path = backup.path(entry["name"])
        name = f"checksum {entry['name']}"
        if not os.path.lexists(path):
            checks.append(verdict.check(name, False, "file is missing"))
            continue
        if dirsets.is_directory(entry):
            checks.append(dirsets.check_members(path, entry))
            continue
        try:
            digest, size = sha256_of(path)
        except OSError as exc:
            # Unreadable (permissions, an I/O error): the bytes were not seen, so nothing is proven.
            detail = f"could not verify: cannot read it: {exc.strerror} (pgdrill never reads a backup file through a symbolic link)"
            checks.append(verdict.check(name, False, detail, blame=verdict.BLAME_ENVIRONMENT))
            continue
        if size != entry["size"]:
            checks.append(verdict.check(name, False, f"size is {size} bytes, manifest says {entry['size']}"))
        elif digest != entry["sha256"]:
            checks.append(verdict.check(name, False, "sha256 does not match the manifest: the file is corrupted"))
        else:
            checks.append(verdict.check(name, True, f"sha256 and size ({size} bytes) match"))
    return checks


def _sealed_directory(entry: Dict[str, Any]) -> bool:
    return dirsets.is_directory(entry) and any(is_encrypted(member["name"]) for member in entry["members"])


def _header_check(path: str, entry: Dict[str, Any]) -> Dict[str, Any]:
    """Keyless: the file starts with an intact age header (with the sha256, all a host without the
    identity can prove); each file of an encrypted directory dump does."""
    if dirsets.is_directory(entry):
        return dirsets.header_check(path, entry)
    name = entry["name"]
    try:
        header = read_header(path)
    except PgdrillError as exc:
        return verdict.failed_check(f"age header {name}", exc)
    return verdict.check(f"age header {name}", True, f"intact, encrypted to {header.recipients} recipient(s)")


def scratch_name(prefix: str) -> str:
    return f"{SCRATCH_PREFIX}{prefix.replace('-', '_').replace('.', '_')[:30]}_{secrets.token_hex(3)}"


def restore_and_compare(config: DatabaseConfig, backup: BackupSet, jobs: int) -> List[Dict[str, Any]]:
    """Restore the set into a fresh scratch database on the configured server (the drill's own
    restore), prove it against the fingerprint and row counts, and drop the scratch database
    whatever happens. Owners and privileges are restored when the connecting role can set them
    (a superuser); otherwise the result says they were not."""
    name = scratch_name(backup.prefix)
    admin, maintenance = db.connect_maintenance(config.connection, config.dbname)
    try:
        _drop_leftovers(admin, config)
        superuser = db.is_superuser(admin)
    finally:
        admin.close()
    # As a superuser, the set's roles are replayed first (those the server lacks, as NOLOGIN roles
    # without passwords, dropped with the scratch database): a server that is not the source (a new
    # host after a disaster) then gets owners and privileges right too.
    options = RestoreOptions(
        target=name, jobs=jobs, owners=superuser, privileges=superuser, scratch="verify", maintenance_db=maintenance, globals=superuser, role_passwords=False
    )
    checks = []
    try:
        outcome = restore_set(config, backup, options)
        seconds = outcome["timings"]["total"]
        checks.append(verdict.check("restore", True, f"restored into scratch database {name} in {seconds:.1f} s", seconds=seconds))
        checks.append(_fidelity_check(outcome["fidelity"], options))
        checks.append(_counts_check(outcome["row_counts"]))
    except PgdrillError as exc:
        fidelity = exc.details.get("fidelity")
        if not isinstance(fidelity, dict):
            checks.append(verdict.failed_check("restore", exc))
        else:
            checks.append(verdict.check("restore", True, f"restored into scratch database {name}"))
            if fidelity.get("differences"):
                blame = verdict.BLAME_SET if isinstance(exc, SetDamaged) else verdict.BLAME_ENVIRONMENT
                checks.append(verdict.check("fingerprint", False, exc.message, blame=blame, differences=fidelity["differences"]))
            else:
                checks.append(_fidelity_check(fidelity, options))
                checks.append(verdict.failed_check("row counts", exc))
    finally:
        admin = db.connect(config.connection, maintenance, autocommit=True)
        try:
            scratch.drop(admin, name)
        finally:
            admin.close()
    return checks


def _fidelity_check(fidelity: Dict[str, Any], options: RestoreOptions) -> Dict[str, Any]:
    if not fidelity.get("checked"):
        return verdict.check("fingerprint", True, f"skipped: {fidelity.get('reason')}")
    left_out = options.not_restored()
    detail = f"{fidelity['objects']} objects match the backup's fingerprint" + (f" ({' and '.join(left_out)} not restored)" if left_out else "")
    return verdict.check("fingerprint", True, detail, not_restored=left_out)


def _counts_check(counts: Dict[str, Any]) -> Dict[str, Any]:
    if not counts.get("checked"):
        return verdict.check("row counts", True, "skipped: the manifest has no row counts (row_counts = no)")
    return verdict.check("row counts", True, f"{counts['tables']} tables, {counts['rows']} rows match the manifest")


def _drop_leftovers(admin, config: DatabaseConfig) -> None:
    """Scratch databases of this series left by a verify that was killed before it cleaned up."""
    grace = timedelta(hours=config.debris_grace_hours)
    for name in scratch.leftovers(admin, scratch_name(config.prefix)[:-6], grace):
        log.info("dropping scratch database %s left by an interrupted verify", name)
        scratch.drop(admin, name)


def verify_set(config: DatabaseConfig, backup: BackupSet, restore: bool = False, jobs: Optional[int] = None, record: bool = True) -> Dict[str, Any]:
    """Run every check on ``backup``; returns {"ok", "checks", ...}. Never raises for a failed check:
    a failed check is a result. The caller holds the series lock. ``record`` false is a dry run:
    nothing is written, and no scratch database is made."""
    if not backup.manifest_trusted:
        checks = [verdict.check("manifest", False, backup.problem or "the manifest cannot be trusted")]
    else:
        checks = [verdict.check("manifest", True, f"{len(backup.document['files'])} files listed"), *check_files(backup), *_archive_checks(config, backup)]
        if restore:
            stand_in = restore_stand_in(bool(backup.file_of_kind("db")), all(check["ok"] for check in checks), record)
            checks.extend([stand_in] if stand_in else _restore_checks(config, backup, jobs or config.restore_jobs))
    return _recorded(backup, checks, restore, record)


def _archive_checks(config: DatabaseConfig, backup: BackupSet) -> List[Dict[str, Any]]:
    """The checks that read the files: the age header of each encrypted one (keyless), the dump's
    table of contents and the media archive's members (decrypted when the identity is here)."""
    identity = config.encrypt_identity_file
    sealed = [entry for entry in backup.document["files"] if is_encrypted(entry["name"]) or _sealed_directory(entry)]
    checks = [_header_check(backup.path(entry["name"]), entry) for entry in sealed if os.path.exists(backup.path(entry["name"]))]
    dump = backup.file_of_kind("db")
    if dump and os.path.exists(backup.path(dump["name"])) and (identity or dump not in sealed):
        checks.append(_dump_check(config, backup, dump, identity))
    media = backup.file_of_kind("media")
    if media and os.path.exists(backup.path(media["name"])) and (identity or not is_encrypted(media["name"])):
        checks.append(_media_check(backup.path(media["name"]), media["name"], identity))
    if sealed and not identity:
        checks.append(verdict.check("decryption", True, "not tried: no encrypt_identity_file here (keyless verify: checksums and age headers)", skipped=True))
    return checks


def _dump_check(config: DatabaseConfig, backup: BackupSet, dump: Dict[str, Any], identity: Optional[str]) -> Dict[str, Any]:
    name = dump["name"]
    env = child_env(config.connection.libpq_env())
    try:
        tools = tools_for(config, backup)  # asks pg_restore its version: a missing one is a failed check, not a crash
        if dirsets.is_directory(dump):
            entries = dirsets.list_toc(tools, env, backup.path(name), dump, identity, config.work_dir)
        else:
            entries = list_archive(tools, env, backup.path(name), identity=identity)
    except PgdrillError as exc:
        return verdict.failed_check(f"archive {name}", exc)
    decrypted = " (decrypted with the identity)" if is_encrypted(name) or _sealed_directory(dump) else ""
    return verdict.check(f"archive {name}", True, f"pg_restore --list read {len(entries)} entries" + decrypted)


def _media_check(path: str, name: str, identity: Optional[str]) -> Dict[str, Any]:
    try:
        members = read_media(path, identity)
    except PgdrillError as exc:
        return verdict.failed_check(f"archive {name}", exc)
    except Exception as exc:  # noqa: BLE001 - tarfile, gzip and zstd fail in several ways on bad bytes
        return verdict.check(f"archive {name}", False, f"unreadable tar: {exc}")
    return verdict.check(f"archive {name}", True, f"tar read {members} members")


def restore_stand_in(has_dump: bool, checks_passed: bool, record: bool) -> Optional[Dict[str, Any]]:
    """The restore check when no restore is run (no dump, earlier checks failed, a dry run), or
    None: run it. Pure."""
    if not has_dump:
        return verdict.check("restore", False, "the set has no database dump to restore", blame=verdict.BLAME_ENVIRONMENT)
    if not checks_passed:
        return verdict.check("restore", False, "skipped: earlier checks failed", blame=verdict.BLAME_ENVIRONMENT, skipped=True)
    if not record:
        # A dry run (--dry-run, check mode) changes nothing, on the server either.
        return verdict.check(
            "restore",
            True,
            "not run in a dry run: it would restore into a scratch database and compare it with the fingerprint and row counts",
            skipped=True,
        )
    return None


def _restore_checks(config: DatabaseConfig, backup: BackupSet, jobs: int) -> List[Dict[str, Any]]:
    try:
        return restore_and_compare(config, backup, jobs)
    except PgdrillError as exc:
        return [verdict.failed_check("restore", exc)]
    except Exception as exc:  # noqa: BLE001 - the server refused something: it could not verify, the set is not to blame
        return [verdict.check("restore", False, f"could not verify: {type(exc).__name__}: {exc}".strip(), blame=verdict.BLAME_ENVIRONMENT)]


def _recorded(backup: BackupSet, checks: List[Dict[str, Any]], restore: bool, record: bool) -> Dict[str, Any]:
    """The verification record, written beside the set (replacing the last one) unless a dry run."""
    document = manifest_mod.build_verification(checks, restored=restore, checked_at=utcnow(), previous=backup.verification)
    if record and backup.manifest_trusted:
        with AtomicWriter(backup.directory, manifest_mod.verification_name(backup.prefix, backup.stamp)) as writer:
            writer.write(manifest_mod.encode(document))
            writer.commit(replace=True)
        backup.verification = document
    return {"set": backup.id, "ok": all(check["ok"] for check in checks), "verdict": document["verdict"], "checks": checks, "restored": restore}
