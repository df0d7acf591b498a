# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""One restore drill's steps, the same for both drills (``pgdrill-backup drill`` on a timer, and the
playbook drill's pgdrill_drill module on staging); only where the set comes from differs.

Each step records its own timing in :class:`DrillRun`: pick the set (the newest complete one must
be fresh), verify on arrival (checksums and archive, recording nothing), restore into a fresh marked
scratch database with the fingerprint and row-count proof (recovery.restore_set), the post-restore
commands and smoke checks (drill.run_checks), and drop or keep the scratch database and its roles
(scratch.drop). The evidence is composed from the run by drill.compose_record.
"""

from __future__ import annotations

import logging
import re
import secrets
import shlex
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import db, drill, scratch, verdict
from .catalog import BackupSet, scan, select_for_verify
from .config import Connection, DatabaseConfig
from .drill_config import DrillConfig
from .errors import PgdrillError, SetDamaged
from .fsio import os_error
from .recovery import RestoreOptions, restore_set
from .verify import verify_set

log = logging.getLogger("pgdrill")
LEFTOVER_GRACE = timedelta(hours=24)


def scratch_target(config: DrillConfig, backup: BackupSet) -> str:
    """``<scratch_prefix><database>_<stamp>_<random>``, at most 63 bytes, the random part kept. Pure but for the random part."""
    base = _scratch_base(config)
    suffix = f"{backup.stamp}_{secrets.token_hex(3)}"
    return (base + suffix)[-63:] if len(base + suffix) > 63 else base + suffix


def _scratch_base(config: DrillConfig) -> str:
    return f"{config.scratch_prefix}{re.sub(r'[^A-Za-z0-9_]', '_', config.database)[:30]}_"


def post_restore_steps(config: DrillConfig) -> List[Dict[str, Any]]:
    """The post-restore commands (one a line, split like a shell would, run without one) followed
    by the smoke checks, in the pgdrill_smoke format. Pure."""
    steps: List[Dict[str, Any]] = []
    for line in config.post_restore:
        step: Dict[str, Any] = {"name": line, "command": shlex.split(line)}
        if config.post_restore_dir:
            step["chdir"] = config.post_restore_dir
        steps.append(step)
    steps.extend(dict(check) for check in config.checks)
    drill.validate_checks(steps)
    return steps


class _Steps:
    """The drill's steps and how long each took (the evidence's ``timings``)."""

    def __init__(self) -> None:
        self.current = ""
        self.timings: Dict[str, float] = {}
        self._mark = time.monotonic()

    def next(self, name: str) -> None:
        if name == self.current:
            return
        if self.current:
            self.timings[self.current] = round(time.monotonic() - self._mark, 3)
        self.current, self._mark = name, time.monotonic()


@dataclass
class DrillRun:
    """One drill as it goes: the record's own facts so far, what the restore, the smoke checks and
    the cleanup reported, the scratch database, and the outcome."""

    record: Dict[str, Any]
    steps: _Steps = field(default_factory=_Steps)
    restore: Dict[str, Any] = field(default_factory=dict)
    smoke: Dict[str, Any] = field(default_factory=dict)
    cleanup: Dict[str, Any] = field(default_factory=dict)
    dbconfig: Optional[DatabaseConfig] = None
    target: Optional[str] = None
    kept: bool = False
    passed: bool = False
    failed_step: Optional[str] = None
    error: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)

    def fail(self, exc: Exception) -> None:
        """Record the failure of the running step (every engine step reports its own failures with a
        fix; an OSError is the last line of defence)."""
        if isinstance(exc, PgdrillError):
            self.error, self.details = exc.message, dict(exc.details)
        else:
            self.error = os_error(exc, "work on", getattr(exc, "filename", None) or "a file").message  # type: ignore[arg-type]
        self.passed, self.failed_step = False, self.steps.current or "configuration"


def drill_set(config: DrillConfig, run: DrillRun, fetch: Callable[[], DatabaseConfig], wanted: Optional[str] = None, pick_step: str = "pick the set") -> None:
    """The drill's steps from the set to the cleanup, each timed: pick the set in the series
    ``fetch`` brings it to (``wanted``, or the newest complete one, which must be fresh), verify it,
    restore and prove it in a fresh scratch database, run the post-restore commands and smoke checks,
    then drop or keep the scratch database. A failure is recorded in ``run``, never raised."""
    try:
        checks = post_restore_steps(config)
        series, backup = prepare(config, run, fetch, wanted, pick_step)
        run.steps.next("restore")
        _restore(config, run, series, backup, drop_leftovers=wanted is None)
        run.steps.next("smoke checks")
        _smoke(config, run, checks)
        run.passed = True
    except (PgdrillError, OSError) as exc:
        run.fail(exc)
        log.error("%s: drill failed at %s: %s", config.database, run.failed_step, run.error)
    _drop_or_keep(config, run)


def prepare(
    config: DrillConfig, run: DrillRun, fetch: Callable[[], DatabaseConfig], wanted: Optional[str] = None, pick_step: str = "pick the set"
) -> Tuple[DatabaseConfig, BackupSet]:
    """The first steps, all a drill in check mode runs: pick the set and verify it on arrival; the
    series the set is in and the set."""
    run.steps.next(pick_step)
    series = fetch()
    backup = _pick(config, run, series, wanted)
    run.steps.next("verify on arrival")
    verify_on_arrival(series, backup)
    return series, backup


def _pick(config: DrillConfig, run: DrillRun, series: DatabaseConfig, wanted: Optional[str]) -> BackupSet:
    """The set to drill in the directory of ``series``, its facts recorded; the newest complete one must be fresh."""
    run.dbconfig = series
    backup = select_for_verify(scan(series.backup_dir, config.prefix), wanted, False)[0]
    run.record.update(drill.set_facts(backup.id, backup.manifest or {}))
    age_hours = (datetime.now(timezone.utc) - backup.time).total_seconds() / 3600
    if wanted is None and config.max_age_hours and age_hours > config.max_age_hours:
        raise PgdrillError(
            f"the newest complete set of {config.prefix}, {backup.id}, is {age_hours:.1f} h old (limit {config.max_age_hours:g} h)",
            "find out why the backups stopped (systemctl status pgdrill-backup.timer on the source), or raise max_age_hours",
        )
    return backup


def verify_on_arrival(series: DatabaseConfig, backup: BackupSet) -> None:
    """The set's checksums and archive, on the host that restores it, recording nothing."""
    verified = verify_set(series, backup, restore=False, record=False)
    words = verdict.failure_words(backup.id, verified["checks"])
    if words is not None:
        text, blames_set = words
        if blames_set:
            raise SetDamaged(text, "take a new backup; this set is damaged")
        raise PgdrillError(text, "fix what is named (the set is not blamed) and run the drill again")


def _restore(config: DrillConfig, run: DrillRun, series: DatabaseConfig, backup: BackupSet, drop_leftovers: bool) -> None:
    """Restore into a fresh marked scratch database, proved against the set's fingerprint and row counts."""
    if drop_leftovers:
        _drop_leftovers(config)
    run.target = scratch_target(config, backup)
    options = RestoreOptions(
        target=run.target,
        jobs=config.restore_jobs,
        globals=config.restore_globals,
        role_passwords=config.role_passwords,
        owners=config.owners,
        privileges=config.privileges,
        compare=True,
        scratch="restore drill",
        maintenance_db=config.maintenance_db,
    )
    try:
        run.restore = restore_set(series, backup, options)
    except PgdrillError as exc:
        run.restore = {"restore": exc.details.get("restore") or {}, **{k: exc.details[k] for k in ("fidelity", "row_counts") if k in exc.details}}
        raise


def _smoke(config: DrillConfig, run: DrillRun, checks: List[Dict[str, Any]]) -> None:
    """The post-restore commands and smoke checks against the scratch database; the first failure fails the drill."""
    if not checks or run.target is None:
        return
    results = smoke_results(config.connection, run.target, checks, config.connection.libpq_env(run.target), config.command_timeout)
    run.smoke = {"ok": all(result["ok"] for result in results), "results": results}
    failed = [result for result in results if not result["ok"]]
    if failed:
        raise PgdrillError(f"{failed[0]['kind']} '{failed[0]['name']}' failed: {failed[0]['detail']}", "")


def _drop_or_keep(config: DrillConfig, run: DrillRun) -> None:
    """Drop the scratch database and the roles made for it, unless ``keep`` keeps them; a drop that
    fails fails a drill that had passed, at "cleanup"."""
    run.kept = run.target is not None and drill.keeps_scratch(config.keep, run.passed)
    run.steps.next("cleanup")
    if run.target and not run.kept:
        try:
            run.cleanup = _drop(config, run.target)
        except PgdrillError as exc:
            log.error("%s: could not drop the scratch database %s: %s", config.database, run.target, exc.message)
            if run.passed:
                run.fail(exc)
    run.record.update(scratch_database=run.target, scratch_database_kept=run.kept)


def _drop(config: DrillConfig, target: str) -> Dict[str, Any]:
    return drop_scratch(config.connection, config.maintenance_db, target)


def smoke_results(connection: Connection, dbname: str, checks: List[Dict[str, Any]], env: Dict[str, str], timeout: float = 600.0) -> List[Dict[str, Any]]:
    """Each post-restore command's and smoke check's result, run in order against ``dbname``."""
    conn = db.connect(connection, dbname, autocommit=True)
    try:
        return drill.run_checks(conn, checks, env, timeout=timeout)
    finally:
        conn.close()


def drop_scratch(connection: Connection, maintenance_db: str, target: str) -> Dict[str, Any]:
    """Drop ``target`` and the roles made for it, only if it is a scratch database pgdrill made."""
    admin = db.connect(connection, maintenance_db, autocommit=True)
    try:
        return scratch.drop(admin, target)
    finally:
        admin.close()


def _drop_leftovers(config: DrillConfig) -> None:
    """Scratch databases of this drill left by a run that was killed before it cleaned up."""
    admin = db.connect(config.connection, config.maintenance_db, autocommit=True)
    try:
        for name in scratch.leftovers(admin, _scratch_base(config), LEFTOVER_GRACE):
            log.info("dropping scratch database %s left by an interrupted drill", name)
            scratch.drop(admin, name)
    finally:
        admin.close()


def keep_copy(run: DrillRun, directory: str) -> None:
    """A copy of the set kept with a kept scratch database, stripped of what it must not hold
    (drill.left_out_of_kept_copies: the globals, with the source's password hashes)."""
    if run.kept:
        run.record["kept_copies_left_out"] = drill.strip_kept_copy(directory, run.record.get("files") or [])
