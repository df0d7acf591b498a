"""A whole restore drill without the controller: what ``pgdrill-backup drill`` runs, from a timer on
staging. The steps are the playbook drill's, the same code (drill_steps.drill_set): pick the newest
complete set, verify it on arrival, restore and prove it in a fresh scratch database, run the
post-restore commands and smoke checks, drop or keep the scratch database. Then this drill removes
or keeps its fetched copy and records the evidence, the drill log line and the metrics
(drill.compose_record, write_evidence, log_line). Pings at start and end, like a backup run.

Where the set comes from is one hook, :func:`fetch_newest_set`.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import shutil
import socket
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import drill, offsite, ping, sets
from .drill_config import DrillConfig, series_config
from .drill_steps import DrillRun, drill_set, keep_copy
from .errors import EXIT_FAILED, EXIT_OK, PgdrillError
from .offsite_sets import remote_sets
from .physical_steps import drill_physical
from .pitr_drill import PhysicalDrill
from .pipeline import child_env, run

log = logging.getLogger("pgdrill")


def fetch_newest_set(config: DrillConfig, work_dir: str) -> str:
    """The directory on this host that holds the newest complete set of ``config.prefix``.

    ``source = local``: ``config.source_dir`` itself (a directory the sets reach by other means: the
    backup host's own directory, a mount, a synced copy). ``source = ssh``: the newest set in
    ``source_dir`` on ``source_ssh``, copied with scp (``-r``: a directory-format dump whole, its members
    checked against the manifest by the drill's verify on arrival) into a directory under ``work_dir`` (the
    playbook drill's direct transfer, without the controller). ``source = remote``: the newest set
    of the off-host copies is to be fetched into ``work_dir`` and that directory returned; this is
    the hook for the off-host copies. A directory under ``work_dir`` is removed after the drill
    (unless ``keep`` keeps the scratch database)."""
    if config.source == "local":
        return str(config.source_dir)
    if config.source == "ssh":
        return _fetch_over_ssh(config, work_dir)
    return _fetch_from_remote(config, work_dir)


def _fetch_from_remote(config: DrillConfig, work_dir: str) -> str:
    """Pull the newest complete set of the off-host copy into ``work_dir/copy-<prefix>``, each file
    checked against the manifest on arrival; encrypted files stay encrypted (the restore decrypts)."""
    directory = os.path.join(work_dir, f"copy-{config.prefix}")
    shutil.rmtree(directory, ignore_errors=True)  # an earlier drill's copy, if it was killed
    offsite.pull(series_config(config, directory), None, directory)
    return directory


def newest_set_files(names: List[str], prefix: str, now: Optional[datetime] = None) -> List[str]:
    """The files of the newest set of ``prefix`` that has a manifest (none dated ahead of ``now``),
    from a directory listing, by the one rule of :func:`sets.newest`; its verification record is
    left behind. Pure."""
    found = sets.newest(reversed(remote_sets(names, prefix)), now or datetime.now(timezone.utc))
    return sorted(entry.name for entry in found.files if entry.kind != "verify") if found else []


def _fetch_over_ssh(config: DrillConfig, work_dir: str) -> str:

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
        ["scp", "-B", "-r", *options, *(f"{config.source_ssh}:{config.source_dir}/{name}" for name in names), copy + ".partial/"],
        env,
        f"copying {len(names)} file(s) of the newest set from {where}",
        fix,
    )
    os.rename(copy + ".partial", copy)
    return copy


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_drill(config: DrillConfig, physical: Optional[PhysicalDrill] = None) -> Dict[str, Any]:
    """Run one drill, logical or (``physical``) point-in-time; never raises for a failed drill (the
    outcome is in the record). Returns {"record", "log_line", "evidence", "exit_code"}."""
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
    if physical is not None:
        drill_physical(config, run, physical, set_dir=config.source_dir if config.source == "local" else None)
    else:
        drill_set(config, run, lambda: series_config(config, fetch_newest_set(config, work_dir)))
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


def _record(config: DrillConfig, run: DrillRun) -> Dict[str, Any]:
    """The evidence, the drill log line, the metrics and the closing ping.

    The outcome is one thing: a drill whose record cannot be written failed, and the evidence, the
    log line, the metrics, the ping and the exit code all say so. The log is opened first and its
    line appended last, so a failure to write anything is known before the line says PASSED."""

    def outcome() -> Dict[str, Any]:
        record = dict(run.record, outcome="passed" if run.passed else "failed", failed_step=run.failed_step, error=run.error)
        if record.get("kind") == "physical":
            record["passed"] = run.passed
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
