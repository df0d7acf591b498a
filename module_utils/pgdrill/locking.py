# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""One run per backup series at a time: an flock on a hidden file in the backup directory."""

from __future__ import annotations

from typing import Optional

import fcntl
import os
import stat
import time

from .errors import LockBusy, PgdrillError
from .fsio import NOFOLLOW, owner_for_new_files


def lock_file_problem(info: os.stat_result, directory_owner: int, euid: int) -> "str | None":
    """Why an opened lock file must not be used, or None. Pure.

    The lock lives in a directory the backup user can write, so whoever runs pgdrill (root among
    them) must not be tricked into truncating some other file through it.
    """
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid not in (directory_owner, euid):
        return f"is owned by uid {info.st_uid}, not by the directory's owner (uid {directory_owner}) or this user (uid {euid})"
    if info.st_nlink != 1:
        return f"has {info.st_nlink} hard links"
    return None


class SeriesLock:
    def __init__(self, directory: str, prefix: str, wait_seconds: float = 0.0) -> None:
        self.path = os.path.join(directory, f".pgdrill-{prefix}.lock")
        self.prefix = prefix
        self.directory = directory
        self.wait_seconds = wait_seconds
        self._fd: Optional[int] = None

    def _holder(self) -> str:
        try:
            fd = os.open(self.path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return ""
        try:
            pid = os.read(fd, 32).decode("ascii").strip()
            return f" (pid {pid})" if pid.isdigit() else ""
        except (OSError, UnicodeDecodeError):
            return ""
        finally:
            os.close(fd)

    def _open(self) -> int:
        flags = os.O_RDWR | NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                created = True
            except FileExistsError:
                fd = os.open(self.path, flags)
                created = False
        except OSError as exc:
            raise PgdrillError(
                f"cannot open the lock file {self.path}: {exc.strerror}",
                "remove it if it is not a plain file created by pgdrill (a link or a directory there is not pgdrill's), "
                "and run pgdrill as the backup user that owns the backup directory",
            ) from None
        try:
            directory_owner = os.stat(self.directory).st_uid
            if created:
                owner = owner_for_new_files(self.directory)
                if owner is not None:
                    os.fchown(fd, owner, -1)
            problem = lock_file_problem(os.fstat(fd), directory_owner, os.geteuid())
        except OSError as exc:
            os.close(fd)
            raise PgdrillError(f"cannot check the lock file {self.path}: {exc.strerror}", "run pgdrill as the backup user") from None
        if problem:
            os.close(fd)
            raise PgdrillError(
                f"refusing the lock file {self.path}: it {problem}",
                "remove it (pgdrill creates a fresh one) and check who else can write to the backup directory",
            )
        return fd

    def acquire(self) -> "SeriesLock":
        fd = self._open()
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
