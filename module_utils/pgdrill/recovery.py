# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Restoring a backup set into a database, guarded against overwriting data by accident, and
proven against the set's fingerprint.

The steps are separate functions: the guard (pure: every refusal rule in one place), the plan, the
replay of the globals (filtered by globals_script, pure), the restore itself, and the comparison with the fingerprint
and the row counts taken at backup time. ``restore_set`` runs them in order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

from . import db, dirsets, encryption, archives, fingerprint as fp, scratch, toc
from .catalog import BackupSet
from .config import DatabaseConfig
from .errors import PgdrillError, SetDamaged
from .globals_script import globals_for_target, globals_problems
from .pgtools import PgTools, server_major
from .pipeline import child_env, run
from .archives import check_target_name, read_small, read_toc, restore_archive

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


def default_target(backup: BackupSet) -> str:
    source = ((backup.manifest or {}).get("database") or {}).get("name") or backup.prefix
    return f"{source}_restore_{backup.stamp}"[:63]


@dataclass(frozen=True)
class RestoreOptions:
    """What to restore where, and how. The defaults restore everything into a new database and
    prove it against the set's fingerprint."""

    target: Optional[str] = None
    replace: bool = False
    terminate: bool = False
    confirm: Optional[str] = None
    jobs: int = 2
    globals: bool = False
    role_passwords: bool = True
    owners: bool = True
    privileges: bool = True
    schemas: Tuple[str, ...] = ()
    tables: Tuple[str, ...] = ()
    compare: bool = True
    scratch: Optional[str] = None  # the purpose, when the target is a scratch database (drill, verify)
    maintenance_db: str = "postgres"
    dry_run: bool = False
    identity: Optional[str] = None  # the age identity for an encrypted set (default: encrypt_identity_file)

    def not_restored(self) -> List[str]:
        """What this restore leaves out by the operator's choice, in words. Pure."""
        out = []
        if not self.owners:
            out.append("ownership")
        if not self.privileges:
            out.append("privileges")
        if self.schemas or self.tables:
            out.append("everything outside " + ", ".join([f"schema {s}" for s in self.schemas] + [f"table {t}" for t in self.tables]))
        return out

    def scope(self, quote_ident: Callable[[str], str]) -> fp.Scope:
        """The chosen schemas and tables as the fingerprint names them (``quote_ident`` is the
        server's, which knows its keywords)."""
        tables = (toc.split_table(table) for table in self.tables)
        return fp.Scope(
            frozenset(quote_ident(schema) for schema in self.schemas), frozenset(f"{quote_ident(schema)}.{quote_ident(name)}" for schema, name in tables)
        )


def _quote(name: str) -> str:
    """For the commands shown to an operator only: comparisons use the server's quote_ident."""
    return name if re.match(r"^[a-z_][a-z0-9_$]*$", name) else '"' + name.replace('"', '""') + '"'


@dataclass
class Record:
    """What a restore did: every command as an argument list (no secrets: those are in the
    environment), and how long each step took."""

    commands: List[Dict[str, Any]] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)

    def step(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 3)

    def lines(self) -> List[str]:
        return describe_commands(self.commands)


def tools_for(config: DatabaseConfig, backup: BackupSet) -> PgTools:
    """Client tools that can read this set's archive: at least as new as the pg_dump that wrote it."""
    major = ((backup.manifest or {}).get("client") or {}).get("pg_dump_major")
    return PgTools(config.pg_bin_dir).for_archive(major)


def majors_note(source_facts: Dict[str, Any], target_version_num: int) -> Dict[str, Any]:
    """Source and target server majors, with a note when they differ. Pure."""
    source = server_major(int(source_facts.get("server_version_num") or 0)) or None
    target = server_major(target_version_num)
    note = ""
    if source and source < target:
        note = f"upgrade rehearsal {source} -> {target}"
    elif source and source > target:
        note = f"restore into an older server {source} -> {target}"
    return {"source": source, "target": target, "note": note}


def restore_set(config: DatabaseConfig, backup: BackupSet, options: RestoreOptions = RestoreOptions()) -> Dict[str, Any]:
    """Restore ``backup`` into ``options.target`` on the server ``config.connection`` points at,
    then prove it against the set's fingerprint and row counts. Raises PgdrillError for a refusal,
    a failed step or any difference; the error's details carry the result so far."""
    dump = _restorable(backup)
    options = _with_identity(config, options, dump)
    source_facts = (backup.manifest or {}).get("database") or {}
    target = options.target or default_target(backup)
    check_target_name(target)  # before anything is created
    record = Record()
    started_all = time.monotonic()
    tools = tools_for(config, backup)
    env = child_env(config.connection.libpq_env())
    admin = db.connect(config.connection, options.maintenance_db, autocommit=True)
    try:
        server = db.server_facts(admin)
        situation = _situation(admin, target, source_facts, server, options)
        problem = refusal(situation)
        if problem:
            raise problem
        result = planned_result(backup, situation, server, source_facts, tools.path("pg_restore"), options)
        if options.dry_run:
            return {**result, "dry_run": True, "commands": [], "command_lines": [], "timings": {}}
        result.update(_prepare_target(tools, env, backup, admin, options, situation, record, result["globals"]))
    finally:
        admin.close()
    try:
        _restore_archive(tools, env, config, backup, dump, target, situation.target_exists, options, record)
        if options.compare:
            result.update(_prove(config, backup, target, options, record, result["server_majors"]))
    except PgdrillError as exc:
        kind = SetDamaged if isinstance(exc, SetDamaged) else PgdrillError
        raise kind(exc.problem, exc.fix, **{**exc.details, "restore": _outcome(result, record, started_all)}) from None
    outcome = _outcome(result, record, started_all)
    log.info("restored %s into %s in %.1f s", backup.id, target, outcome["timings"]["total"])
    return outcome


def _with_identity(config: DatabaseConfig, options: RestoreOptions, dump: Dict[str, Any]) -> RestoreOptions:
    """The options with the configured age identity when none is given; an encrypted dump's
    identity (a directory dump's: its files') is checked before anything is created."""
    if options.identity is None and config.encrypt_identity_file:
        options = dataclasses.replace(options, identity=config.encrypt_identity_file)
    names = [dump["name"], *(member["name"] for member in dump.get("members") or [])]
    sealed = next((name for name in names if archives.is_encrypted(name)), None)
    if sealed:
        encryption.check_identity(archives.require_identity(sealed, options.identity))
    return options


def _situation(admin, target: str, source_facts: Dict[str, Any], server: Dict[str, Any], options: RestoreOptions) -> Situation:
    """What the guard needs to know about the target, asked of the server."""
    exists = db.database_exists(admin, target)
    return Situation(
        target=target,
        target_exists=exists,
        replace=options.replace,
        other_sessions=db.other_sessions(admin, target) if exists else 0,
        terminate=options.terminate,
        is_source_on_same_server=target == source_facts.get("name") and same_server(source_facts, server),
        confirm=options.confirm,
    )


def planned_result(
    backup: BackupSet, situation: Situation, server: Dict[str, Any], source_facts: Dict[str, Any], pg_restore: str, options: RestoreOptions
) -> Dict[str, Any]:
    """What the restore will do, as its result starts (a dry run returns it as it is). Pure."""
    return {
        "set": backup.id,
        "target": situation.target,
        "target_existed": situation.target_exists,
        "replace": options.replace,
        "server_version": server["server_version"],
        "server_majors": majors_note(source_facts, server["server_version_num"]),
        "pg_restore": pg_restore,
        "globals": bool(options.globals and backup.file_of_kind("globals")),
        "not_restored": options.not_restored(),
        "roles_created": [],
        "globals_roles_left_alone": [],
    }


def _prepare_target(
    tools: PgTools, env: Dict[str, str], backup: BackupSet, admin, options: RestoreOptions, situation: Situation, record: Record, with_globals: bool
) -> Dict[str, Any]:
    """Before pg_restore: the set's globals replayed (when asked), the target's other sessions
    ended (when allowed), a missing target created. Returns what the replay adds to the result."""
    replayed = _replay_globals(tools, env, backup, admin, options, situation.target, record) if with_globals else {}
    if situation.target_exists and situation.other_sessions and options.terminate:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (situation.target,))
    if not situation.target_exists:
        document = backup.manifest or {}
        _create_target(admin, situation.target, document.get("database") or {}, document, options, record)
    return replayed


def _outcome(result: Dict[str, Any], record: Record, started_all: float) -> Dict[str, Any]:
    record.timings["total"] = round(time.monotonic() - started_all, 3)
    return {**result, "commands": record.commands, "command_lines": record.lines(), "timings": dict(record.timings)}


def _restorable(backup: BackupSet) -> Dict[str, Any]:
    if not backup.complete:
        raise PgdrillError(f"backup set {backup.id} is not complete ({backup.problem or 'no manifest'})", "choose a complete set: pgdrill-backup list")
    dump = backup.file_of_kind("db")
    if not dump:
        raise PgdrillError(f"backup set {backup.id} has no database dump", "choose a set taken with --db")
    return dump


def _replay_globals(tools: PgTools, env: Dict[str, str], backup: BackupSet, admin, options: RestoreOptions, target: str, record: Record) -> Dict[str, Any]:
    started = time.monotonic()
    entry = backup.file_of_kind("globals")
    if entry is None:
        raise PgdrillError(f"backup set {backup.id} holds no globals to replay", "restore without globals")
    globals_file = backup.path(entry["name"])
    script = read_small(globals_file, options.identity).decode("utf-8")
    plan = globals_for_target(script, db.role_names(admin), options.role_passwords)
    argv = [tools.path("psql"), "-X", "-q", "-d", options.maintenance_db, "-f", "-"]
    stdin = f"{os.path.basename(globals_file)}" + (f", {'; '.join(plan.changes)}" if plan.changes else "")
    record.commands.append({"argv": argv, "stdin": stdin})
    done = run(argv, env, "replaying the globals", stdin_data=plan.script.encode("utf-8"), check=False)
    created = [role for role in plan.created if role in db.role_names(admin)]
    if options.scratch:
        scratch.mark_roles(admin, created, target)  # dropped with the scratch database, even if the replay failed
    problems = globals_problems(done.stderr)
    if done.rc != 0 or problems:
        raise PgdrillError(
            f"replaying the globals of {backup.id} failed: {(problems or [done.stderr.strip()])[0]}",
            "read psql's errors (roles the server already has are left alone; a tablespace needs its directory on this server)",
            rc=done.rc,
            stderr=done.stderr,
            cmd=argv,
        )
    record.step("globals", started)
    return {"globals_roles_left_alone": plan.left_alone, "roles_created": created, "globals_changes": plan.changes}


def _create_target(admin, target: str, source_facts: Dict[str, Any], document: Dict[str, Any], options: RestoreOptions, record: Record) -> None:
    from psycopg import sql

    started = time.monotonic()
    db.create_database(admin, target, source_facts)
    record.commands.append(
        {
            "sql": f"CREATE DATABASE {_quote(target)} TEMPLATE template0 ENCODING {source_facts.get('encoding')} "
            f"LC_COLLATE {source_facts.get('collate')} LC_CTYPE {source_facts.get('ctype')}"
        }
    )
    if options.scratch:
        scratch.mark_database(admin, target, options.scratch, document.get("set") or "")
    owner = ((document.get("fingerprint") or {}).get("database") or {}).get("owner")
    if options.owners and owner and owner in db.role_names(admin):
        # pg_dump archives carry the database's owner only for --create; it is part of the fingerprint.
        admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(target), sql.Identifier(owner)))
        record.commands.append({"sql": f"ALTER DATABASE {_quote(target)} OWNER TO {_quote(owner)}"})
    record.step("create_database", started)


def _restore_archive(
    tools: PgTools,
    env: Dict[str, str],
    config: DatabaseConfig,
    backup: BackupSet,
    dump: Dict[str, Any],
    target: str,
    exists: bool,
    options: RestoreOptions,
    record: Record,
) -> None:
    archive = backup.path(dump["name"])
    list_dir = None
    use_list = None
    flags = dict(clean=options.replace and exists, no_owner=not options.owners, no_privileges=not options.privileges)
    try:
        if options.schemas or options.tables:
            list_dir = tempfile.mkdtemp(prefix=".pgdrill-list-", dir=config.work_dir or backup.directory)
            use_list = os.path.join(list_dir, "restore.list")
            listing = (
                dirsets.read_toc(tools, env, archive, dump, options.identity, config.work_dir, verbose=True)
                if dirsets.is_directory(dump)
                else read_toc(tools, env, archive, verbose=True, identity=options.identity)
            )
            with open(use_list, "w", encoding="utf-8") as handle:
                handle.write(partial_list(listing, options.schemas, options.tables))
        if dirsets.is_directory(dump):
            restored = dirsets.restore(tools, env, archive, dump, target, options.jobs, config.work_dir, options.identity, flags, use_list)
        else:
            restored = restore_archive(
                tools, env, archive, target, jobs=options.jobs, work_dir=config.work_dir, use_list=use_list, identity=options.identity, **flags
            )
    finally:
        if list_dir:
            shutil.rmtree(list_dir, ignore_errors=True)
    record.commands.extend({"argv": argv} if "|" not in argv else {"pipeline": _split_pipe(argv)} for argv in restored["commands"])
    record.timings.update({key: round(value, 3) for key, value in restored["timings"].items()})


def _split_pipe(argv: List[str]) -> List[List[str]]:
    parts: List[List[str]] = [[]]
    for word in argv:
        if word == "|":
            parts.append([])
        else:
            parts[-1].append(word)
    return parts


def partial_list(listing: str, schemas: Tuple[str, ...], tables: Tuple[str, ...]) -> str:
    """The --use-list for a restore of some schemas and tables; refuses names the archive lacks."""
    entries = toc.parse(listing)
    roots: Set[int] = set()
    for schema in schemas:
        found = toc.find_schema(entries, schema)
        if not found:
            raise PgdrillError(f"the archive has no schema {schema!r}", "name a schema of the backed-up database (pg_restore --list shows them)")
        roots.update(entry.id for entry in found)
    for table in tables:
        try:
            schema, name = toc.split_table(table)
        except ValueError:
            raise PgdrillError(f"{table!r} is not a table name", 'write tables as schema.table (quote a name that holds a dot: "a.b".c)') from None
        found = toc.find_relation(entries, schema, name)
        if len(found) != 1:
            raise PgdrillError(
                f"the archive has {'no' if not found else 'more than one'} table {schema}.{name}",
                "name a table of the backed-up database as schema.table (pg_restore --list shows them)",
            )
        roots.add(found[0].id)
    return toc.use_list(entries, toc.select(entries, roots))


def _prove(config: DatabaseConfig, backup: BackupSet, target: str, options: RestoreOptions, record: Record, majors: Dict[str, Any]) -> Dict[str, Any]:
    """Compare the restored database with the set's fingerprint and row counts; any difference
    fails, naming the objects."""
    document = backup.manifest or {}
    started = time.monotonic()
    conn = db.connect(config.connection, target)
    try:
        scope = options.scope(lambda name: conn.execute("SELECT quote_ident(%s)", (name,)).fetchone()[0]).with_partitions(document.get("fingerprint"))
        fidelity = _fidelity(conn, document.get("fingerprint"), options, scope, majors)
        record.step("fingerprint", started)
        started = time.monotonic()
        counts = _row_counts(conn, document, scope)
        record.step("row_counts", started)
    finally:
        conn.close()
    problem = proof_failure(target, fidelity, counts)
    if problem:
        raise problem
    return {"fidelity": fidelity, "row_counts": counts}


def _fidelity(conn, expected_fp: Optional[Dict[str, Any]], options: RestoreOptions, scope: fp.Scope, majors: Dict[str, Any]) -> Dict[str, Any]:
    """The restored database's fingerprint compared with the set's, within ``scope``."""
    if not expected_fp:
        return {"checked": False, "reason": "the set has no fingerprint (taken by pgdrill 0.1, or it could not be taken)"}
    differences, notes = fp.compare(
        expected_fp,
        fp.take(conn),
        owners=options.owners,
        privileges=options.privileges,
        scope=scope,
        majors=(majors["source"], majors["target"]) if majors.get("source") else None,
    )
    fidelity = {"checked": True, **fp.summary(expected_fp, differences, notes, scope)}
    if not fidelity["objects"]:
        raise PgdrillError(
            "none of the chosen schemas and tables is in the backup's fingerprint: nothing could be compared",
            "name schemas and tables as the source database has them",
        )
    return fidelity


def proof_failure(target: str, fidelity: Dict[str, Any], counts: Dict[str, Any]) -> Optional[PgdrillError]:
    """The error of a restore that is not the database that was backed up, or None. Pure."""
    if fidelity.get("differences"):
        shown = "; ".join(fp.Difference(**d).describe() for d in fidelity["differences"][:5])
        more = len(fidelity["differences"]) - 5
        # Content that differs proves the set bad, unless every difference is the server's own (an
        # extension installed at another version there): that says nothing about the set.
        blame_set = not all(server_side(d) for d in fidelity["differences"])
        return (SetDamaged if blame_set else PgdrillError)(
            f"restored database '{target}' differs from the backup's fingerprint in {len(fidelity['differences'])} object(s): {shown}"
            + (f"; and {more} more" if more > 0 else ""),
            "the restore is not the database that was backed up: read the differences; roles missing on this server are created by replaying the globals",
            fidelity=fidelity,
        )
    if counts.get("mismatches"):
        table, want, got = counts["mismatches"][0]
        return SetDamaged(
            f"restored database '{target}' does not match the manifest: {len(counts['mismatches'])} table(s) differ, first {table}: expected {want}, found {got}",
            "the restore is incomplete or the target held other data; inspect it before use",
            fidelity=fidelity,
            row_counts=counts,
        )
    return None


def server_side(difference: Dict[str, Any]) -> bool:
    """A fingerprint difference that belongs to the server restored into, not to the set: the
    version of an installed extension. Pure."""
    return str(difference.get("object", "")).startswith("extension ") and difference.get("what") == "version differs"


def _row_counts(conn, document: Dict[str, Any], scope: fp.Scope) -> Dict[str, Any]:
    expected = document.get("row_counts")
    if expected is None:
        return {"checked": False}
    legacy = document.get("row_count_keys") != "quoted"
    if not scope.whole:
        expected = {table: rows for table, rows in expected.items() if _count_in_scope(table, scope)}
    actual = db.count_rows(conn, legacy_keys=legacy)
    if not scope.whole:
        actual = {table: rows for table, rows in actual.items() if table in expected}
    mismatches = db.compare_counts(expected, actual)
    return {"checked": True, "tables": len(expected), "rows": sum(expected.values()), "mismatches": mismatches}


def _count_in_scope(table: str, scope: fp.Scope) -> bool:
    """Row-count keys and the scope are both quoted ``schema.table`` names. Pure."""
    return table in scope.tables or any(table.startswith(schema + ".") for schema in scope.schemas)


def describe_commands(commands: List[Dict[str, Any]]) -> List[str]:
    """Commands as an operator would type them (no secrets: those live in the environment)."""
    lines = []
    for command in commands:
        if "sql" in command:
            lines.append(command["sql"])
        elif "pipeline" in command:
            lines.append(" | ".join(" ".join(shlex.quote(word) for word in argv) for argv in command["pipeline"]))
        else:
            line = " ".join(shlex.quote(word) for word in command["argv"])
            lines.append(line + (f"  # stdin: {command['stdin']}" if command.get("stdin") else ""))
    return lines
