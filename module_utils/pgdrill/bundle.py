# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""A set as one file on its way through the controller: its files packed into an uncompressed tar on
the source (the members are compressed, or encrypted, already), and unpacked on staging.

The tar belongs to whoever owns the directory it is written in, so a source whose set only root can
read packs it under become into the connection user's private directory, and the controller fetches
it without become, streamed. Unpacking writes regular files (0600) and directories (0700) only, and
only below the directory given: a member that is a link, a device, an absolute path or a climb
(``..``) is refused before anything is written."""

from __future__ import annotations

import os
import tarfile
from typing import List, Optional

from .errors import PgdrillError

CHUNK = 1 << 20


def member_problem(member: tarfile.TarInfo) -> Optional[str]:
    """Why a member may not be unpacked (or packed), or None when it is a plain file or directory below the target."""
    if not (member.isfile() or member.isdir()):
        return f"{member.name} is a link or a special file"
    parts = member.name.split("/")
    if member.name.startswith("/") or ".." in parts or not member.name.strip("/."):
        return f"{member.name} is an absolute path, climbs out with '..', or names no file"
    return None


def pack(directory: str, paths: List[str], archive: str) -> int:
    """Pack ``paths`` (relative to ``directory``) into ``archive``, a new file (0600) given the owner of
    the directory it lies in. Returns its size in bytes."""
    parent = os.path.dirname(os.path.abspath(archive))
    owner = os.stat(parent)
    try:
        fd = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise PgdrillError(
            f"cannot create {archive}: {exc.strerror}", fix=f"write it into a directory that exists and does not hold {os.path.basename(archive)} yet"
        ) from exc
    try:
        os.fchown(fd, owner.st_uid, owner.st_gid)
        out = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        os.unlink(archive)
        raise
    try:
        with out, tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
            for path in paths:
                member = tar.gettarinfo(os.path.join(directory, path), arcname=path)
                problem = member_problem(member)
                if problem:
                    raise PgdrillError(
                        f"cannot pack the set: {problem}", fix=f"the set in {directory} holds only plain files; check it with pgdrill-backup verify"
                    )
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                if member.isfile():
                    with open(os.path.join(directory, path), "rb") as source:
                        tar.addfile(member, source)
                else:
                    tar.addfile(member)
    except OSError as exc:
        os.unlink(archive)
        raise PgdrillError(f"cannot pack the set in {directory}: {exc}", fix="check that the set is complete there with pgdrill-backup verify") from exc
    except BaseException:
        os.unlink(archive)
        raise
    return os.path.getsize(archive)


def unpack(archive: str, directory: str) -> List[str]:
    """Unpack ``archive`` into ``directory`` (which exists): files 0600, directories 0700. Every member
    is checked before anything is written. Returns the members' names."""
    try:
        with tarfile.TarFile(archive, mode="r", copybufsize=CHUNK) as tar:
            members = tar.getmembers()
            problems = [problem for problem in map(member_problem, members) if problem]
            if problems:
                raise PgdrillError(
                    f"{archive} holds members that may not be unpacked: {'; '.join(problems[:5])}",
                    fix="nothing was unpacked; a set travels as plain files and directories only: check the source host and its set",
                )
            for member in members:
                _unpack_member(tar, member, directory)
    except (tarfile.TarError, OSError) as exc:
        raise PgdrillError(
            f"cannot unpack {archive}: {exc}", fix="run the drill again (the set travels anew); the drill's cleanup removes what was unpacked"
        ) from exc
    return [member.name for member in members]


def _unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, directory: str) -> None:
    if member.isdir():
        _make_dirs(directory, member.name)
        return
    _make_dirs(directory, os.path.dirname(member.name))
    source = tar.extractfile(member)
    if source is None:  # never for a regular file
        raise PgdrillError(f"{member.name} has no bytes in the tar", fix="check the source host and its set")
    try:
        fd = os.open(_below(directory, member.name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as exc:
        raise PgdrillError(f"the tar holds {member.name} twice", fix="a set names each file once: check the source host and its set") from exc
    with source, os.fdopen(fd, "wb") as out:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)


def _below(directory: str, name: str) -> str:
    return os.path.join(directory, *[part for part in name.split("/") if part not in ("", ".")])


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
