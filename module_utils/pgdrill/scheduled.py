"""A whole restore drill without the controller: what ``pgdrill-backup drill`` runs, from a timer on
staging. The steps are the playbook drill's, through the same engine code: pick the newest complete
set, verify its checksums and archive, restore it into a fresh marked scratch database with the
fingerprint and row-count proof (recovery.restore_set), run the post-restore commands and smoke
checks (drill.run_checks), drop the scratch database and its roles by their mark (scratch.drop),
and record the evidence, the drill log line and the metrics (drill.compose_record, write_evidence,
log_line). Pings at start and end, like a backup run.

Where the set comes from is one hook, :func:`fetch_newest_set`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shlex
import shutil
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional

from . import db, drill, ping, scratch
from .catalog import BackupSet, scan
from .config import DatabaseConfig, DrillConfig
from .errors import PgdrillError
from .fsio import os_error
from .operations import select_for_verify
from .recovery import RestoreOptions, restore_set
from .verify import verify_set

log = logging.getLogger("pgdrill")
EXIT_OK, EXIT_FAILED = 0, 1
LEFTOVER_GRACE = timedelta(hours=24)


def fetch_newest_set(config: DrillConfig, work_dir: str) -> str:
    """The directory on this host that holds the newest complete set of ``config.prefix``.

    ``source = local``: ``config.source_dir`` itself (a directory the sets reach by other means: the
    backup host's own directory, a mount, a synced copy). ``source = ssh``: the newest set in
    ``source_dir`` on ``source_ssh``, copied with scp into a directory under ``work_dir`` (the
    playbook drill's direct transfer, without the controller). ``source = remote``: the newest set
    of the off-host copies is to be fetched into ``work_dir`` and that directory returned; this is
    the hook for the off-host copies. A directory under ``work_dir`` is removed after the drill
    (unless ``keep`` keeps the scratch database)."""
    if config.source == "local":
        return str(config.source_dir)
    if config.source == "ssh":
        return _fetch_over_ssh(config, work_dir)
    return _fetch_from_remote(config, work_dir)


def series_config(config: DrillConfig, directory: str) -> DatabaseConfig:
    """The drilled series as the engine's other commands see it: its sets in ``directory``, its
    off-host copy, the staging server and the identity that decrypts. Pure."""
    return DatabaseConfig(
        label=config.database,
        connection=config.connection,
        backup_dir=directory,
        prefix=config.prefix,
        pg_bin_dir=config.pg_bin_dir,
        work_dir=config.work_dir,
        restore_jobs=config.jobs,
        encrypt_identity_file=config.identity_file,
        remote=config.remote,
        remote_endpoint_url=config.remote_endpoint_url,
        remote_region=config.remote_region,
        remote_profile=config.remote_profile,
    )


def _fetch_from_remote(config: DrillConfig, work_dir: str) -> str:
    """Pull the newest complete set of the off-host copy into ``work_dir/copy-<prefix>``, each file
    checked against the manifest on arrival; encrypted files stay encrypted (the restore decrypts)."""
    import shutil

    from . import offsite

    directory = os.path.join(work_dir, f"copy-{config.prefix}")
    shutil.rmtree(directory, ignore_errors=True)  # an earlier drill's copy, if it was killed
    offsite.pull(series_config(config, directory), None, directory)
    return directory


def newest_set_files(names: List[str], prefix: str, now: Optional[datetime] = None) -> List[str]:
    """The files of the newest set of ``prefix`` that has a manifest (none dated ahead of ``now``),
    from a directory listing; its verification record is left behind. Pure."""
    from .naming import STAMP_FORMAT, group_by_set

    moment = (now or datetime.now(timezone.utc)).strftime(STAMP_FORMAT)
    groups = group_by_set(names, prefix)
    stamps = sorted(stamp for stamp, files in groups.items() if stamp <= moment and any(f.kind == "manifest" for f in files))
    return sorted(f"{item.prefix}_{item.kind}_{item.stamp}_utc.{item.ext}" for item in groups[stamps[-1]] if item.kind != "verify") if stamps else []


def _fetch_over_ssh(config: DrillConfig, work_dir: str) -> str:
    import shutil

    from .pipeline import child_env, run

    options = [word for line in config.ssh_options for word in shlex.split(line)]
    where = f"{config.source_dir} on {config.source_ssh}"
    fix = "staging must reach the source with ssh non-interactively, as an account that can read source_dir (ssh_options -i KEY)"
    env = child_env()
    listing = run(["ssh", *options, str(config.source_ssh), "ls -1A -- " + shlex.quote(str(config.source_dir))], env, f"listing {where}", fix)
    names = newest_set_files(listing.stdout.splitlines(), config.prefix)
    if not names:
        raise PgdrillError(f"there is no backup set of {config.prefix} in {where}", "take a backup there first, or fix source_dir and prefix")
    copy = os.path.join(work_dir, f"copy-{config.prefix}")
    for stale in (copy, copy + ".partial"):
        shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(copy + ".partial", mode=0o700)
    run(
        ["scp", "-B", *options, *(f"{config.source_ssh}:{config.source_dir}/{name}" for name in names), copy + ".partial/"],
        env,
        f"copying {len(names)} file(s) of the newest set from {where}",
        fix,
    )
    os.rename(copy + ".partial", copy)
    return copy


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


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def drill_set(config: DrillConfig, run: DrillRun, fetch: Callable[[], str], wanted: Optional[str] = None, pick_step: str = "pick the set") -> None:
    """The drill's steps from the set to the cleanup, each timed: pick the set in the directory
    ``fetch`` brings it to (``wanted``, or the newest complete one, which must be fresh), verify it,
    restore and prove it in a fresh scratch database, run the post-restore commands and smoke checks,
    then drop or keep the scratch database. A failure is recorded in ``run``, never raised."""
    try:
        checks = post_restore_steps(config)
        backup = prepare(config, run, fetch, wanted, pick_step)
        run.steps.next("restore")
        _restore(config, run, backup, drop_leftovers=wanted is None)
        run.steps.next("smoke checks")
        _smoke(config, run, checks)
        run.passed = True
    except (PgdrillError, OSError) as exc:
        run.fail(exc)
        log.error("%s: drill failed at %s: %s", config.database, run.failed_step, run.error)
    _drop_or_keep(config, run)


def prepare(config: DrillConfig, run: DrillRun, fetch: Callable[[], str], wanted: Optional[str] = None, pick_step: str = "pick the set") -> BackupSet:
    """The first steps, all a drill in check mode runs: pick the set and verify it on arrival."""
    run.steps.next(pick_step)
    backup = _pick(config, run, fetch(), wanted)
    run.steps.next("verify on arrival")
    _verify_on_arrival(run, backup)
    return backup


def _pick(config: DrillConfig, run: DrillRun, directory: str, wanted: Optional[str]) -> BackupSet:
    """The set to drill in ``directory``, its facts recorded; the newest complete one must be fresh."""
    run.dbconfig = series_config(config, directory)
    backup = select_for_verify(scan(directory, config.prefix), wanted, False)[0]
    run.record.update(drill.set_facts(backup.id, backup.manifest or {}))
    age_hours = (datetime.now(timezone.utc) - backup.time).total_seconds() / 3600
    if wanted is None and config.max_age_hours and age_hours > config.max_age_hours:
        raise PgdrillError(
            f"the newest complete set of {config.prefix}, {backup.id}, is {age_hours:.1f} h old (limit {config.max_age_hours:g} h)",
            "find out why the backups stopped (systemctl status pgdrill-backup.timer on the source), or raise max_age_hours",
        )
    return backup


def _verify_on_arrival(run: DrillRun, backup: BackupSet) -> None:
    """The set's checksums and archive, on the host that restores it, recording nothing."""
    assert run.dbconfig is not None
    verified = verify_set(run.dbconfig, backup, restore=False, record=False)
    if not verified["ok"]:
        bad = next(check for check in verified["checks"] if not check["ok"])
        raise PgdrillError(f"set {backup.id} failed verification: {bad['name']}: {bad['detail']}", "take a new backup; this set is damaged")


def _restore(config: DrillConfig, run: DrillRun, backup: BackupSet, drop_leftovers: bool) -> None:
    """Restore into a fresh marked scratch database, proved against the set's fingerprint and row counts."""
    assert run.dbconfig is not None
    if drop_leftovers:
        _drop_leftovers(config)
    run.target = scratch_target(config, backup)
    options = RestoreOptions(
        target=run.target,
        jobs=config.jobs,
        globals=config.restore_globals,
        role_passwords=config.role_passwords,
        owners=config.owners,
        privileges=config.privileges,
        compare=True,
        scratch="restore drill",
        maintenance_db=config.maintenance_db,
    )
    try:
        run.restore = restore_set(run.dbconfig, backup, options)
    except PgdrillError as exc:
        run.restore = {"restore": exc.details.get("restore") or {}, **{k: exc.details[k] for k in ("fidelity", "row_counts") if k in exc.details}}
        raise


def _smoke(config: DrillConfig, run: DrillRun, checks: List[Dict[str, Any]]) -> None:
    """The post-restore commands and smoke checks against the scratch database; the first failure fails the drill."""
    if not checks or run.target is None:
        return
    conn = db.connect(config.connection, run.target, autocommit=True)
    try:
        results = drill.run_checks(conn, checks, config.connection.libpq_env(run.target), timeout=config.command_timeout)
    finally:
        conn.close()
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


def run_drill(config: DrillConfig) -> Dict[str, Any]:
    """Run one drill; never raises for a failed drill (the outcome is in the record). Returns
    {"record", "log_line", "evidence", "exit_code"}."""
    record: Dict[str, Any] = {
        "drill_id": drill.new_drill_id(),
        "source_host": config.source_host,
        "staging_host": socket.gethostname(),
        "transfer": {"ssh": "direct"}.get(config.source, config.source),
        "database": config.database,
        "set": None,
        "runner": "pgdrill-backup drill",
        "started_at": _now(),
    }
    if config.ping_url:
        ping.send(config.ping_url, "start", {"database": config.database, "drill": True})
    run = DrillRun(record)
    work_dir = config.work_dir or os.path.dirname(config.evidence_dir)
    drill_set(config, run, lambda: fetch_newest_set(config, work_dir))
    _keep_or_remove_copy(config, run, work_dir)
    run.steps.next("record")
    run.record.update(finished_at=_now(), timings=dict(run.steps.timings))
    return _record(config, run)


def _keep_or_remove_copy(config: DrillConfig, run: DrillRun, work_dir: str) -> None:
    """The copy of the set fetched under ``work_dir`` is removed, or kept with a kept scratch
    database, without the source's password hashes (the record says where and without what)."""
    directory = run.dbconfig.backup_dir if run.dbconfig is not None else None
    if config.source == "local" or directory is None or not _inside(directory, work_dir):
        return
    if run.kept:
        run.record.update(kept_copies=[f"{run.record['staging_host']}:{directory}"])
        keep_copy(run, directory)
    else:
        shutil.rmtree(directory, ignore_errors=True)


def keep_copy(run: DrillRun, directory: str) -> None:
    """A copy of the set kept with a kept scratch database, stripped of what it must not hold
    (drill.left_out_of_kept_copies: the globals, with the source's password hashes)."""
    if run.kept:
        run.record["kept_copies_left_out"] = drill.strip_kept_copy(directory, run.record.get("files") or [])


def _record(config: DrillConfig, run: DrillRun) -> Dict[str, Any]:
    """The evidence, the drill log line, the metrics and the closing ping.

    The outcome is one thing: a drill whose record cannot be written failed, and the evidence, the
    log line, the metrics, the ping and the exit code all say so. The log is opened first and its
    line appended last, so a failure to write anything is known before the line says PASSED."""

    def outcome() -> Dict[str, Any]:
        record = dict(run.record, outcome="passed" if run.passed else "failed", failed_step=run.failed_step, error=run.error)
        return drill.compose_record(record, run.restore, run.smoke, run.cleanup)

    def unrecorded(exc: Exception) -> None:
        run.passed, run.failed_step, run.error = _unrecorded(config, exc, run.passed, run.failed_step, run.error)

    log_fd, evidence = None, None
    try:
        log_fd = _open_log(config.log_file) if config.log_file else None
    except PgdrillError as exc:
        unrecorded(exc)
    composed = outcome()
    try:
        evidence = drill.write_evidence(config.evidence_dir, composed, config.metrics_dir)
    except (PgdrillError, OSError) as exc:
        unrecorded(exc)
        composed = outcome()
        evidence = _rewrite_evidence(config, composed)  # the evidence may be written and the metrics not
    if log_fd is not None:
        try:
            _append_line(log_fd, str(config.log_file), drill.log_line(composed))
        except PgdrillError as exc:
            unrecorded(exc)
            composed = outcome()
            evidence = _rewrite_evidence(config, composed)
    exit_code = EXIT_OK if run.passed else EXIT_FAILED
    if config.ping_url:
        summary = {"database": config.database, "set": run.record.get("set"), "outcome": composed["outcome"], "drill": True}
        if not run.passed:
            summary.update(failed_step=run.failed_step, error=run.error)
        ping.send(config.ping_url, "success" if run.passed else "fail", summary, exit_code, config.ping_exit_codes)
    return {"record": composed, "log_line": drill.log_line(composed), "evidence": evidence, "exit_code": exit_code}


def _inside(path: str, directory: str) -> bool:
    real, parent = os.path.realpath(path), os.path.realpath(directory)
    return real != parent and os.path.commonpath([real, parent]) == parent


def _drop(config: DrillConfig, target: str) -> Dict[str, Any]:
    admin = db.connect(config.connection, config.maintenance_db, autocommit=True)
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


def _open_log(path: str) -> int:
    """The drill log (the Markdown log the playbook drill writes on the controller), open to append a line."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise PgdrillError(
            f"cannot open the drill log {path}: {exc.strerror or exc}", "make log_file a writable file (its folder must be a directory)"
        ) from exc


def _append_line(descriptor: int, path: str, line: str) -> None:
    """Append the line in one write, to disk; closes the log either way."""
    try:
        data = (line + "\n").encode("utf-8")
        if os.write(descriptor, data) != len(data):
            raise OSError(errno.ENOSPC, "the line was cut short")
        os.fsync(descriptor)
    except OSError as exc:
        raise PgdrillError(f"cannot append to the drill log {path}: {exc.strerror or exc}", "free space on its filesystem, or make log_file writable") from exc
    finally:
        os.close(descriptor)


def _record_problem(exc: Exception) -> str:
    return exc.message if isinstance(exc, PgdrillError) else f"{getattr(exc, 'strerror', None) or exc}: {getattr(exc, 'filename', None) or 'a file'}"


def _unrecorded(
    config: DrillConfig, exc: Exception, passed: bool, failed_step: Optional[str], error: Optional[str]
) -> "tuple[bool, Optional[str], Optional[str]]":
    """A drill whose record cannot be written failed at "record" (an earlier failure stays the one named)."""
    problem = _record_problem(exc)
    log.error("%s: cannot record the drill: %s", config.database, problem)
    return (False, "record", f"cannot record the drill: {problem}") if passed else (passed, failed_step, error)


def _rewrite_evidence(config: DrillConfig, composed: Dict[str, Any]) -> Optional[str]:
    """The evidence and the metrics again, now saying failed (same drill id, same file); None if that failed too."""
    try:
        return drill.write_evidence(config.evidence_dir, composed, config.metrics_dir)
    except (PgdrillError, OSError) as exc:
        log.error("%s: cannot record the drill: %s", config.database, _record_problem(exc))
        return None
