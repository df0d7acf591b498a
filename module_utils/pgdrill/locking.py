"""One run per backup series at a time: an flock on a hidden file in the backup directory."""

from __future__ import annotations

import fcntl
import os
import time

from .errors import LockBusy


class SeriesLock:
    def __init__(self, directory: str, prefix: str, wait_seconds: float = 0.0) -> None:
        self.path = os.path.join(directory, f".pgdrill-{prefix}.lock")
        self.prefix = prefix
        self.directory = directory
        self.wait_seconds = wait_seconds
        self._fd = None

    def _holder(self) -> str:
        try:
            with open(self.path, encoding="ascii") as handle:
                pid = handle.read().strip()
            return f" (pid {pid})" if pid else ""
        except (OSError, UnicodeDecodeError):
            return ""

    def acquire(self) -> "SeriesLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._holder()
                    os.close(fd)
                    waited = f" after waiting {self.wait_seconds:g} s" if self.wait_seconds else ""
                    raise LockBusy(
                        f"another pgdrill run{holder} is working on backup series '{self.prefix}' in {self.directory}{waited}",
                        "let it finish, or pass --wait SECONDS to wait for it",
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "SeriesLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
