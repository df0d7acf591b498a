# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Files that appear whole or not at all, and the directory rules backups live by."""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator, List, Optional

from .errors import PgdrillError
from .naming import temp_prefix

FILE_MODE = 0o600
DIR_MODE = 0o700
# Files pgdrill opens in a backup directory are never reached through a symbolic link: whoever can
# write the directory could otherwise point one at a file of the user running pgdrill (root, say).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def owner_for_new_files(directory: str) -> Optional[int]:
    """The uid to give a file root creates in ``directory``: its owner, so that a root run (an
    Ansible task, an operator) never leaves a file the backup user's next run cannot replace.
    None when no chown is needed (not root, or the directory is root's)."""
    if os.geteuid() != 0:
        return None
    owner = os.stat(directory).st_uid
    return owner if owner != 0 else None


PARENT_DIR_MODE = 0o755


def existing_dir_problem(info: os.stat_result, euid: int) -> Optional[str]:
    """Why an existing directory must not hold backups, or None. Pure.

    pgdrill tightens only directories it creates itself; someone else's directory, or one every
    user can write (where anyone could plant or swap files), is refused rather than chmod'ed."""
    if not stat.S_ISDIR(info.st_mode):
        return "exists but is not a directory"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o002:
        return f"is writable by every user (mode {mode:04o})"
    if euid != 0 and info.st_uid != euid:
        return f"is owned by uid {info.st_uid}, not by this user (uid {euid})"
    return None


def _create_dirs(path: str) -> None:
    """Create ``path`` 0700 and any missing parents 0755, whatever the umask (a umask of 000 must
    not leave world-writable parents)."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        mode = DIR_MODE if directory == path else PARENT_DIR_MODE
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue  # created meanwhile by another run; checked like any existing directory
        os.chmod(directory, mode)  # the umask may have taken bits we need, never added any


def ensure_private_dir(path: str) -> None:
    """Create ``path`` (0700, parents 0755) if missing; refuse an existing directory that is a
    symbolic link, world-writable or someone else's. An existing directory is never chmod'ed."""
    try:
        if not os.path.lexists(path):
            _create_dirs(path)
        info = os.lstat(path)
    except PermissionError:
        raise PgdrillError(
            f"cannot create backup directory {path}: permission denied",
            "create it as root with owner the backup user and mode 0700, or choose another backup_dir",
        ) from None
    except OSError as exc:
        raise PgdrillError(f"cannot create backup directory {path}: {exc.strerror}", "choose a backup_dir on a writable filesystem") from None
    if stat.S_ISLNK(info.st_mode):
        real = os.path.realpath(path)
        raise PgdrillError(
            f"backup directory {path} is a symbolic link (to {real})",
            f"set backup_dir (or --out-dir) to the real directory {real}; pgdrill does not follow a link to its backups",
        )
    problem = existing_dir_problem(info, os.geteuid())
    if problem:
        raise PgdrillError(
            f"refusing backup directory {path}: it {problem}",
            "give pgdrill a directory of its own (a missing one is created 0700), or make this one the backup "
            "user's with mode 0700 (chown, chmod 0700); pgdrill never changes the mode of an existing directory",
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise PgdrillError(
            f"backup directory {path} is not writable by this user (uid {os.geteuid()})",
            "chown it to the backup user, or run pgdrill-backup as its owner",
        )


def os_error(exc: OSError, action: str, path: str) -> PgdrillError:
    """A file-handling failure as a message with the fix, by errno (never a traceback)."""
    directory = os.path.dirname(path) or "."
    where = f"{action} {path}: {exc.strerror or exc}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PgdrillError(
            f"cannot {where}",
            f"run pgdrill as the backup user that owns {directory}; files another user (root, say) left there "
            f"can be given back with chown -R BACKUP_USER {directory}",
        )
    if exc.errno == errno.EROFS:
        return PgdrillError(f"cannot {where}", "the filesystem is mounted read-only: remount it read-write, or choose another backup_dir")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return PgdrillError(
            f"cannot {where} (no space or no free inodes left); older backups are untouched",
            "free space or inodes on that filesystem (df -h, df -i), lower retention, or point backup_dir at a larger volume",
        )
    return PgdrillError(f"cannot {where}", f"check {directory} and the filesystem it is on")


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise os_error(exc, "sync the directory", path) from None


def remove_file(path: str) -> bool:
    """Delete one file, or a directory-format dump's directory with the files in it (never
    following a link); False when it was already gone. Failures become a PgdrillError."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise os_error(exc, "remove", path) from None


def disk_full_error(directory: str, what: str) -> PgdrillError:
    return PgdrillError(
        f"disk full while writing {what} in {directory}; the partial file was removed and older backups are untouched",
        "free space on that filesystem, lower retention, or point backup_dir at a larger volume",
    )


class AtomicWriter:
    """Write a file under a hidden temporary name in its final directory, checksum it on the way,
    and give it its final name only on :meth:`commit` (after fsync). Never replaces a file.
    """

    def __init__(self, directory: str, final_name: str) -> None:
        self.directory = directory
        self.final_name = final_name
        self.temp_path = os.path.join(directory, temp_prefix(final_name) + secrets.token_hex(4))
        self.final_path = os.path.join(directory, final_name)
        self.size = 0
        self._sha = hashlib.sha256()
        self.committed = False
        try:
            self._fd: Optional[int] = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except OSError as exc:
            raise os_error(exc, "create a file in", directory) from None
        try:
            owner = owner_for_new_files(directory)
            if owner is not None:
                os.fchown(self._fd, owner, -1)
        except OSError as exc:
            self.abort()
            raise os_error(exc, "give the directory's owner the new file", self.temp_path) from None

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        self._sha.update(view)
        if self._fd is None:
            raise PgdrillError(f"{self.temp_path} was already closed; nothing more can be written to it")
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full_error(self.directory, self.final_name) from None
            raise os_error(exc, "write", self.temp_path) from None
        self.size += len(data)

    def close_temp(self) -> None:
        """Flush to disk and close; the file keeps its temporary name."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full_error(self.directory, self.final_name) from None
            raise os_error(exc, "flush", self.temp_path) from None
        finally:
            os.close(self._fd)
            self._fd = None

    def commit(self, replace: bool = False) -> str:
        """Give the file its final name. Backup files never replace anything; ``replace`` is for
        records that are meant to be rewritten (a set's verification record)."""
        self.close_temp()
        if replace:
            try:
                os.replace(self.temp_path, self.final_path)
            except OSError as exc:
                raise os_error(exc, "replace", self.final_path) from None
            fsync_dir(self.directory)
            self.committed = True
            return self.final_path
        try:
            os.link(self.temp_path, self.final_path)
        except FileExistsError:
            raise PgdrillError(f"{self.final_path} already exists; pgdrill never overwrites a backup file") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise os_error(exc, "link", self.final_path) from None
            # Filesystems without hard links: the set's stamp is unique under the series lock.
            if os.path.lexists(self.final_path):
                raise PgdrillError(f"{self.final_path} already exists; pgdrill never overwrites a backup file") from None
            try:
                os.rename(self.temp_path, self.final_path)
            except OSError as exc:
                raise os_error(exc, "rename to", self.final_path) from None
        else:
            remove_file(self.temp_path)
        fsync_dir(self.directory)
        self.committed = True
        return self.final_path

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.temp_path)
        except OSError:
            pass  # best effort on the way out: the next run removes leftover temporaries

    def discard(self) -> None:
        """Undo this writer: remove its temporary file, or its final file if already committed."""
        if self.committed:
            remove_file(self.final_path)
            self.committed = False
        self.abort()

    def __enter__(self) -> "AtomicWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()


def write_atomic(directory: str, final_name: str, data: bytes) -> AtomicWriter:
    with AtomicWriter(directory, final_name) as writer:
        writer.write(data)
        writer.commit()
    return writer


def write_text(directory: str, name: str, text: str, what: str, fix: str, mode: int = 0o644) -> str:
    """Replace ``directory/name`` whole with ``text`` (a temporary file, fsync, rename): a reader
    never sees half a file. ``what`` names the file in the error (``metrics``, ``the report page``),
    ``fix`` says how to make its directory writable."""
    try:
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, mode)
            os.replace(temp, os.path.join(directory, name))
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise PgdrillError(f"cannot write {what} into {directory}: {exc.strerror}", fix) from None
    return os.path.join(directory, name)


def sha256_of(path: str, chunk: int = 1 << 20) -> "tuple[str, int]":
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(os.open(path, os.O_RDONLY | NOFOLLOW | getattr(os, "O_CLOEXEC", 0)), "rb", buffering=0) as handle:
        buffer = bytearray(chunk)
        view = memoryview(buffer)
        while True:
            read = handle.readinto(buffer)
            if not read:
                break
            digest.update(view[:read])
            size += read
    return digest.hexdigest(), size


# --- private work directories ------------------------------------------------------------------
# Plaintext work files (a decoded archive, a pulled set) live only in a private (0700) directory
# named .pgdrill-<kind>-XXXX, which its run holds an flock on for its whole life. A run killed with
# -9 cannot remove it; the next run that makes one of that kind removes every one no run holds.
WORK_LOCK = ".in-use"
WORK_GRACE_SECONDS = 60.0  # a directory without its lock file yet is being made


def _stale_work_dir(path: str, euid: int, now: float) -> bool:
    """Is ``path`` a work directory of ours that no run holds? Takes nothing: a probe."""
    import fcntl

    try:
        info = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != euid:
        return False
    try:
        fd = os.open(os.path.join(path, WORK_LOCK), os.O_RDONLY | NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return now - info.st_mtime > WORK_GRACE_SECONDS
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False  # a live run holds it
    finally:
        os.close(fd)


def remove_stale_work_dirs(parent: str, kind: str) -> List[str]:
    """Remove the work directories of ``kind`` in ``parent`` that are ours and no run holds (left
    by a run that was killed). Returns their paths."""
    try:
        names = os.listdir(parent)
    except OSError:
        return []
    removed = []
    euid, now = os.geteuid(), time.time()
    for name in sorted(names):
        path = os.path.join(parent, name)
        if name.startswith(f".pgdrill-{kind}-") and _stale_work_dir(path, euid, now):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def private_work_dir(parent: Optional[str], kind: str) -> Iterator[str]:
    """A private directory for plaintext work files in ``parent`` (default: the system's temporary
    directory), held for the block and removed after it; stale ones of ``kind`` go first."""
    import fcntl

    parent = parent or tempfile.gettempdir()
    remove_stale_work_dirs(parent, kind)
    directory = tempfile.mkdtemp(prefix=f".pgdrill-{kind}-", dir=parent)  # mode 0700
    try:
        fd = os.open(os.path.join(directory, WORK_LOCK), os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield directory
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
