"""Verifying a backup set: checksums, archive readability, and optionally a real restore."""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any, Dict, List, Optional

from . import db, manifest as manifest_mod
from .catalog import BackupSet
from .config import DatabaseConfig
from .errors import PgdrillError
from .fsio import AtomicWriter, sha256_of
from .pgtools import PgTools
from .pipeline import child_env
from .recovery import compare_row_counts, restore_set
from .restore import list_archive, read_media
from .series import utcnow

log = logging.getLogger("pgdrill")


def _check(name: str, ok: bool, detail: str, **extra: Any) -> Dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, **extra}


def check_files(backup: BackupSet) -> List[Dict[str, Any]]:
    checks = []
    for entry in backup.manifest.get("files", []):  # type: ignore[union-attr]
        path = backup.path(entry["name"])
        name = f"checksum {entry['name']}"
        if not os.path.lexists(path):
            checks.append(_check(name, False, "file is missing"))
            continue
        try:
            digest, size = sha256_of(path)
        except OSError as exc:
            checks.append(_check(name, False, f"cannot read it: {exc.strerror} (pgdrill never reads a backup file through a symbolic link)"))
            continue
        if size != entry["size"]:
            checks.append(_check(name, False, f"size is {size} bytes, manifest says {entry['size']}"))
        elif digest != entry["sha256"]:
            checks.append(_check(name, False, "sha256 does not match the manifest: the file is corrupted"))
        else:
            checks.append(_check(name, True, f"sha256 and size ({size} bytes) match"))
    return checks


def scratch_name(prefix: str) -> str:
    return f"pgdrill_verify_{prefix.replace('-', '_').replace('.', '_')[:30]}_{secrets.token_hex(3)}"


def restore_and_count(config: DatabaseConfig, backup: BackupSet, jobs: int) -> List[Dict[str, Any]]:
    """Restore the set into a fresh scratch database on the configured server (the drill's own
    restore), compare row counts with the manifest, and drop the scratch database whatever happens."""
    name = scratch_name(backup.prefix)
    checks = []
    try:
        outcome = restore_set(config, backup, target=name, jobs=jobs, no_owner=True, no_privileges=True,
                              check_row_counts=False, maintenance_db=config.dbname)
        seconds = outcome["timings"]["total"]
        checks.append(_check("restore", True, f"restored into scratch database {name} in {seconds:.1f} s", seconds=seconds))
        expected = (backup.manifest or {}).get("row_counts")
        if expected is None:
            checks.append(_check("row counts", True, "skipped: the manifest has no row counts (row_counts = no)"))
        else:
            diffs = compare_row_counts(config, name, expected)["mismatches"]
            if diffs:
                shown = "; ".join(f"{table}: expected {want}, found {got}" for table, want, got in diffs[:5])
                checks.append(_check("row counts", False, f"{len(diffs)} table(s) differ: {shown}"))
            else:
                checks.append(_check("row counts", True, f"{len(expected)} tables, {sum(expected.values())} rows match the manifest"))
    except PgdrillError as exc:
        checks.append(_check("restore", False, exc.message))
    finally:
        admin = db.connect(config.connection, config.dbname, autocommit=True)
        try:
            db.drop_database(admin, name)
        finally:
            admin.close()
    return checks


def verify_set(config: DatabaseConfig, backup: BackupSet, restore: bool = False, jobs: Optional[int] = None, record: bool = True) -> Dict[str, Any]:
    """Run every check on ``backup``; returns {"ok", "checks", ...}. Never raises for a failed check:
    a failed check is a result. The caller holds the series lock."""
    tools = PgTools(config.pg_bin_dir)
    env = child_env(config.connection.libpq_env())
    checks: List[Dict[str, Any]] = []
    if not backup.manifest_trusted:
        checks.append(_check("manifest", False, backup.problem))
    else:
        checks.append(_check("manifest", True, f"{len(backup.manifest['files'])} files listed"))  # type: ignore[index]
        checks.extend(check_files(backup))
        dump = backup.file_of_kind("db")
        if dump and os.path.exists(backup.path(dump["name"])):
            try:
                entries = list_archive(tools, env, backup.path(dump["name"]))
                checks.append(_check(f"archive {dump['name']}", True, f"pg_restore --list read {len(entries)} entries"))
            except PgdrillError as exc:
                checks.append(_check(f"archive {dump['name']}", False, exc.message))
        media = backup.file_of_kind("media")
        if media and os.path.exists(backup.path(media["name"])):
            try:
                members = read_media(backup.path(media["name"]))
                checks.append(_check(f"archive {media['name']}", True, f"tar read {members} members"))
            except Exception as exc:  # noqa: BLE001 - tarfile, gzip and zstd fail in several ways
                checks.append(_check(f"archive {media['name']}", False, f"unreadable tar: {exc}"))
        if restore:
            if not dump:
                checks.append(_check("restore", False, "the set has no database dump to restore"))
            elif not all(check["ok"] for check in checks):
                checks.append(_check("restore", False, "skipped: earlier checks failed"))
            else:
                try:
                    checks.extend(restore_and_count(config, backup, jobs or config.restore_jobs))
                except PgdrillError as exc:
                    checks.append(_check("restore", False, exc.message))
    ok = all(check["ok"] for check in checks)
    document = manifest_mod.build_verification(checks, restored=restore, checked_at=utcnow())
    if record and backup.manifest_trusted:
        with AtomicWriter(backup.directory, manifest_mod.verification_name(backup.prefix, backup.stamp)) as writer:
            writer.write(manifest_mod.encode(document))
            writer.commit(replace=True)
        backup.verification = document
    return {"set": backup.id, "ok": ok, "checks": checks, "restored": restore}
