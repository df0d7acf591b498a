"""pgBackRest in the lab: a throwaway cluster archiving its WAL into the lab's HTTPS S3 server,
encrypted, and restores of it into new data directories served by throwaway servers.

Everything runs as the cluster's OS user (the server runs archive_command as that user). The
configuration file, with the S3 secret and the repository passphrase, is 0600 and that user's."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import time
from typing import Any, Dict, Optional

from pgdrill import pgbackrest

from .cluster import Cluster
from .processes import free_ports
from .s3server import REGION, S3Server


def wait_archived(cluster: Cluster, wal_file: str, timeout: float = 60.0) -> None:
    """Until the server has archived ``wal_file`` (pg_stat_archiver; names sort in WAL order)."""
    deadline = time.monotonic() + timeout
    while True:
        last = cluster.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        if last >= wal_file:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{wal_file} was not archived within {timeout:g} s (last archived: {last or 'none'})")
        time.sleep(0.2)


class PgBackRestRepo:
    def __init__(self, cluster: Cluster, s3: S3Server, bucket: str, stanza: str = "main", path: str = "/hosts/lab") -> None:
        if not shutil.which("pgbackrest"):
            raise RuntimeError("pgBackRest is not installed: apt-get install pgbackrest (./run setup does)")
        self.cluster = cluster
        self.s3 = s3
        self.bucket = bucket
        self.stanza = stanza
        self.path = path
        self.base = os.path.join(cluster.base, "pgbackrest")
        self.config_file = os.path.join(self.base, "pgbackrest.conf")
        self.passphrase = secrets.token_urlsafe(32)

    def _own(self, path: str) -> None:
        if self.cluster.os_user:
            info = pwd.getpwnam(self.cluster.os_user)
            os.chown(path, info.pw_uid, info.pw_gid)

    def write_config(self) -> None:
        for sub in ("", "log", "lock", "spool"):
            os.makedirs(os.path.join(self.base, sub), mode=0o700, exist_ok=True)
            self._own(os.path.join(self.base, sub))
        text = pgbackrest.render_conf(
            {
                "repo1-type": "s3",
                "repo1-s3-endpoint": "127.0.0.1",
                "repo1-storage-port": self.s3.https_port,
                "repo1-s3-bucket": self.bucket,
                "repo1-s3-uri-style": "path",
                "repo1-s3-region": REGION,
                "repo1-s3-key": self.s3.access_key,
                "repo1-s3-key-secret": self.s3.secret_key,
                "repo1-storage-ca-file": self.s3.ca_file,
                "repo1-path": self.path,
                "repo1-cipher-type": "aes-256-cbc",
                "repo1-cipher-pass": self.passphrase,
                "repo1-retention-full": 2,
                "log-path": os.path.join(self.base, "log"),
                "lock-path": os.path.join(self.base, "lock"),
                "spool-path": os.path.join(self.base, "spool"),
                "log-level-console": "warn",
                "io-timeout": 10,
            },
            self.stanza,
            {"pg1-path": self.cluster.data, "pg1-socket-path": self.cluster.socket_dir, "pg1-port": self.cluster.port, "pg1-user": "postgres"},
        )
        with open(os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
            handle.write(text)
        self._own(self.config_file)

    def run(self, command: str, *options: str) -> str:
        env = dict(os.environ, PGPASSWORD=self.cluster.password)
        return pgbackrest.run(
            pgbackrest.argv(self.config_file, self.stanza, command, *options), env=env, user=self.cluster.os_user, what=f"pgbackrest {command}"
        )

    def setup(self) -> "PgBackRestRepo":
        """Configure archiving (a restart), create the stanza, and check that archiving works."""
        self.s3.create_bucket(self.bucket)
        self.write_config()
        command = " ".join(pgbackrest.argv(self.config_file, self.stanza, "archive-push")) + " %p"
        self.cluster.psql("ALTER SYSTEM SET wal_level = replica")
        self.cluster.psql("ALTER SYSTEM SET archive_mode = on")
        self.cluster.psql(f"ALTER SYSTEM SET archive_command = '{command}'")
        self.cluster.restart()
        self.run("stanza-create")
        self.run("check")
        return self

    def backup(self, kind: str = "full") -> None:
        self.run("backup", f"--type={kind}")

    def info(self) -> Dict[str, Any]:
        return pgbackrest.parse_info(self.run("info", "--output=json"), self.stanza)

    def wait_archived(self, wal_file: str, timeout: float = 60.0) -> None:
        wait_archived(self.cluster, wal_file, timeout)

    def restore(self, name: str, target_type: str = "default", target: Optional[str] = None, timings: Optional[Dict[str, float]] = None) -> Cluster:
        """Restore into a new data directory, start a throwaway server on it, and wait until it has
        replayed to the target and been promoted. The caller destroys it. ``timings`` gets the
        seconds of the restore and of the recovery (start, replay, promotion)."""
        restored = Cluster(bindir=self.cluster.bindir, port=free_ports(1)[0], name=name)
        restored.password = self.cluster.password
        os.mkdir(restored.data, 0o700)
        self._own(restored.data)
        self._own(restored.base)
        self._own(restored.socket_dir)
        env = dict(os.environ, PGPASSWORD=self.cluster.password)
        started = time.monotonic()
        pgbackrest.run(
            pgbackrest.restore_argv(self.config_file, self.stanza, restored.data, target_type, target),
            env=env,
            user=self.cluster.os_user,
            what="pgbackrest restore",
        )
        restored_at = time.monotonic()
        restored.start_server(timeout=120)
        deadline = time.monotonic() + 120
        while restored.psql("SELECT pg_is_in_recovery()") == "t":
            if time.monotonic() > deadline:
                raise RuntimeError("the restored server did not finish recovery within 120 s")
            time.sleep(0.2)
        if timings is not None:
            timings.update(restore=restored_at - started, recovery=time.monotonic() - restored_at)
        return restored
