# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Disaster recovery to a point, for real: pgBackRest restores a stanza into this host's cluster
data directory (empty or absent; an existing cluster only when the confirmation names its data
directory, its server stopped first), the server starts on it, replays WAL to the target (the latest
archived WAL, a time or a restore point) and is promoted. Archiving stays off in the restored
cluster until the operator turns it back on with the pgdrill_pitr role (playbooks/provision_pitr.yml).
When the cluster has a systemd unit, the promoted server is then stopped cleanly and started by it.

The steps are the physical drill's (physical_steps: the repository and version checks, the restore,
the recovery); only the directory differs: the cluster's own, not a throwaway one."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from dataclasses import replace
from typing import Any, Dict, Optional

from . import db
from .config import Connection
from .errors import PgdrillError
from .physical_steps import check_repository, os_user_for, recover, restore_into
from .pitr_drill import PhysicalDrill, Target, evidence_target, parse_target, recovery_target
from .throwaway import Server, as_user, log_tail

ABSENT, EMPTY, HOLDS_DATA = "absent", "empty", "holds data"
START_LOG = "pgdrill-restore.log"
ARCHIVING_NOTE = (
    "archiving is off in the restored cluster (archive_mode = off in its postgresql.auto.conf): turn it back on with the pgdrill_pitr role"
    " (playbooks/provision_pitr.yml) once this host is the one that writes, then take a full backup"
)


def restore_target(text: Optional[str]) -> Target:
    """A restore for real goes to ``latest``, ``time:ISO8601`` or ``name:POINT``. Pure."""
    target = parse_target(text)
    if target.kind not in ("latest", "time", "name"):
        raise PgdrillError(f"a restore for real goes to latest, time: or name:, not {target.kind}:", "use latest, time:2026-12-04T02:15:00Z or name:POINT")
    return target


def data_dir_state(path: str) -> str:
    """Whether the cluster's data directory is absent, empty, or holds data."""
    if not os.path.lexists(path):
        return ABSENT
    if not os.path.isdir(path):
        raise PgdrillError(f"{path} is not a directory", "name the cluster's data directory (pgdrill_restore_data_dir)")
    return EMPTY if not os.listdir(path) else HOLDS_DATA


def guard(data_dir: str, state: str, confirm: Optional[str]) -> bool:
    """Whether the restore replaces the cluster in ``data_dir``: only when it holds data and
    ``confirm`` names it; a confirmation naming another directory is refused. Pure."""
    if not os.path.isabs(data_dir):
        raise PgdrillError(f"the data directory {data_dir!r} is not an absolute path", "name it in full, e.g. /var/lib/postgresql/15/main")
    if confirm and os.path.normpath(confirm) != os.path.normpath(data_dir):
        raise PgdrillError(
            f"the confirmation {confirm!r} does not name the data directory {data_dir}", f"set the confirmation to {data_dir}, or leave it unset"
        )
    if state != HOLDS_DATA:
        return False
    if not confirm:
        raise PgdrillError(
            f"{data_dir} holds a cluster's data: restoring there would overwrite it",
            f"restore into an empty or absent data directory, or confirm with {data_dir} (pgdrill_restore_confirm) to replace it; its server is stopped first",
        )
    return True


def unit_to_use(service: Optional[str], optional: bool, load_state: Optional[str]) -> Optional[str]:
    """The systemd unit the restored server is handed to: ``service`` when systemd has it loaded; none
    when no unit is named, or when an optional one (a default) is not on this host (``load_state``
    None: systemd does not run here). A named unit this host lacks is refused before anything changes. Pure."""
    if not service:
        return None
    if load_state == "loaded":
        return service
    if optional:
        return None
    raise PgdrillError(
        f"the systemd unit {service} is not on this host ({load_state or 'systemd does not run here'})",
        "name the unit that runs this cluster (pgdrill_restore_service, e.g. postgresql@15-main), or set it to '' to leave the restored server under pg_ctl",
    )


def _unit_load_state(service: str) -> Optional[str]:
    """systemd's LoadState of ``service`` (loaded, not-found, ...), None where systemd does not run."""
    try:
        done = subprocess.run(["systemctl", "show", "-p", "LoadState", "--value", service], capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _hand_to_unit(server: Server, unit: str, timeout: float = 120.0) -> None:
    """Stop the server pg_ctl started (a fast, clean shutdown) and start ``unit``; it must come up
    active, running this data directory, out of recovery."""
    _stop_server(server.bin_dir, server.data, server.os_user)
    started = subprocess.run(["systemctl", "start", unit], capture_output=True, text=True)
    state = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True).stdout.strip()
    fix = f"read systemctl status {unit} and journalctl -u {unit}; the restored cluster is in {server.data} (stopped)"
    if started.returncode != 0 or state != "active":
        raise PgdrillError(f"the restored cluster did not come up under {unit} ({state}): {started.stderr.strip()[-300:]}", fix)
    deadline, seen = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            conn = db.connect(server.connection, "template1", autocommit=True)
            try:
                data_directory, in_recovery = conn.execute("SELECT current_setting('data_directory'), pg_is_in_recovery()").fetchone()
            finally:
                conn.close()
        except PgdrillError as exc:
            seen = exc.problem
        else:
            if os.path.realpath(data_directory) != os.path.realpath(server.data) or in_recovery:
                raise PgdrillError(f"{unit} runs {data_directory} (in recovery: {in_recovery}), not the restored {server.data}", fix)
            return
        time.sleep(0.5)
    raise PgdrillError(f"{unit} is active but its server does not answer within {timeout:g} s: {seen}", fix)


def _check_parent(path: str) -> None:
    parent = os.path.dirname(path.rstrip("/"))
    if not os.path.isdir(parent):
        raise PgdrillError(f"the data directory's parent {parent} does not exist", "install the PostgreSQL server package, or create the parent directory")


def _make_data_dir(path: str, user: Optional[str]) -> None:
    os.mkdir(path, 0o700)
    if user:
        info = pwd.getpwnam(user)
        os.chown(path, info.pw_uid, info.pw_gid)


def _stop_server(bin_dir: str, data_dir: str, user: Optional[str]) -> bool:
    """Stop the server running on ``data_dir`` (fast shutdown); whether one was running."""
    if not os.path.exists(os.path.join(data_dir, "postmaster.pid")):
        return False
    done = subprocess.run(
        as_user(user, [os.path.join(bin_dir, "pg_ctl"), "-D", data_dir, "-m", "fast", "-w", "-t", "120", "stop"]), capture_output=True, text=True
    )
    if done.returncode != 0 and os.path.exists(os.path.join(data_dir, "postmaster.pid")):
        raise PgdrillError(
            f"the server on {data_dir} did not stop: {(done.stderr or done.stdout).strip()[-300:]}",
            "stop it yourself (systemctl stop postgresql@VERSION-CLUSTER) and run the restore again",
        )
    return True


def pitr_restore(
    stanza: str,
    pgbackrest_config: str,
    data_dir: str,
    target: Optional[str] = "latest",
    confirm: Optional[str] = None,
    connection: Optional[Connection] = None,
    pg_bin_dir: Optional[str] = None,
    config_dir: Optional[str] = None,
    recovery_timeout: float = 3600.0,
    service: Optional[str] = None,
    service_optional: bool = False,
    check: bool = False,
) -> Dict[str, Any]:
    """Restore ``stanza`` into ``data_dir`` to ``target`` and promote it (see the module's docstring).
    In check mode only the request, the directory and the repository are checked: nothing changes."""
    wanted = restore_target(target)
    recovery = recovery_target(wanted, wanted.value if wanted.kind == "name" else None)
    state = data_dir_state(data_dir)
    replacing = guard(data_dir, state, confirm)
    if state == ABSENT:
        _check_parent(data_dir)
    physical = PhysicalDrill(target=target or "latest", stanza=stanza, pgbackrest_config=pgbackrest_config, recovery_timeout=recovery_timeout)
    user = os_user_for(pgbackrest_config)
    result: Dict[str, Any] = {
        "stanza": stanza,
        "data_dir": data_dir,
        "data_dir_was": state,
        "replaced": replacing,
        "target": evidence_target(wanted, None),
    }
    unit = unit_to_use(service, service_optional, _unit_load_state(service) if service else None)
    result["service"] = unit
    summary, bin_dir, _ = check_repository(physical, user, pg_bin_dir, result)
    if check:
        newest = summary["backups"][-1]["label"] if summary["backups"] else None
        stop = "stop the server on it, " if replacing else ""
        then = f", then stop that server and start {unit}" if unit else ""
        result["msg"] = (
            f"would {stop}restore stanza {stanza} (from backup {newest} or the one the target needs) into {data_dir} and recover to {physical.target}{then}"
        )
        return result
    timings: Dict[str, float] = {}
    started = time.monotonic()
    result["server_stopped"] = _stop_server(bin_dir, data_dir, user) if replacing else False
    if state == ABSENT:
        _make_data_dir(data_dir, user)
    label = restore_into(physical, user, data_dir, recovery, None, delta=replacing)
    timings["restore"] = round(time.monotonic() - started, 3)
    conn = connection or Connection()
    server = Server(bin_dir, data_dir, user, os.path.join(data_dir, START_LOG), replace(conn, user=conn.user or "postgres"), config_dir)
    try:
        recover(server, summary, label, recovery_timeout, result, latest=wanted.kind == "latest")
    except PgdrillError as exc:
        raise PgdrillError(exc.problem, f"{exc.fix}; the restored files stay in {data_dir} (its start log: {server.log_file})") from None
    timings["recovery"] = round(time.monotonic() - started - timings["restore"], 3)
    result.update(timings=timings, archiving="off", note=ARCHIVING_NOTE, start_log=server.log_file)
    if not result["reached"]["lsn"]:
        raise PgdrillError(f"the restored server on {data_dir} reports no replayed LSN: {log_tail(server.log_file)}", "read the server log")
    if unit:
        _hand_to_unit(server, unit)
    return result
