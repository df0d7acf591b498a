# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Archiving the media root as a tar stream, and reading such archives back."""

from __future__ import annotations

import os
import stat
import tarfile
from typing import BinaryIO, Callable, Optional, Set

from .errors import PgdrillError, SetDamaged


def check_media_root(media_root: Optional[str], backup_dir: Optional[str] = None) -> str:
    """The media root to archive, as a real path (a symbolic link is resolved: an archive whose top
    member is a link cannot be extracted by GNU tar). Refuses a backup directory that is the root."""
    if not media_root:
        raise PgdrillError("--media was asked for but no media root is configured", "set media_root in the config (or PGDRILL_MEDIA_ROOT)")
    root = os.path.realpath(media_root)
    if not os.path.isdir(root):
        raise PgdrillError(
            f"media root {os.path.abspath(media_root)} does not exist or is not a directory", "fix media_root in the config, or leave out --media"
        )
    if backup_dir and os.path.realpath(backup_dir) == root:
        raise PgdrillError(
            f"the backup directory {backup_dir} is the media root {media_root}",
            "keep backups outside the media root: set backup_dir to a directory of its own",
        )
    return root


def excluded_dir(root: str, backup_dir: Optional[str]) -> Optional[str]:
    """The real path of the backup directory when it lies inside the (real) media root, else None:
    archiving it would put earlier backups, and this run's own partial files, into every archive."""
    if not backup_dir:
        return None
    real = os.path.realpath(backup_dir)
    return real if real.startswith(root.rstrip(os.sep) + os.sep) else None


def _walk_error(exc: OSError) -> None:
    raise PgdrillError(
        f"cannot read media directory {exc.filename}: {exc.strerror}",
        "run the backup as a user that can read the whole media root, or fix that directory's permissions",
    )


def tar_producer(root: str, exclude: Optional[str] = None, top: Optional[str] = None) -> Callable[[BinaryIO], None]:
    """A producer that writes ``root`` (a real path) as a tar stream under the name ``top``.

    Symbolic links are stored as links and never followed, so nothing outside the root is read.
    ``exclude`` (the backup directory's real path, when it lies inside the root) is skipped. A
    directory that cannot be read, or a file that changes size or vanishes while it is archived,
    fails the archive naming it: a media backup with silent holes is worse than none.
    """
    top = top or os.path.basename(root.rstrip(os.sep)) or "media"
    exclude = os.path.realpath(exclude) if exclude else None

    def add(archive: tarfile.TarFile, path: str, arcname: str) -> None:
        try:
            archive.add(path, arcname=arcname, recursive=False)
        except PermissionError:
            raise PgdrillError(
                f"cannot read media file {path}: permission denied",
                "run the backup as a user that can read the whole media root",
            ) from None
        except FileNotFoundError:
            raise PgdrillError(f"media file {path} vanished while it was archived", "run the backup again when the media root is quiet") from None
        except OSError as exc:
            if "unexpected end of data" in str(exc):
                raise PgdrillError(f"media file {path} shrank while it was archived", "run the backup again when the media root is quiet") from None
            raise PgdrillError(f"cannot archive media file {path}: {exc.strerror or exc}", "check that file and its filesystem") from None

    def produce(out: BinaryIO) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            add(archive, root, top)
            for current, dirs, files in os.walk(root, followlinks=False, onerror=_walk_error):
                dirs.sort()
                dirs[:] = [name for name in dirs if os.path.join(current, name) != exclude]
                for name in sorted(dirs) + sorted(files):
                    path = os.path.join(current, name)
                    try:
                        mode = os.lstat(path).st_mode
                    except FileNotFoundError:
                        raise PgdrillError(f"media file {path} vanished while it was archived", "run the backup again when the media root is quiet") from None
                    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                        continue  # sockets, fifos and devices are not media
                    add(archive, path, os.path.join(top, os.path.relpath(path, root)))

    return produce


def normal_name(name: str) -> str:
    return "/".join(part for part in name.split("/") if part not in ("", "."))


def path_problem(name: str) -> Optional[str]:
    """Why a member's name would land outside the directory it is unpacked in, or None: every tar
    pgdrill reads (a media archive, a set on its way through the controller) holds relative names
    below one directory. Pure."""
    if "\x00" in name:
        return "has a NUL byte in its name"
    if name.startswith("/"):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "has '..' in its path (it would land outside the destination)"
    if not normal_name(name):
        return "has an empty name"
    return None


def member_problem(member: tarfile.TarInfo, names: Set[str], links: Set[str]) -> Optional[str]:
    """Why a media archive may not hold ``member``, or None; ``names`` and ``links`` are the
    (normalised) names of the earlier members and of the earlier symbolic links, and are updated.

    pgdrill's own archives hold files, directories, symbolic links (stored, never followed) and
    hard links to earlier members, all under one relative top directory. Anything else would be
    written outside the destination, through a link, or as a device or pipe: it is refused before
    anything is extracted. Pure but for the two sets."""
    name = member.name
    normal = normal_name(name)
    problem = path_problem(name)
    if problem:
        return problem
    parts = normal.split("/")
    through = next((prefix for prefix in ("/".join(parts[:end]) for end in range(1, len(parts))) if prefix in links), None)
    if through:
        return f"lies under the symbolic link {through} (extracting it would write through the link)"
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a named pipe (fifo)"
    if member.islnk():
        target = member.linkname
        if target.startswith("/") or ".." in target.split("/") or normal_name(target) not in names:
            return f"is a hard link to {target!r}, which is not an earlier member of the archive"
    elif not (member.isfile() or member.isdir() or member.issym()):
        return f"is of a type media archives never hold (tar type {member.type!r})"
    names.add(normal)
    if member.issym():
        links.add(normal)
    return None


def check_member(member: tarfile.TarInfo, names: Set[str], links: Set[str]) -> None:
    """A SetDamaged naming ``member`` and why, when the rule above refuses it."""
    problem = member_problem(member, names, links)
    if problem:
        raise SetDamaged(
            f"the media archive's member {member.name!r} {problem}; pgdrill never writes such a member, so nothing was extracted",
            "use another set or another copy (local or remote), and find out who wrote this archive",
        )


def count_members(stream: BinaryIO) -> int:
    """Read a whole tar stream (so every member is checked, by :func:`member_problem` too) and
    count its members."""
    members = 0
    names: Set[str] = set()
    links: Set[str] = set()
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            check_member(member, names, links)
            members += 1
            if member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    while handle.read(1 << 20):
                        pass
    return members
