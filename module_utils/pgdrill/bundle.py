# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""A set as one file on its way through the controller: its files packed into an uncompressed tar on
the source (the members are compressed, or encrypted, already), and unpacked on staging.

The tar belongs to whoever owns the directory it is written in, so a source whose set only root can
read packs it under become into the connection user's private directory, and the controller fetches
it without become, streamed. Packing reads regular files only, each opened below the set's directory
one path component at a time without following a link. Unpacking writes regular files (0600) and
directories (0700) only, into an empty directory and only below it: a member that is a link, a
device, an absolute path, a climb (``..``) or a name given twice is refused before anything is
written."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from typing import List, Optional, Set

from .errors import PgdrillError
from .media import normal_name, path_problem

CHUNK = 1 << 20
BLOCK = 512  # a tar's header and padding unit
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
SET_FIX = "a set travels as the plain files its manifest lists: check the source host and its set with pgdrill-backup verify"


def name_problem(name: str, seen: Set[str]) -> Optional[str]:
    """Why a path may not be packed or unpacked (outside the directory, or given twice), or None;
    ``seen`` holds the earlier names and is updated. Pure but for that set."""
    problem = path_problem(name)
    if problem:
        return f"{name!r} {problem}"
    if normal_name(name) in seen:
        return f"{name!r} is given twice"
    seen.add(normal_name(name))
    return None


def member_problem(member: tarfile.TarInfo, seen: Set[str]) -> Optional[str]:
    """Why a member may not be unpacked, or None: only plain files and directories, below the target, each once."""
    if not (member.isfile() or member.isdir()):
        return f"{member.name!r} is a link or a special file"
    return name_problem(member.name, seen)


def check_paths(paths: List[str]) -> None:
    """Refuse a list of paths to pack that names anything outside the set's directory, or a file twice."""
    seen: Set[str] = set()
    problems = [problem for problem in (name_problem(path, seen) for path in paths) if problem]
    if problems:
        raise PgdrillError(f"cannot pack the set: {'; '.join(problems[:5])}", fix=SET_FIX)


def tar_size(sizes: List[int]) -> int:
    """The bytes of an uncompressed PAX tar of files of these sizes: a header (and a PAX header at
    most) per file, each file padded to whole blocks, the end-of-archive blocks, rounded up to
    tarfile's 10 KiB records. Pure."""
    body = sum(3 * BLOCK + -(-size // BLOCK) * BLOCK for size in sizes) + 2 * BLOCK
    return -(-body // (20 * BLOCK)) * 20 * BLOCK


def _open_below(directory: str, name: str) -> int:
    """``name``'s file below ``directory``, opened for reading one component at a time, never through a link."""
    parts = normal_name(name).split("/")
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | CLOEXEC)
    try:
        for part in parts[:-1]:
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = below
        # O_NONBLOCK: a fifo put in the set's place fails the check below instead of hanging the read.
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def _sizes(directory: str, paths: List[str]) -> List[int]:
    """Each path's size (a plain file below ``directory``), for the room the tar needs."""
    sizes = []
    for path in paths:
        try:
            info = os.lstat(os.path.join(directory, normal_name(path)))
        except OSError as exc:
            raise PgdrillError(f"cannot read {path} of the set in {directory}: {exc.strerror}", fix=SET_FIX) from exc
        if not stat.S_ISREG(info.st_mode):
            raise PgdrillError(f"cannot pack the set: {path!r} in {directory} is a link or a special file", fix=SET_FIX)
        sizes.append(info.st_size)
    return sizes


class _Archive:
    """The tar's file, written unbuffered: every byte is on its way when the write returns, and a
    failed write names the archive and the room it needs, not the set."""

    def __init__(self, fd: int, archive: str, needed: int) -> None:
        self._fd, self._archive, self._needed = fd, archive, needed

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            raise _room_error(self._archive, self._needed, exc.strerror or str(exc)) from exc
        return len(data)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)


def _room_error(archive: str, needed: int, why: str) -> PgdrillError:
    return PgdrillError(
        f"cannot write {archive}: {why} (the set's tar needs {needed} bytes there)",
        fix="give the drill a directory on the source with room for one copy of the set (pgdrill_drill_source_temp_dir), or free space there",
    )


def pack(directory: str, paths: List[str], archive: str) -> int:
    """Pack ``paths`` (plain files, relative to ``directory``) into ``archive``, a new file (0600)
    given the owner of the directory it lies in. Returns its size in bytes."""
    check_paths(paths)
    needed = tar_size(_sizes(directory, paths))
    parent = os.path.dirname(os.path.abspath(archive))
    owner = os.stat(parent)
    free = shutil.disk_usage(parent).free
    if free < needed:
        raise _room_error(archive, needed, f"{free} bytes are free")
    try:
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | CLOEXEC, 0o600)
    except OSError as exc:
        raise PgdrillError(
            f"cannot create {archive}: {exc.strerror}", fix=f"write it into a directory that exists and does not hold {os.path.basename(archive)} yet"
        ) from exc
    try:
        os.fchown(fd, owner.st_uid, owner.st_gid)
        with tarfile.TarFile(fileobj=_Archive(fd, archive, needed), mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:  # type: ignore[arg-type]
            for path in paths:
                _add(tar, directory, path)
    except BaseException:
        os.unlink(archive)
        raise
    finally:
        os.close(fd)
    return os.path.getsize(archive)


def _add(tar: tarfile.TarFile, directory: str, path: str) -> None:
    try:
        source = os.fdopen(_open_below(directory, path), "rb")
    except OSError as exc:
        raise PgdrillError(f"cannot read {path} of the set in {directory}: {exc.strerror}", fix=SET_FIX) from exc
    with source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise PgdrillError(f"cannot pack the set: {path!r} in {directory} is a link or a special file", fix=SET_FIX)
        member = tarfile.TarInfo(normal_name(path))
        member.size, member.mtime, member.mode = info.st_size, int(info.st_mtime), 0o600
        try:
            tar.addfile(member, source)
        except OSError as exc:  # a write's failure is the archive's (_Archive): this is the read's
            raise PgdrillError(f"cannot read {path} of the set in {directory}: {exc}", fix=SET_FIX) from exc


def members_of(archive: str, directory: Optional[str] = None) -> List[str]:
    """The members ``archive`` would unpack, every one checked (and ``directory`` found empty), without
    writing anything."""
    if directory is not None:
        _check_empty(directory)
    try:
        with tarfile.TarFile(archive, mode="r", copybufsize=CHUNK) as tar:
            return [member.name for member in _checked(tar, archive)]
    except (tarfile.TarError, OSError) as exc:
        raise PgdrillError(f"cannot read {archive}: {exc}", fix="run the drill again (the set travels anew)") from exc


def _check_empty(directory: str) -> None:
    try:
        there = os.listdir(directory)
    except OSError as exc:
        raise PgdrillError(f"cannot unpack into {directory}: {exc.strerror}", fix="unpack into an empty directory that exists") from exc
    if there:
        raise PgdrillError(f"cannot unpack into {directory}: it is not empty ({len(there)} entries)", fix="unpack into an empty directory")


def _checked(tar: tarfile.TarFile, archive: str) -> List[tarfile.TarInfo]:
    members = tar.getmembers()
    seen: Set[str] = set()
    problems = [problem for problem in (member_problem(member, seen) for member in members) if problem]
    if problems:
        raise PgdrillError(f"{archive} holds members that may not be unpacked: {'; '.join(problems[:5])}", fix="nothing was unpacked; " + SET_FIX)
    return members


def unpack(archive: str, directory: str) -> List[str]:
    """Unpack ``archive`` into ``directory`` (which exists and is empty): files 0600, directories 0700.
    Every member is checked before anything is written. Returns the members' names."""
    _check_empty(directory)
    try:
        with tarfile.TarFile(archive, mode="r", copybufsize=CHUNK) as tar:
            members = _checked(tar, archive)
            for member in members:
                _unpack_member(tar, member, directory)
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise PgdrillError(
            f"cannot unpack {archive}: {exc}", fix="run the drill again (the set travels anew); the drill's cleanup removes what was unpacked"
        ) from exc
    return [member.name for member in members]


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, directory: str) -> None:
    if member.isdir():
        _make_dirs(directory, member.name)
        return
    _make_dirs(directory, os.path.dirname(normal_name(member.name)))
    source = tar.extractfile(member)
    if source is None:  # never for a regular file
        raise PgdrillError(f"{member.name} has no bytes in the tar", fix=SET_FIX)
    fd = os.open(os.path.join(directory, normal_name(member.name)), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | CLOEXEC, 0o600)
    with source, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def _make_dirs(directory: str, name: str) -> None:
    """Each directory of ``name`` below ``directory``, made 0700 (never through a link)."""
    path = directory
    for part in [part for part in name.split("/") if part not in ("", ".")]:
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if os.path.islink(path) or not os.path.isdir(path):
                raise PgdrillError(f"{path} is in the way of the set's directory", fix="unpack into an empty directory") from None
        os.chmod(path, 0o700)
