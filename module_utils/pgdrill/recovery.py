"""Restoring a backup set into a database, guarded against overwriting data by accident.

The guard is a pure function, so every refusal rule lives in one place and is tested directly.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Dict, List, NamedTuple, Optional, Set, Tuple

from . import db
from .catalog import BackupSet
from .config import DatabaseConfig
from .errors import PgdrillError
from .pgtools import PgTools
from .pipeline import child_env, run
from .restore import restore_archive

log = logging.getLogger("pgdrill")


class Situation(NamedTuple):
    target: str
    target_exists: bool
    replace: bool
    other_sessions: int
    terminate: bool
    is_source_on_same_server: bool
    confirm: Optional[str]


def refusal(s: Situation) -> Optional[PgdrillError]:
    """Why a restore must not go ahead, or None. Pure."""
    if s.is_source_on_same_server and s.confirm != s.target:
        return PgdrillError(
            f"refusing to restore into '{s.target}': it is the database this backup was taken from, on the same server",
            f"if you really mean to overwrite it, pass confirm equal to '{s.target}' (and replace); otherwise restore into a new database",
        )
    if s.target_exists and not s.replace:
        return PgdrillError(
            f"database '{s.target}' already exists and pgdrill restores into a fresh database by default",
            "choose a new target database, or set replace to restore over it (--clean --if-exists)",
        )
    if s.target_exists and s.other_sessions and not s.terminate:
        return PgdrillError(
            f"database '{s.target}' has {s.other_sessions} other connection(s)",
            "stop the application first, or set terminate_connections to end those sessions",
        )
    return None


def same_server(manifest_facts: Dict[str, Any], target_facts: Dict[str, Any]) -> bool:
    """Is the target server the one the set came from? When either side lacks a system identifier
    the answer is yes: the guard then errs towards refusing. Pure."""
    source_id = manifest_facts.get("system_identifier")
    target_id = target_facts.get("system_identifier")
    if source_id and target_id:
        return str(source_id) == str(target_id)
    return True


_ROLE_STATEMENT = re.compile(r'^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE)\s+("(?:[^"]|"")+"|[^\s;"]+)')


def _role_name(token: str) -> str:
    return token[1:-1].replace('""', '"') if token.startswith('"') else token


def globals_for_target(script: str, existing_roles: Set[str]) -> Tuple[str, List[str]]:
    """The globals script (pg_dumpall --globals-only) without the statements that would create,
    alter or comment on roles the target server already has: replaying them would overwrite those
    roles' passwords and attributes (the superuser's among them) with the source's. Role
    memberships, new roles and tablespaces stay. Returns the script and the roles left alone. Pure."""
    kept, skipped = [], []
    for line in script.splitlines(keepends=True):
        match = _ROLE_STATEMENT.match(line)
        name = _role_name(match.group(1)) if match else None
        if name in existing_roles:
            skipped += [name] if name not in skipped else []
        else:
            kept.append(line)
    return "".join(kept), skipped


def globals_problems(stderr: str) -> List[str]:
    """psql errors from replaying globals, except roles or tablespaces that already exist. Pure."""
    errors = [line.strip() for line in stderr.splitlines() if "ERROR:" in line]
    return [line for line in errors if not re.search(r"already exists", line)]


def default_target(backup: BackupSet) -> str:
    source = ((backup.manifest or {}).get("database") or {}).get("name") or backup.prefix
    return f"{source}_restore_{backup.stamp}"[:63]


def restore_set(
    config: DatabaseConfig,
    backup: BackupSet,
    target: Optional[str] = None,
    replace: bool = False,
    terminate: bool = False,
    confirm: Optional[str] = None,
    jobs: int = 2,
    with_globals: bool = False,
    no_owner: bool = False,
    no_privileges: bool = False,
    check_row_counts: bool = True,
    maintenance_db: str = "postgres",
    dry_run: bool = False,
) -> Dict[str, Any]:
    """Restore ``backup`` into ``target`` on the server ``config.connection`` points at."""
    if not backup.complete:
        raise PgdrillError(f"backup set {backup.id} is not complete ({backup.manifest_error or 'no manifest'})", "choose a complete set: pgdrill-backup list")
    document = backup.manifest or {}
    dump = backup.file_of_kind("db")
    if not dump:
        raise PgdrillError(f"backup set {backup.id} has no database dump", "choose a set taken with --db")
    source_facts = document.get("database") or {}
    target = target or default_target(backup)
    started_all = time.monotonic()
    timings: Dict[str, float] = {}
    commands: List[List[str]] = []
    admin = db.connect(config.connection, maintenance_db, autocommit=True)
    try:
        server = db.server_facts(admin)
        exists = db.database_exists(admin, target)
        situation = Situation(
            target=target,
            target_exists=exists,
            replace=replace,
            other_sessions=db.other_sessions(admin, target) if exists else 0,
            terminate=terminate,
            is_source_on_same_server=target == source_facts.get("name") and same_server(source_facts, server),
            confirm=confirm,
        )
        problem = refusal(situation)
        if problem:
            raise problem
        tools = PgTools(config.pg_bin_dir).for_server((document.get("client") or {}).get("pg_dump_major") or 0)
        env = child_env(config.connection.libpq_env())
        plan = {
            "set": backup.id,
            "target": target,
            "target_existed": exists,
            "replace": replace,
            "server_version": server["server_version"],
            "globals": bool(with_globals and backup.file_of_kind("globals")),
        }
        existing_roles = db.role_names(admin) if plan["globals"] else set()
        if dry_run:
            return {**plan, "dry_run": True, "commands": [], "timings": {}}
        if exists and situation.other_sessions and terminate:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (target,))
        if not exists:
            started = time.monotonic()
            db.create_database(admin, target, source_facts)
            commands.append(["CREATE DATABASE", target, "TEMPLATE template0", f"ENCODING {source_facts.get('encoding')}", f"LC_COLLATE {source_facts.get('collate')}", f"LC_CTYPE {source_facts.get('ctype')}"])
            timings["create_database"] = round(time.monotonic() - started, 3)
    finally:
        admin.close()
    if plan["globals"]:
        started = time.monotonic()
        globals_file = backup.path(backup.file_of_kind("globals")["name"])  # type: ignore[index]
        with open(globals_file, encoding="utf-8") as handle:
            script, plan["globals_roles_left_alone"] = globals_for_target(handle.read(), existing_roles)
        argv = [tools.path("psql"), "-X", "-q", "-d", maintenance_db, "-f", "-"]
        commands.append(argv + ["<", globals_file])
        done = run(argv, env, "replaying the globals", stdin_data=script.encode("utf-8"), check=False)
        problems = globals_problems(done.stderr)
        if done.rc != 0 or problems:
            raise PgdrillError(f"replaying the globals of {backup.id} failed: {(problems or [done.stderr.strip()])[0]}", "read psql's errors (roles the server already has are left alone; a tablespace needs its directory on this server)", rc=done.rc, stderr=done.stderr, cmd=argv)
        timings["globals"] = round(time.monotonic() - started, 3)
    restored = restore_archive(tools, env, backup.path(dump["name"]), target, jobs=jobs, work_dir=config.work_dir, clean=replace and exists,
                               no_owner=no_owner, no_privileges=no_privileges)
    commands.extend(restored["commands"])  # type: ignore[arg-type]
    timings.update({key: round(value, 3) for key, value in restored["timings"].items()})  # type: ignore[union-attr]
    counts: Dict[str, Any] = {"checked": False}
    expected = document.get("row_counts")
    if check_row_counts and expected is not None:
        started = time.monotonic()
        counts = compare_row_counts(config, target, expected)
        timings["row_counts"] = round(time.monotonic() - started, 3)
        if counts["mismatches"]:
            table, want, got = counts["mismatches"][0]
            raise PgdrillError(
                f"restored database '{target}' does not match the manifest: {len(counts['mismatches'])} table(s) differ, first {table}: expected {want}, found {got}",
                "the restore is incomplete or the target held other data; inspect it before use",
            )
    timings["total"] = round(time.monotonic() - started_all, 3)
    log.info("restored %s into %s in %.1f s", backup.id, target, timings["total"])
    return {**plan, "commands": commands, "timings": timings, "row_counts": counts}


def compare_row_counts(config: DatabaseConfig, target: str, expected: Dict[str, int]) -> Dict[str, Any]:
    """Count the rows of every table the manifest lists in the restored ``target``."""
    diffs = db.count_mismatches(config.connection, target, expected)
    return {"checked": True, "tables": len(expected), "rows": sum(expected.values()), "mismatches": diffs}


def describe_commands(commands: List[List[str]]) -> List[str]:
    """Commands as an operator would type them (no secrets: those live in the environment)."""
    return [" ".join(_quote(word) for word in argv) for argv in commands]


def _quote(word: str) -> str:
    import shlex

    return word if word in ("|", "<") else shlex.quote(word)
