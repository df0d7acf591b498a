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
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

from . import db, drill, ping, scratch
from .catalog import BackupSet, scan
from .config import DatabaseConfig
from .drill_config import DrillConfig
from .errors import EXIT_FAILED, EXIT_OK, PgdrillError
from .fsio import os_error
from .operations import select_for_verify
from .recovery import RestoreOptions, restore_set
from .verify import verify_set

log = logging.getLogger("pgdrill")
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
    base = f"{config.scratch_prefix}{re.sub(r'[^A-Za-z0-9_]', '_', config.database)[:30]}_"
    suffix = f"{backup.stamp}_{secrets.token_hex(3)}"
    return (base + suffix)[-63:] if len(base + suffix) > 63 else base + suffix


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
    """The drill's steps and how long each took (the playbook drill's ``timings``)."""

    def __init__(self) -> None:
        self.current = ""
        self.timings: Dict[str, float] = {}
        self._mark = time.monotonic()

    def next(self, name: str) -> None:
        if self.current:
            self.timings[self.current] = round(time.monotonic() - self._mark, 3)
        self.current, self._mark = name, time.monotonic()


def run_drill(config: DrillConfig) -> Dict[str, Any]:
    """Run one drill; never raises for a failed drill (the outcome is in the record). Returns
    {"record", "log_line", "evidence", "exit_code"}."""
    started_at = _now()
    if config.ping_url:
        ping.send(config.ping_url, "start", {"database": config.database, "drill": True})
    steps = _Steps()
    record: Dict[str, Any] = {
        "drill_id": drill.new_drill_id(),
        "source_host": config.source_host,
        "staging_host": socket.gethostname(),
        "transfer": {"ssh": "direct"}.get(config.source, config.source),
        "database": config.database,
        "set": None,
        "runner": "pgdrill-backup drill",
        "started_at": started_at,
    }
    restore: Dict[str, Any] = {}
    smoke: Dict[str, Any] = {}
    cleanup: Dict[str, Any] = {}
    target: Optional[str] = None
    passed = False
    error = None
    dbconfig = None
    work_dir = config.work_dir or os.path.dirname(config.evidence_dir)
    try:
        checks = post_restore_steps(config)
        steps.next("pick the set")
        directory = fetch_newest_set(config, work_dir)
        dbconfig = series_config(config, directory)
        backup = select_for_verify(scan(directory, config.prefix), None, False)[0]
        document = backup.manifest or {}
        record.update(
            set=backup.id,
            files=document.get("files") or [],
            sha256=next((f.get("sha256") for f in document.get("files") or [] if f.get("kind") == "db"), None),
            tool_version=(document.get("tool") or {}).get("version"),
            pg_dump_version=(document.get("client") or {}).get("pg_dump_version"),
            source_server_version=(document.get("database") or {}).get("server_version"),
        )
        age_hours = (datetime.now(timezone.utc) - backup.time).total_seconds() / 3600
        if config.max_age_hours and age_hours > config.max_age_hours:
            raise PgdrillError(
                f"the newest complete set of {config.prefix}, {backup.id}, is {age_hours:.1f} h old (limit {config.max_age_hours:g} h)",
                "find out why the backups stopped (systemctl status pgdrill-backup.timer on the source), or raise max_age_hours",
            )
        steps.next("verify on arrival")
        verified = verify_set(dbconfig, backup, restore=False, record=False)
        if not verified["ok"]:
            bad = next(check for check in verified["checks"] if not check["ok"])
            raise PgdrillError(f"set {backup.id} failed verification: {bad['name']}: {bad['detail']}", "take a new backup; this set is damaged")
        steps.next("restore")
        _drop_leftovers(config)
        target = scratch_target(config, backup)
        options = RestoreOptions(
            target=target,
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
            restore = restore_set(dbconfig, backup, options)
        except PgdrillError as exc:
            restore = {"restore": exc.details.get("restore") or {}, **{k: exc.details[k] for k in ("fidelity", "row_counts") if k in exc.details}}
            raise
        steps.next("smoke checks")
        if checks:
            conn = db.connect(config.connection, target, autocommit=True)
            try:
                results = drill.run_checks(conn, checks, config.connection.libpq_env(target), timeout=config.command_timeout)
            finally:
                conn.close()
            smoke = {"ok": all(result["ok"] for result in results), "results": results}
            failed = [result for result in results if not result["ok"]]
            if failed:
                raise PgdrillError(f"{failed[0]['kind']} '{failed[0]['name']}' failed: {failed[0]['detail']}", "")
        passed = True
    except (PgdrillError, OSError) as exc:
        # Every engine step reports its own failures with a fix; an OSError is the last line of defence.
        error = exc.message if isinstance(exc, PgdrillError) else os_error(exc, "work on", getattr(exc, "filename", None) or "a file").message
        log.error("%s: drill failed at %s: %s", config.database, steps.current or "start", error)
    failed_step = None if passed else (steps.current or "configuration")
    keep = target is not None and (config.keep == "always" or (config.keep == "on_failure" and not passed))
    steps.next("cleanup")
    if target and not keep:
        try:
            cleanup = _drop(config, target)
        except PgdrillError as exc:
            log.error("%s: could not drop the scratch database %s: %s", config.database, target, exc.message)
            if passed:
                passed, failed_step, error = False, "cleanup", exc.message
    if config.source != "local" and dbconfig is not None and _inside(dbconfig.backup_dir, work_dir):
        if keep:  # the fetched copy stays with the scratch database, without the source's password hashes
            record.update(
                kept_copies=[f"{record['staging_host']}:{dbconfig.backup_dir}"],
                kept_copies_left_out=drill.strip_kept_copy(dbconfig.backup_dir, record.get("files") or []),
            )
        else:
            import shutil

            shutil.rmtree(dbconfig.backup_dir, ignore_errors=True)  # the fetched copy of the set
    steps.next("record")
    record.update(scratch_database=target, scratch_database_kept=keep, finished_at=_now(), timings=dict(steps.timings))

    def outcome(passed: bool, failed_step: Optional[str], error: Optional[str]) -> Dict[str, Any]:
        return drill.compose_record(dict(record, outcome="passed" if passed else "failed", failed_step=failed_step, error=error), restore, smoke, cleanup)

    # The outcome is one thing: a drill whose record cannot be written failed, and the evidence, the
    # log line, the metrics, the ping and the exit code all say so. The log is opened first and its
    # line appended last, so a failure to write anything is known before the line says PASSED.
    log_fd, evidence = None, None
    try:
        log_fd = _open_log(config.log_file) if config.log_file else None
    except PgdrillError as exc:
        passed, failed_step, error = _unrecorded(config, exc, passed, failed_step, error)
    composed = outcome(passed, failed_step, error)
    try:
        evidence = drill.write_evidence(config.evidence_dir, composed, config.metrics_dir)
    except (PgdrillError, OSError) as exc:
        passed, failed_step, error = _unrecorded(config, exc, passed, failed_step, error)
        composed = outcome(passed, failed_step, error)
        evidence = _rewrite_evidence(config, composed)  # the evidence may be written and the metrics not
    if log_fd is not None:
        try:
            _append_line(log_fd, str(config.log_file), drill.log_line(composed))
        except PgdrillError as exc:
            passed, failed_step, error = _unrecorded(config, exc, passed, failed_step, error)
            composed = outcome(passed, failed_step, error)
            evidence = _rewrite_evidence(config, composed)
    line = drill.log_line(composed)
    exit_code = EXIT_OK if passed else EXIT_FAILED
    if config.ping_url:
        summary = {"database": config.database, "set": record.get("set"), "outcome": composed["outcome"], "drill": True}
        if not passed:
            summary.update(failed_step=failed_step, error=error)
        ping.send(config.ping_url, "success" if passed else "fail", summary, exit_code, config.ping_exit_codes)
    return {"record": composed, "log_line": line, "evidence": evidence, "exit_code": exit_code}


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
        base = f"{config.scratch_prefix}{re.sub(r'[^A-Za-z0-9_]', '_', config.database)[:30]}_"
        for name in scratch.leftovers(admin, base, LEFTOVER_GRACE):
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
