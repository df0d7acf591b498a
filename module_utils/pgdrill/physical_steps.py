# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The physical drill's steps, on the one drill's run (drill_steps.DrillRun, its timed steps, its
evidence, log line, metrics and ping): resolve the target (a saved point record, a logical set's
restore point), check that staging's binaries have the repository's major version, restore with
pgBackRest into a new private data directory, recover to the target and promote on a throwaway
server (throwaway.Throwaway), prove what it holds (fingerprint and row counts of the point, the
logical set restored beside it and compared table by table, amcheck on every B-tree index, the
post-restore commands and smoke checks), then stop and remove it unless ``keep`` keeps it.
A failure is recorded in the run, never raised."""

from __future__ import annotations

import json
import logging
import os
import grp
import pwd
import stat
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple

from . import db, drill, fingerprint as fp, pgbackrest
from .catalog import find_set, scan
from .config import Connection
from .drill_config import DrillConfig, series_config
from .drill_steps import DrillRun, verify_on_arrival, post_restore_steps, smoke_results
from .errors import PgdrillError
from .pgtools import parse_client_version, versioned_bindirs
from .pitr import POINTS_DIR, load_point
from .pitr_drill import (
    archive_gap,
    archive_max,
    system_ids,
    PhysicalDrill,
    Target,
    backup_before,
    backup_label,
    count_problems,
    evidence_target,
    major_problem,
    parse_target,
    recovery_target,
    repository_major,
    rpo,
    rto,
    set_restore_point,
    wal_file,
)
from .recovery import RestoreOptions, restore_set
from .throwaway import Server, Throwaway

log = logging.getLogger("pgdrill")
SOURCE_SQL = """
SELECT pg_current_wal_insert_lsn()::text,
       CASE WHEN current_setting('track_commit_timestamp')::bool
            THEN to_char((pg_last_committed_xact()).timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END
"""
BTREE_SQL = """
SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't' ORDER BY 1
"""


class Resolved:
    """What a target resolves to: the point record that proves it (if any), the logical set (for ``set:``)."""

    def __init__(self, target: Target, point: Optional[Dict[str, Any]] = None, backup=None, series=None) -> None:
        self.target, self.point, self.backup, self.series = target, point, backup, series

    @property
    def point_name(self) -> Optional[str]:
        return (self.point or {}).get("name") or (self.target.value if self.target.kind == "name" else None)


def config_reader(owner: str, group: str, mode: int, is_user: bool) -> Optional[str]:
    """Who reads pgBackRest's config: its owner, or, when root owns it (as the pgdrill_pitr role
    writes it: root, group postgres, 0640), the user its group is named after. Pure."""
    if owner != "root":
        return owner
    return group if mode & stat.S_IRGRP and group != "root" and is_user else None


def os_user_for(config_file: str) -> Optional[str]:
    """Run as root, the drill acts as the cluster's OS user who reads pgBackRest's config (and the
    repository's secrets); otherwise as itself."""
    if os.geteuid() != 0:
        return None
    try:
        info = os.stat(config_file)
        owner, group = pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name
    except (OSError, KeyError):
        raise PgdrillError(f"cannot read pgBackRest's config {config_file}", "set pitr_config (--pgbackrest-config) to the config file on staging") from None
    try:
        is_user = bool(pwd.getpwnam(group))
    except KeyError:
        is_user = False
    reader = config_reader(owner, group, info.st_mode, is_user)
    if reader is None:
        raise PgdrillError(
            f"pgBackRest's config {config_file} belongs to root and no other user may read it, and PostgreSQL never runs as root",
            "make the config readable by the cluster's OS user (the pgdrill_pitr role writes it root:postgres 0640), or run the drill as that user",
        )
    return reader


def resolve(config: DrillConfig, run: DrillRun, target: Target, set_dir: Optional[str]) -> Resolved:
    """The point record or logical set the target names, the set verified on arrival."""
    if target.kind == "point":
        return Resolved(target, point=load_point(str(target.value)))
    if target.kind == "name":
        saved = os.path.join(set_dir, POINTS_DIR, f"{target.value}.json") if set_dir else None
        if saved and os.path.exists(saved):
            return Resolved(target, point=load_point(saved))
        if str(target.value).startswith("pgdrill_"):
            # pgdrill marked it, so its fingerprint and counts exist somewhere: drilling it unproved would pass on nothing.
            raise PgdrillError(
                f"restore point {target.value} was marked by pgdrill but its record is not {'in ' + os.path.dirname(saved) if saved else 'here'}",
                "pass point:FILE with the record pgdrill-backup mark saved (under <backup_dir>/points/ on the source), or copy it into source_dir/points/",
            )
        return Resolved(target)
    if target.kind == "set":
        if not set_dir:
            raise PgdrillError("a set: target needs the directory holding the set", "set source_dir in [drill] (or backup_dir in the module)")
        series = series_config(config, set_dir)
        backup = find_set(scan(set_dir, config.prefix), str(target.value))
        run.dbconfig = series
        run.record.update(drill.set_facts(backup.id, backup.manifest or {}))
        verify_on_arrival(series, backup)
        return Resolved(target, point=set_restore_point(backup.manifest or {}, backup.id), backup=backup, series=series)
    return Resolved(target)


def staging_bindir(configured: Optional[str], major: Optional[int]) -> Tuple[Optional[str], Optional[int]]:
    """Staging's server binaries (``pg_bin_dir``, else the installed ones of the repository's major) and their major."""
    bin_dir = configured or (versioned_bindirs().get(major) if major else None)
    if not bin_dir:
        return None, None
    try:
        done = subprocess.run([os.path.join(bin_dir, "pg_ctl"), "--version"], capture_output=True, text=True, check=True)
        return bin_dir, parse_client_version(done.stdout)[0]
    except (OSError, subprocess.CalledProcessError, ValueError):
        return bin_dir, None


def _pgbackrest(physical: PhysicalDrill, user: Optional[str], command: str, *options: str) -> str:
    return pgbackrest.run(pgbackrest.argv(physical.pgbackrest_config, str(physical.stanza), command, *options), user=user, what=f"pgbackrest {command}")


def source_position(source: Optional[Connection]) -> Optional[Dict[str, Any]]:
    """The source's WAL insert position and newest commit (with track_commit_timestamp) now; None when it cannot be reached."""
    if source is None:
        return None
    try:
        conn = db.connect(source, source.dbname or "postgres", autocommit=True)
    except PgdrillError as exc:
        log.warning("the source is not reachable for the RPO: %s", exc.message)
        return None
    try:
        insert_lsn, newest_commit = conn.execute(SOURCE_SQL).fetchone()
        try:  # which cluster it is: the RPO is measured against the stanza's own cluster only
            system_id = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        except db._psycopg().Error:
            system_id = None
    except db._psycopg().Error as exc:
        log.warning("the source cannot say its WAL position for the RPO: %s", str(exc).strip())
        return None
    finally:
        conn.close()
    return {"insert_lsn": insert_lsn, "newest_commit": newest_commit, "system_id": system_id}


def check_repository(
    physical: PhysicalDrill, user: Optional[str], pg_bin_dir: Optional[str], record: Dict[str, Any], point_lsn: Optional[str] = None
) -> Tuple[Dict[str, Any], str, Optional[str]]:
    """What pgBackRest's ``info`` says (the stanza must be usable), this host's binaries (of the
    repository's major version, or refused naming the fix; recorded in ``record``) and the backup a
    point at ``point_lsn`` is restored from. psycopg is checked first: the restored server is watched
    through it, so a host without it is refused before anything is restored, not after a timeout."""
    db._psycopg()
    info_text = _pgbackrest(physical, user, "info", "--output=json")
    summary = pgbackrest.parse_info(info_text, str(physical.stanza))
    if not summary["ok"]:
        raise PgdrillError(
            f"pgBackRest's stanza {physical.stanza} is not usable: {summary['status']}", "run pgbackrest check on the source and take a full backup"
        )
    document = json.loads(info_text)
    major = repository_major(document, str(physical.stanza))
    bin_dir, staging_major = staging_bindir(pg_bin_dir, major)
    record.update(repository_major=major, staging_major=staging_major)
    problem = major_problem(major, staging_major, bin_dir)
    if problem:
        raise problem
    summary.update(archive_max=archive_max(document, str(physical.stanza)), system_ids=system_ids(document, str(physical.stanza)))
    return summary, str(bin_dir), backup_before(document, str(physical.stanza), point_lsn)


def restore_into(
    physical: PhysicalDrill,
    user: Optional[str],
    data_dir: str,
    recovery: Tuple[str, Optional[str]],
    start_from: Optional[str],
    tablespaces_under: Optional[str] = None,
    delta: bool = False,
) -> Optional[str]:
    """pgBackRest restores the stanza into ``data_dir`` (archiving off in it), to ``recovery``; with
    ``delta`` over the stopped cluster already there. The backup set it restored from."""
    command = pgbackrest.restore_argv(
        physical.pgbackrest_config, str(physical.stanza), data_dir, *recovery, set_label=start_from, tablespaces_under=tablespaces_under
    )
    options = ["--log-level-console=info", *(["--delta"] if delta else [])]
    return backup_label(pgbackrest.run([*command[:-1], *options, command[-1]], user=user, what="pgbackrest restore"))


def recover(server: Server, summary: Dict[str, Any], label: Optional[str], timeout: float, record: Dict[str, Any], latest: bool) -> None:
    """Start the restored server, wait until it has replayed to its target and is promoted, and
    record the backup label, the WAL range used and the LSN and commit time reached; a restore to
    the latest point that stopped before the newest archived WAL met a gap, and fails naming it."""
    server.start()
    server.wait_promoted(timeout)
    reached = server.reached()
    used: Dict[str, Any] = next((b for b in summary["backups"] if b["label"] == label), {})
    record.update(
        backup_label=label,
        wal_range={"start": used.get("wal_start"), "stop": wal_file(used.get("wal_start"), reached["lsn"], reached["wal_segment_size"])},
        reached={"lsn": reached["lsn"], "commit_time": reached["commit_time"]},
        archive_max=summary["archive_max"],
    )
    gap = archive_gap(record["wal_range"]["stop"], summary["archive_max"]) if latest else None
    if gap:
        raise gap


def drill_physical(config: DrillConfig, run: DrillRun, physical: PhysicalDrill, set_dir: Optional[str] = None, check: bool = False) -> None:
    """The physical drill's steps, each timed, recorded in ``run`` (its record the evidence's
    physical facts). In check mode only the target is resolved and the versions checked."""
    server: Optional[Throwaway] = None
    run.record.update(kind="physical", stanza=physical.stanza, target={"type": None, "value": physical.target}, proofs={}, problems=[])
    try:
        run.steps.next("resolve target")
        target = parse_target(physical.target)
        checks = post_restore_steps(config)
        pgbackrest.check_stanza(physical.stanza or "")
        user = os_user_for(physical.pgbackrest_config)
        resolved = resolve(config, run, target, set_dir)
        recovery = recovery_target(target, resolved.point_name)
        run.record["target"] = evidence_target(target, resolved.point_name)
        run.steps.next("check versions")
        summary, bin_dir, start_from = check_repository(physical, user, config.pg_bin_dir, run.record, (resolved.point or {}).get("lsn"))
        if check:
            return
        source = source_position(physical.source)
        if source and summary["system_ids"] and source.get("system_id") is not None and source["system_id"] not in summary["system_ids"]:
            source = {**source, "other_cluster": True}
        run.steps.next("restore")
        server = Throwaway(bin_dir, config.work_dir, user, config.connection.user or "postgres")
        run.record["data_directory"] = server.data
        label = restore_into(physical, user, server.data, recovery, start_from, tablespaces_under=server.tablespaces)
        run.steps.next("recovery")
        server.configure()
        recover(server, summary, label, physical.recovery_timeout, run.record, latest=target.kind == "latest")
        seconds, basis = rpo(target, run.record["reached"]["commit_time"], run.record["reached"]["lsn"], source)
        run.record.update(rpo_seconds=seconds, rpo_basis=basis)
        run.steps.next("checks")
        prove(config, run, server, resolved, checks)
        run.passed = True
    except (PgdrillError, OSError, db._psycopg().Error) as exc:
        run.fail(exc if not isinstance(exc, db._psycopg().Error) else PgdrillError(f"PostgreSQL said: {str(exc).strip()}", "read the throwaway server's log"))
        log.error("%s: physical drill failed at %s: %s", config.database, run.failed_step, run.error)
    finally:
        _stop_or_keep(config, run, server)


def prove(config: DrillConfig, run: DrillRun, server: Throwaway, resolved: Resolved, checks: List[Dict[str, Any]]) -> None:
    """Every proof, all run, each recorded; any that fails fails the drill, naming the first.
    amcheck runs on a second connection while the first reads the tables, so the checks take the
    longer of the two, not their sum."""
    database = str((resolved.point or {}).get("database") or config.database)
    proofs: Dict[str, Any] = run.record["proofs"]
    problems: List[str] = run.record["problems"]
    conn = db.connect(server.connection, database, autocommit=True)
    try:
        point = resolved.point or {}
        if point.get("fingerprint"):
            # Taken before amcheck's extension is created, so the fingerprint is the restore's own.
            differences, _notes = fp.compare(point["fingerprint"], fp.take(conn))
            proofs["fingerprint"] = "identical" if not differences else "different"
            problems += [f"fingerprint: {difference.describe()}" for difference in differences[:20]]
        else:
            proofs["fingerprint"] = "n/a"
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgdrill-amcheck") as pool:
            checked = pool.submit(amcheck, server.connection, database)
            unlogged = db.unlogged_tables(conn)
            run.record["unlogged_tables"] = unlogged  # empty after any physical restore: not compared
            # A set's point compares every table's checksum with the logical restore's, and the checksums
            # carry the row counts: one pass over the tables, not two.
            sums = db.table_checksums(conn) if resolved.backup is not None else None
            counts = {name: int(value.split(":")[0]) for name, value in sums.items()} if sums is not None else db.count_rows(conn)
            if point.get("row_counts"):
                wrong = count_problems(point["row_counts"], counts, "at the point", unlogged)
                proofs["row_counts"] = "identical" if not wrong else "different"
                problems += wrong
            else:
                proofs["row_counts"] = "n/a"
            proofs["amcheck"], failures = checked.result()
        problems += failures
    finally:
        conn.close()
    if resolved.backup is not None:
        physical_sums = {name: value for name, value in (sums or {}).items() if name not in unlogged}
        proofs["logical_equal"] = logical_equal(config, run, server, resolved, physical_sums, problems)
    else:
        proofs["logical_equal"] = "n/a"
    if checks:
        results = smoke_results(server.connection, database, checks, server.connection.libpq_env(database), config.command_timeout)
        run.smoke = {"ok": all(result["ok"] for result in results), "results": results}
        proofs["smoke"] = "passed" if run.smoke["ok"] else "failed"
        problems += [f"{result['kind']} '{result['name']}' failed: {result['detail']}" for result in results if not result["ok"]]
    else:
        proofs["smoke"] = "n/a"
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PgdrillError(
            f"the physical restore is not proved: {problems[0]}{more}",
            "read the evidence's problems; the repository or the point record does not hold what was recorded",
        )


def amcheck(connection: Connection, database: str) -> Tuple[Dict[str, Any], List[str]]:
    """bt_index_check on every B-tree index of the database (catalogs included), on a connection of
    its own: what it found, and a problem for each index that failed."""
    psycopg = db._psycopg()
    conn = db.connect(connection, database, autocommit=True)
    try:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        except psycopg.Error as exc:
            raise PgdrillError(
                f"amcheck is not available on staging: {str(exc).strip()}", "install the PostgreSQL contrib modules of this major version on staging"
            ) from None
        indexes = [row[0] for row in conn.execute(BTREE_SQL).fetchall()]
        failed, problems = [], []
        for index in indexes:
            try:
                conn.execute("SELECT bt_index_check(%s::regclass)", (index,))
            except psycopg.Error as exc:
                failed.append(index)
                problems.append(f"amcheck: index {index}: {str(exc).strip()}")
    finally:
        conn.close()
    return {"indexes": len(indexes), "failed": failed}, problems


def logical_equal(config: DrillConfig, run: DrillRun, server: Throwaway, resolved: Resolved, physical: Dict[str, str], problems: List[str]) -> str:
    """The logical set restored into a second database on the same server (proved against its own
    fingerprint and row counts by the restore), then every table's rows and checksum compared with
    the physically restored database's: two independent backups of one instant must agree."""
    target = f"pitr_logical_{secrets.token_hex(3)}"
    series = replace(resolved.series, connection=server.connection, pg_bin_dir=server.bin_dir)
    options = RestoreOptions(
        target=target, jobs=config.restore_jobs, globals=False, compare=True, scratch="physical drill", maintenance_db=config.maintenance_db
    )
    try:
        run.restore = restore_set(series, resolved.backup, options)
    except PgdrillError as exc:
        run.restore = {"restore": exc.details.get("restore") or {}, **{k: exc.details[k] for k in ("fidelity", "row_counts") if k in exc.details}}
        problems.append(f"logical restore of {resolved.backup.id}: {exc.message}")
        return "not restored"
    conn = db.connect(server.connection, target, autocommit=True)
    try:
        logical = {name: value for name, value in db.table_checksums(conn).items() if name not in run.record.get("unlogged_tables", [])}
    finally:
        conn.close()
    different = [name for name in sorted(set(physical) | set(logical)) if physical.get(name) != logical.get(name)]
    problems += [f"table {name}: physical {physical.get(name)}, logical {logical.get(name)} (rows:checksum)" for name in different]
    return "equal" if not different else "different"


def _stop_or_keep(config: DrillConfig, run: DrillRun, server: Optional[Throwaway]) -> None:
    """The server stopped; its directory removed unless ``keep`` keeps it (then stopped, to start by hand)."""
    run.steps.next("cleanup")
    timings = dict(run.steps.timings)
    run.record.update(rto_seconds=rto(timings) if run.record.get("reached") else None)
    if server is None:
        run.record.update(data_directory_kept=False)
        return
    run.kept = drill.keeps_scratch(config.keep, run.passed)
    if run.kept:
        server.keep()
        log.info("kept the restored data directory %s (start it with pg_ctl -D)", server.data)
    else:
        server.remove()
    run.record.update(data_directory_kept=run.kept)
