# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The physical drill's throwaway server: a new private directory (0700) holding a data directory
pgBackRest restores into and a unix socket directory only this server listens on, the server started
with pg_ctl on its own settings (pitr_drill.server_settings), waited for until recovery has reached
its target and promoted, then stopped and removed. Run as ``os_user`` (through runuser) when pgdrill
runs as root: PostgreSQL never runs as root."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import logging
import time
from typing import Any, Dict, List, Optional

from . import db
from .config import Connection
from .errors import PgdrillError
from .pitr_drill import HBA, server_settings

log = logging.getLogger("pgdrill")

# A drill's directory older than this, not kept, is one a killed drill left behind.
LEFTOVER_GRACE_SECONDS = 24 * 3600
KEPT_MARK = "KEPT"
# Written into each drill's directory when it is made: only directories carrying it are ever swept.
OWNED_MARK = "PGDRILL_PHYSICAL_DRILL"
DIRECTORY_PREFIX = "pitr-drill-"
# A unix socket's path holds at most 107 bytes; beyond this the socket directory goes under /tmp.
SOCKET_DIR_LIMIT = 80
REACHED_SQL = """
SELECT pg_last_wal_replay_lsn()::text,
       to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')
"""


def free_port() -> int:
    """A TCP port no one listens on at 127.0.0.1 now (the server listens on its socket only, but its
    port names that socket and stays clear of any other server's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_user(os_user: Optional[str], argv: List[str]) -> List[str]:
    return ["runuser", "-u", os_user, "--", *argv] if os_user else argv


def _ours(path: str, owners: "set[int]") -> bool:
    """A real directory (never a symlink) owned by the drill's own user, holding the mark a drill
    writes when it creates one: nothing planted under a shared parent is ever stopped or removed."""
    try:
        info = os.lstat(path)
        mark = os.lstat(os.path.join(path, OWNED_MARK))
        data = os.lstat(os.path.join(path, "data"))
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid in owners and stat.S_ISREG(mark.st_mode) and mark.st_uid in owners and stat.S_ISDIR(data.st_mode)


def sweep_leftovers(parent: str, bin_dir: str, os_user: Optional[str], now: Optional[float] = None) -> List[str]:
    """The directories of physical drills killed before their cleanup (older than a day, not kept,
    made by a drill of this user): their servers stopped, the directories removed. Returns what was removed."""
    removed = []
    moment = time.time() if now is None else now
    owners = {os.geteuid()} | ({pwd.getpwnam(os_user).pw_uid} if os_user else set())
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    for name in names:
        path = os.path.join(parent, name)
        if not name.startswith(DIRECTORY_PREFIX) or not _ours(path, owners) or os.path.lexists(os.path.join(path, KEPT_MARK)):
            continue
        if moment - os.lstat(path).st_mtime < LEFTOVER_GRACE_SECONDS:
            continue
        data = os.path.join(path, "data")
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run(as_user(os_user, [os.path.join(bin_dir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]), capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def still_starting(problem: str) -> bool:
    """Whether a failed connection is a server that is not up yet (no socket, or starting up, in
    recovery before it accepts connections): wait for it. Anything else, a refused login or a
    missing role, will not change by waiting. Pure."""
    return problem.startswith(("cannot reach the PostgreSQL server", "cannot connect to"))


def log_tail(path: str, lines: int = 8) -> str:
    """The last lines of the server log, one line, for an error message."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()[-8000:]
    except OSError:
        return "(no server log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(the server log is empty)"


class Server:
    """A PostgreSQL server on a data directory pgBackRest restored: started with pg_ctl as ``os_user``,
    watched until recovery has reached its target and it is promoted, asked what it reached, stopped.
    ``config_dir`` is where its postgresql.conf lives (the data directory unless the cluster keeps
    its configuration elsewhere, as Debian's /etc/postgresql do); ``connection`` reaches it."""

    def __init__(self, bin_dir: str, data: str, os_user: Optional[str], log_file: str, connection: Connection, config_dir: Optional[str] = None) -> None:
        self.bin_dir, self.data, self.os_user, self.log_file = bin_dir, data, os_user, log_file
        self.connection = connection
        self.config_dir = config_dir or data
        self.started = False

    def _as_owner(self, argv: List[str]) -> List[str]:
        return as_user(self.os_user, argv)

    def start(self) -> None:
        """Start the server without waiting: recovery may take long, and :meth:`wait_promoted` watches it."""
        pg_ctl = os.path.join(self.bin_dir, "pg_ctl")
        done = subprocess.run(self._as_owner([pg_ctl, "-D", self.config_dir, "-l", self.log_file, "-W", "start"]), capture_output=True, text=True)
        self.started = True
        if done.returncode != 0:
            raise PgdrillError(
                f"the restored server on {self.data} did not start (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-300:]}; its log: {log_tail(self.log_file)}",
                f"read the server log {self.log_file}; this host needs the source's extensions and settings to start its cluster",
            )

    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def wait_promoted(self, timeout: float) -> None:
        """Until recovery has reached its target and the server is promoted; a server that stops, or
        a timeout, is an error quoting the server log's last lines."""
        deadline = time.monotonic() + timeout
        settle = time.monotonic() + 5
        while True:
            if not self.running() and time.monotonic() > settle:
                raise PgdrillError(
                    f"the restored server on {self.data} stopped before recovery reached its target: {log_tail(self.log_file)}",
                    "read the server log: a target past the archived WAL, a restore point not archived yet (pg_switch_wal on the source), or a missing WAL file",
                )
            if self._promoted():
                return
            if time.monotonic() > deadline:
                raise PgdrillError(
                    f"recovery did not reach its target within {timeout:g} s: {log_tail(self.log_file)}",
                    "raise the recovery timeout, or read the server log for what recovery waits for",
                )
            time.sleep(0.2)

    def _promoted(self) -> bool:
        try:
            conn = db.connect(self.connection, "template1", autocommit=True)
        except PgdrillError as exc:
            if not still_starting(exc.problem):
                raise PgdrillError(
                    f"the restored server on {self.data} refused the login that watches its recovery ({self.connection.user or 'libpq default user'}): {exc.problem}",
                    f"{exc.fix}; or let {self.connection.user or 'the login'} in over the unix socket (pg_hba.conf, or a pg_ident.conf map for this OS user)",
                ) from None
            return False
        try:
            return conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()[0] is True
        finally:
            conn.close()

    def reached(self) -> Dict[str, Any]:
        """The LSN of the last WAL record replayed, and the time of the last transaction replayed."""
        conn = db.connect(self.connection, "template1", autocommit=True)
        try:
            lsn, commit_time, segment = conn.execute(REACHED_SQL).fetchone()
        finally:
            conn.close()
        return {"lsn": lsn, "commit_time": commit_time, "wal_segment_size": segment}

    def stop(self) -> None:
        if self.started and self.running():
            subprocess.run(self._as_owner([os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"]), capture_output=True)
            if self.running():
                subprocess.run(self._as_owner([os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"]), capture_output=True)


class Throwaway(Server):
    """One throwaway server's directories, its process and how to reach it."""

    def __init__(self, bin_dir: str, work_dir: Optional[str], os_user: Optional[str], superuser: str) -> None:
        self.os_user = os_user
        if work_dir and not os.path.isdir(work_dir):
            os.makedirs(work_dir, mode=0o700)
            self._own(work_dir)
        for path in sweep_leftovers(work_dir or tempfile.gettempdir(), bin_dir, os_user):
            log.info("removed %s, left by a physical drill that was killed", path)
        self.base = tempfile.mkdtemp(prefix=DIRECTORY_PREFIX, dir=work_dir or None)  # new, 0700
        self.socket_base = self.base if len(self.base) < SOCKET_DIR_LIMIT else tempfile.mkdtemp(prefix="pgdrill-sock-")
        self.socket_dir = os.path.join(self.socket_base, "socket")
        self.port = free_port()
        connection = Connection(host=self.socket_dir, port=self.port, user=superuser)
        super().__init__(bin_dir, os.path.join(self.base, "data"), os_user, os.path.join(self.base, "server.log"), connection)
        os.mkdir(self.data, 0o700)
        with open(os.open(os.path.join(self.base, OWNED_MARK), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            handle.write("a pgdrill physical drill's throwaway server; removed by the drill, or by a later one when left over a day\n")
        os.mkdir(self.socket_dir, 0o700)
        # Where pgBackRest puts the restored tablespaces: inside this directory, removed with it.
        self.tablespaces = os.path.join(self.base, "tablespaces")
        os.mkdir(self.tablespaces, 0o700)
        for path in dict.fromkeys((self.base, self.data, self.tablespaces, self.socket_base, self.socket_dir)):
            self._own(path)
        if self.os_user and subprocess.run(self._as_owner(["test", "-w", self.data]), capture_output=True).returncode != 0:
            self.remove()
            raise PgdrillError(
                f"the drill's data directory {self.data} cannot be reached by {self.os_user}, who runs pgBackRest and the server",
                f"set work_dir to a directory {self.os_user} can reach (every parent must let it through), or leave work_dir unset",
            )

    def _own(self, path: str) -> None:
        if self.os_user:
            user = pwd.getpwnam(self.os_user)
            os.chown(path, user.pw_uid, user.pw_gid)

    def _write(self, name: str, text: str, append: bool = False) -> None:
        path = os.path.join(self.data, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o600), "w", encoding="utf-8") as handle:
            handle.write(text)
        self._own(path)

    def configure(self) -> None:
        """After the restore: this server's own settings after pgBackRest's, its own pg_hba, and the
        configuration files a cluster whose files live elsewhere (/etc) did not bring."""
        for name in ("postgresql.conf", "pg_ident.conf"):
            if not os.path.exists(os.path.join(self.data, name)):
                self._write(name, "")
        self._write("pg_hba.conf", HBA)
        self._write("postgresql.auto.conf", server_settings(self.data, self.port, self.socket_dir), append=True)

    def keep(self) -> None:
        """Stop the server and mark its directory kept: no later drill removes it."""
        self.stop()
        with open(os.path.join(self.base, KEPT_MARK), "w", encoding="utf-8") as handle:
            handle.write("kept by a physical drill (keep); remove this directory when done\n")

    def remove(self) -> None:
        """Stop the server and remove its directories."""
        self.stop()
        for path in dict.fromkeys((self.base, self.socket_base)):
            shutil.rmtree(path, ignore_errors=True)
