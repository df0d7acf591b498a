# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The operations the host command, the Ansible modules and the Django command share, written once: a
backup run with its heartbeat, lock-then-prune, lock-select-verify, lock-then-pull, pins, the
listing with the off-host state, restores of a set and of its media, and the same on the off-host
copy; each real run of a command that changes the series then rewrites its metrics. The front ends
parse their arguments, call these, and present the outcome."""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from typing import Any, Callable, Dict, List, Optional

from . import metrics, offsite, offsite_sets, pgbackrest, ping, pitr, sets as sets_model
from .backup import BackupRun
from .catalog import find_set, select_for_verify
from .config import Connection, DatabaseConfig
from .drill_config import DrillConfig, series_config
from .drill_steps import DrillRun, drill_set, drop_scratch, keep_copy, post_restore_steps, prepare, smoke_results
from .errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, LockBusy, PgdrillError
from .fsio import ensure_private_dir
from .offsite.early import for_backup as early_upload
from .locking import SeriesLock
from .recovery import RestoreOptions, restore_set
from .storage import DELETED, LOCKED
from .archives import extract_media
from .physical_steps import drill_physical
from .pitr_drill import PhysicalDrill
from .scheduled import run_drill
from .series import Series, future_sets_problem, recent_set, utcnow
from .verify import verify_set


log = logging.getLogger("pgdrill")


def observe(config: DatabaseConfig, command: str, started: float, exit_code: int, summary: Dict[str, Any], remote: Optional[Dict[str, Any]] = None) -> None:
    """Tell the world how a run ended, without ever changing how it ended: the heartbeat ping (for
    backups) and the series' metrics file (for every command). Problems are logged, not raised."""
    if command == "backup" and config.ping_url:
        ping.send(config.ping_url, "success" if exit_code == EXIT_OK else "fail", summary, exit_code, config.ping_exit_codes)
    if config.metrics_dir:
        try:
            state: Dict[str, Any] = (
                dict(command="backup", started=started, exit_code=exit_code, duration=round(time.time() - started, 3)) if command == "backup" else {}
            )
            metrics.update(config.metrics_dir, config.prefix, Series(config).describe(), remote=remote, **state)
        except PgdrillError as exc:
            log.error("%s: %s", config.label, exc.message)


def backup(config: DatabaseConfig, plan, wait: Optional[float] = None) -> Dict[str, Any]:
    """One backup run (``plan`` from backup.plan_backup), pinged at its start and end, its outcome
    in the metrics."""
    started = time.time()
    if config.ping_url:
        ping.send(config.ping_url, "start", {"database": config.label})
    pushed: Dict[str, Any] = {}
    early = early_upload(config)  # the db file's upload beside the dump (S3)

    def upload(result: Dict[str, Any]) -> None:
        if config.remote and config.remote_upload:
            pushed.update(offsite.push(config, owed=True, remote=early.remote if early else None))

    try:
        result = BackupRun(config, plan=plan, early=early).execute(wait=wait, after=upload)
    except BaseException as exc:  # a failure, or SIGTERM (SystemExit) or Ctrl-C mid-run: a failed run on record all the same
        code, error = run_failure(exc)
        observe(config, "backup", started, code, {"database": config.label, "error": error}, remote=_remote_state(config, pushed, failed=True))
        raise
    document = result["manifest"]
    if pushed:
        result["push"] = pushed
    observe(
        config,
        "backup",
        started,
        EXIT_OK,
        {"database": config.label, "set": document["set"], "duration_seconds": document["duration_seconds"]},
        remote=_remote_state(config, pushed, failed=False),
    )
    return result


def run_failure(exc: BaseException) -> "tuple[int, str]":
    """The exit code and the words a failed run is recorded with: a PgdrillError's own, a run stopped
    by a signal (SIGTERM unwinds as SystemExit(128 + 15), Ctrl-C as KeyboardInterrupt) by its
    signal, never 0. Pure."""
    if isinstance(exc, PgdrillError):
        return (EXIT_LOCKED if isinstance(exc, LockBusy) else EXIT_FAILED), exc.message
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted (SIGINT) before the run finished"
    if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code > 128:
        return exc.code, f"stopped by signal {exc.code - 128} before the run finished"
    return EXIT_FAILED, f"the run ended early: {type(exc).__name__}: {exc}"


def _remote_state(config: DatabaseConfig, pushed: Dict[str, Any], failed: bool) -> Optional[Dict[str, Any]]:
    """What the metrics record of a push (None when the series has no remote to push to)."""
    if not (config.remote and config.remote_upload):
        return None
    return {"target": config.remote, "uploaded_sets": pushed.get("uploaded_sets") or [], "succeeded": None if failed or not pushed else time.time()}


def push(config: DatabaseConfig, wanted: Optional[str] = None, every: bool = False, dry_run: bool = False, wait: Optional[float] = None) -> Dict[str, Any]:
    """Push sets to the off-host copy under the series lock (a dry run only reads)."""
    series = Series(config)
    started = time.time()
    if dry_run:
        return offsite.push(config, wanted, every, dry_run=True)
    pushed: Dict[str, Any] = {}
    try:
        with series.lock(wait):
            pushed = offsite.push(config, wanted, every)
        return pushed
    finally:
        observe(
            config,
            "push",
            started,
            EXIT_OK,
            {},
            remote={"target": config.remote, "uploaded_sets": pushed.get("uploaded_sets") or [], "succeeded": time.time() if pushed else None},
        )


def prune(config: DatabaseConfig, dry_run: bool = False, wait: Optional[float] = None, on_remote: bool = False) -> Dict[str, Any]:
    """Apply retention under the series lock; a dry run only reads (no lock file, no directory).
    ``on_remote``: to the off-host copy instead, with its own rules."""
    if on_remote:
        return offsite.prune_remote(config, dry_run=dry_run)
    series = Series(config)
    if dry_run:
        return series.prune(dry_run=True)
    try:
        with series.lock(wait):
            return series.prune()
    finally:
        observe(config, "prune", time.time(), EXIT_OK, {})


def pin(config: DatabaseConfig, wanted: str, reason: Optional[str], unpin: bool = False, dry_run: bool = False, wait: Optional[float] = None) -> Dict[str, Any]:
    """Pin a set out of retention (or, ``unpin``, remove its pin) under the series lock, so that no
    prune decides while the pin comes or goes; a dry run only reads."""
    check_set_directory(wanted, config.backup_dir)
    series = Series(config)
    with nullcontext() if dry_run else series.lock(wait):
        if config.remote and not _held_here(series, wanted):
            # A set only the off-host copy holds (pruned here, or pushed from a lost host) is pinned there.
            outcome = offsite.pin_remote_only(config, wanted, reason, unpin=unpin, dry_run=dry_run)
        else:
            outcome = series.unpin(wanted, dry_run=dry_run) if unpin else series.pin(wanted, reason or "", dry_run=dry_run)
            if config.remote and not dry_run and (outcome.get("changed") or unpin):
                outcome["remote"] = _pin_on_remote(config, outcome["set"], unpin)
                outcome["changed"] = outcome["changed"] or outcome["remote"] == f"remote pin {DELETED}"
        if unpin and outcome.get("remote") == f"remote pin {LOCKED}":
            raise PgdrillError(
                f"{outcome['set']}: the pin on {config.remote} stays: Object Lock protects it until its retain-until date, "
                "and remote retention keeps the set until it is gone" + (" (the pin on this host is removed)" if outcome["pin"] else ""),
                f"run 'pgdrill-backup unpin {outcome['set']}' again after that date, or lift the object's retention with the storage's own tools",
            )
        return outcome


def _held_here(series: Series, wanted: str) -> bool:
    try:
        find_set(series.sets(), wanted)
    except PgdrillError:
        return False
    return True


def _pin_on_remote(config: DatabaseConfig, set_id: str, unpin: bool) -> str:
    """Carry a pin (or its removal) to the off-host copy at once; a failure is reported, not
    raised: the local pin stands, and the next backup run pushes a pin the remote lacks. An unpin
    whose remote pin Object Lock keeps is the caller's failure to raise."""
    try:
        if unpin:
            return f"remote pin {offsite.unpin_remote(config, set_id)}"
        pushed = offsite.push(config, set_id)
        return "pin uploaded" if any(entry["uploaded"] for entry in pushed["sets"]) else "already on the remote"
    except PgdrillError as exc:
        log.warning("%s: the off-host copy was not updated: %s", config.label, exc.message)
        return f"not updated: {exc.message}"


def check_set_directory(wanted: Optional[str], backup_dir: str) -> None:
    """A set named by path must live in the series' directory: never verify a same-named set
    elsewhere instead of the one the user pointed at."""
    if not wanted or os.sep not in wanted:
        return
    given = os.path.realpath(os.path.dirname(os.path.abspath(wanted)))
    if given != os.path.realpath(backup_dir):
        raise PgdrillError(
            f"{wanted} is not in this series' backup directory {backup_dir}",
            f"pass --out-dir {os.path.dirname(os.path.abspath(wanted))} to work on the sets there, or name the set without a directory",
        )


def _read_only(directory: str) -> bool:
    return os.path.isdir(directory) and not os.access(directory, os.W_OK)


def verify(
    config: DatabaseConfig,
    wanted: Optional[str] = None,
    every: bool = False,
    restore: bool = False,
    jobs: Optional[int] = None,
    record: bool = True,
    wait: Optional[float] = None,
    on_result: Optional[Callable[[Dict[str, Any]], None]] = None,
    on_remote: bool = False,
) -> List[Dict[str, Any]]:
    """Verify the chosen sets under the series lock; one result per set, each also handed to
    ``on_result`` as soon as it is known (``verify --all`` prints as it goes). A dry run (``record``
    false) on a directory this user cannot write (a read-only mount, a copy) reads without a lock.
    ``on_remote``: the off-host copy's sets instead, downloaded and hashed (nothing is stored)."""
    if on_remote:
        return offsite.verify_remote(config, wanted, every=every, restore=restore, jobs=jobs, on_result=on_result)
    check_set_directory(wanted, config.backup_dir)
    series = Series(config)
    with nullcontext() if not record and _read_only(config.backup_dir) else series.lock(wait):
        chosen = select_for_verify(series.sets(), wanted, every)
        if not chosen:
            raise PgdrillError(f"there is no complete backup set in {config.backup_dir}", "take a backup first: pgdrill-backup")
        results = []
        try:
            for chosen_set in chosen:
                results.append(verify_set(config, chosen_set, restore=restore, jobs=jobs, record=record))
                if on_result is not None:
                    on_result(results[-1])
        finally:
            if record:
                observe(config, "verify", time.time(), EXIT_OK, {})
        return results


def pull(
    config: DatabaseConfig, wanted: Optional[str], directory: str, dry_run: bool = False, accept_foreign: bool = False, wait: Optional[float] = None
) -> Dict[str, Any]:
    """Download a set from the off-host copy into ``directory`` (made 0700) under the lock of the
    series there, waiting ``wait`` seconds (default: the config's lock_wait); a dry run only reads."""
    if dry_run:
        return offsite.pull(config, wanted, directory, dry_run=True, accept_foreign=accept_foreign)
    ensure_private_dir(directory)
    with SeriesLock(directory, config.prefix, config.lock_wait if wait is None else wait):
        return offsite.pull(config, wanted, directory, accept_foreign=accept_foreign)


def describe(config: DatabaseConfig, remote_sets: bool = False) -> Dict[str, Any]:
    """The series' sets, newest first. With an off-host copy, each set's state there from one
    listing ("unknown", and ``remote_problem`` saying why, when it cannot be read: a listing never
    fails for it); ``remote_sets`` adds the off-host copy's own sets from the same listing."""
    rows = Series(config).describe()
    out: Dict[str, Any] = {"sets": rows, "remote_problem": None, "remote_sets": None}
    if not config.remote:
        return out
    states: Dict[str, str] = {}
    try:
        remote = offsite.open_for(config)
        objects = offsite.objects_by_name(remote)
        states = offsite_sets.remote_states(Series(config).sets(), objects, config.prefix)
        if remote_sets:
            out["remote_sets"] = _remote_rows(remote, config.prefix, objects)
    except PgdrillError as exc:
        out["remote_problem"] = exc.message
    for row in rows:
        row["remote"] = states.get(row["set"], "unknown")
    return out


def describe_remote(config: DatabaseConfig) -> Dict[str, Any]:
    """The sets on the off-host copy, newest first, each with its manifest read and checked against the listing."""
    remote = offsite.open_for(config)
    return {"remote": remote.text, "sets": _remote_rows(remote, config.prefix)}


def _remote_rows(remote, prefix: str, objects=None) -> List[Dict[str, Any]]:
    now = utcnow()
    return [info.row(now) for info in offsite.catalog(remote, prefix, objects)]


def restore(config: DatabaseConfig, wanted: Optional[str], options: RestoreOptions) -> Dict[str, Any]:
    """Restore a set of the series (the newest complete one by default) as ``options`` say."""
    return restore_set(config, find_set(Series(config).sets(), wanted), options)


def restore_media(config: DatabaseConfig, wanted: Optional[str], destination: str) -> Dict[str, Any]:
    """Restore a set's media root (the newest complete set holding media by default) as
    ``destination``, a new or empty directory."""
    sets = Series(config).sets()
    if wanted:
        backup = find_set(sets, wanted)
    else:
        newest = sets_model.newest(sets, utcnow(), usable=lambda item: item.complete and item.file_of_kind("media") is not None)
        if newest is None:
            raise PgdrillError(f"no complete set in {config.backup_dir} holds media", "take one with --media, or pull one: pgdrill-backup pull")
        backup = newest
    entry = backup.file_of_kind("media")
    if not backup.complete or entry is None:
        raise PgdrillError(f"backup set {backup.id} is not complete or holds no media", "choose another set: pgdrill-backup list")
    return {"set": backup.id, **extract_media(backup.path(entry["name"]), destination, config.encrypt_identity_file)}


def recent_backup(config: DatabaseConfig, max_age: int) -> "tuple[Optional[Dict[str, Any]], Optional[str]]":
    """(the newest complete set when it is younger than ``max_age`` seconds, else None; with a
    ``max_age``, the clock problem of sets dated in the future, which never count as recent)."""
    recent = recent_set(Series(config), max_age)
    return recent, future_sets_problem(Series(config).describe()) if max_age > 0 else None


def scheduled_drill(config: DrillConfig, physical: Optional[PhysicalDrill] = None) -> Dict[str, Any]:
    """``pgdrill-backup drill``: the newest set of the [drill] section's source (here, over ssh or
    from the off-host copy) through the drill's steps, or with ``physical`` a point-in-time restore
    of its pgBackRest stanza, with its evidence, log line, metrics and ping; the outcome with its
    exit code."""
    return run_drill(config, physical)


def drill_copy(config: DrillConfig, directory: Optional[str], wanted: Optional[str], check: bool = False, physical: Optional[PhysicalDrill] = None) -> DrillRun:
    """The playbook drill on staging: the scheduled drill's steps on a copy of set ``wanted`` that
    is already in ``directory`` (the role brought it there), or with ``physical`` a point-in-time
    restore (a ``set:`` target's set in ``directory``). In check mode only the set is picked and
    verified (a physical drill's target resolved and versions checked). A failure is recorded in the
    run (``run.error``, ``run.failed_step``), never raised."""
    run = DrillRun({})
    if physical is not None:
        drill_physical(config, run, physical, set_dir=directory, check=check)
        run.steps.next("")
        run.record.update(timings=dict(run.steps.timings), passed=run.passed)
        return run
    if directory is None or wanted is None:
        raise PgdrillError("a logical drill needs the set and the directory holding its copy", "pass backup_dir and set")

    def fetch() -> DatabaseConfig:
        return series_config(config, directory)

    if check:
        try:
            post_restore_steps(config)
            prepare(config, run, fetch, wanted, pick_step="verify on arrival")
        except PgdrillError as exc:
            run.fail(exc)
        return run
    drill_set(config, run, fetch, wanted, pick_step="verify on arrival")
    keep_copy(run, directory)
    run.steps.next("")
    run.record["timings"] = dict(run.steps.timings)
    return run


def smoke(connection: Connection, dbname: str, steps: List[Dict[str, Any]], drop: str = "never", maintenance_db: str = "postgres") -> Dict[str, Any]:
    """Post-restore commands and smoke checks against ``dbname`` (the drill's own step, for a
    database a playbook restored), then, as ``drop`` says (never, on_success, always), drop it with
    the roles made for it, only if it is a scratch database pgdrill made."""
    results = smoke_results(connection, dbname, steps, connection.libpq_env()) if steps else []
    ok = all(result["ok"] for result in results)
    dropped: Dict[str, Any] = {"dropped": False, "roles_dropped": [], "roles_kept": []}
    if drop == "always" or (drop == "on_success" and ok):
        dropped = drop_scratch(connection, maintenance_db, dbname)
    return {"ok": ok, "results": results, **dropped}


def pitr_status(stanza: str, pgbackrest_config: str, connection: Optional[Connection] = None) -> Dict[str, Any]:
    """A stanza's state: pgBackRest's info (status, newest full and differential backups, the oldest
    restorable time, every backup) and, with a ``connection`` to its cluster, the server's archiver.
    Archiving that is off or unreadable makes it not ok, its status saying why (the rest stays)."""
    info = pgbackrest.parse_info(
        pgbackrest.run(pgbackrest.argv(pgbackrest_config, stanza, "info", "--output=json", "--log-level-file=off"), what="pgbackrest info"), stanza
    )
    keys = ("stanza", "ok", "status", "newest_full", "newest_diff", "oldest_restorable_at", "backups")
    status = {**{key: info.get(key) for key in keys}, "archive": None}
    if connection is not None:
        try:
            status["archive"] = pitr.archiver(connection)
        except PgdrillError as exc:
            status.update(ok=False, status=exc.message)
        failing = pitr.archive_failing(status["archive"])
        if failing:
            status.update(ok=False, status=failing)
    return status


def pitr_backup(
    stanza: str,
    pgbackrest_config: str,
    kind: str,
    connection: Optional[Connection] = None,
    metrics_dir: Optional[str] = None,
    ping_url: Optional[str] = None,
    ping_exit_codes: bool = False,
) -> Dict[str, Any]:
    """``pgbackrest backup`` (pgBackRest expires after it), pinged at its start and end like a
    logical backup; then the stanza's status, and both in the stanza's metrics file. A failed
    backup raises its PgdrillError (pgBackRest's error line) after it is recorded."""
    started = time.time()
    if ping_url:
        ping.send(ping_url, "start", {"stanza": stanza, "type": kind})
    failure: Optional[BaseException] = None
    try:
        pgbackrest.run(pgbackrest.argv(pgbackrest_config, stanza, "backup", f"--type={kind}"), what=f"pgbackrest backup --type={kind}")
    except BaseException as exc:  # a failure, or a signal: recorded as a failed run all the same
        failure = exc
    code, error = run_failure(failure) if failure is not None else (EXIT_OK, None)
    run = {"started": started, "exit_code": code, "duration": round(time.time() - started, 3)}
    status: Dict[str, Any] = {}
    try:
        status = pitr_status(stanza, pgbackrest_config, connection)
    except PgdrillError as exc:
        (log.warning if failure is None else log.info)("%s: pgBackRest's info could not be read: %s", stanza, exc.message)
    if metrics_dir:
        try:
            metrics.update_pitr(metrics_dir, stanza, status, run)
        except PgdrillError as exc:
            log.error("%s: %s", stanza, exc.message)
    if ping_url:
        summary = {"stanza": stanza, "type": kind, "duration_seconds": run["duration"], **({"error": error} if error else {})}
        ping.send(ping_url, "success" if code == EXIT_OK else "fail", summary, code, ping_exit_codes)
    if failure is not None:
        raise failure
    return {"stanza": stanza, "type": kind, "duration_seconds": run["duration"], "status": status}


def mark(config: DatabaseConfig, name: Optional[str] = None) -> Dict[str, Any]:
    """``pgdrill-backup mark``: an exact restore point of the database, saved beside its sets."""
    if not config.pitr_stanza:
        raise PgdrillError(f"{config.label} has no pitr_stanza: restore points belong to a cluster archived by pgBackRest", "set pitr_stanza in its section")
    chosen = name or pitr.point_name(config.prefix, utcnow(), milliseconds=True)
    pitr.refuse_saved(config.backup_dir, chosen)  # before the point exists in the WAL
    point = pitr.mark(config.connection, config.dbname, chosen)
    record = {**point, "database": config.dbname, "stanza": config.pitr_stanza}
    return {**record, "path": pitr.save_point(config.backup_dir, record)}
