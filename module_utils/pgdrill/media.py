"""Archiving the media root as a tar stream, and reading such archives back."""

from __future__ import annotations

import os
import stat
import tarfile
from typing import BinaryIO, Callable, Optional

from .errors import PgdrillError


def check_media_root(media_root: Optional[str]) -> str:
    if not media_root:
        raise PgdrillError("--media was asked for but no media root is configured", "set media_root in the config (or PGDRILL_MEDIA_ROOT)")
    root = os.path.abspath(media_root)
    if not os.path.isdir(root):
        raise PgdrillError(f"media root {root} does not exist or is not a directory", "fix media_root in the config, or leave out --media")
    return root


def tar_producer(root: str, exclude: Optional[str] = None) -> Callable[[BinaryIO], None]:
    """A producer that writes ``root`` as a tar stream.

    Symbolic links are stored as links and never followed, so nothing outside the root is read.
    ``exclude`` (the backup directory, when it lies inside the root) is skipped.
    """
    top = os.path.basename(root.rstrip(os.sep)) or "media"
    exclude = os.path.abspath(exclude) if exclude else None

    def produce(out: BinaryIO) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            archive.add(root, arcname=top, recursive=False)
            for current, dirs, files in os.walk(root, followlinks=False):
                dirs.sort()
                dirs[:] = [name for name in dirs if os.path.join(current, name) != exclude]
                for name in sorted(dirs) + sorted(files):
                    path = os.path.join(current, name)
                    mode = os.lstat(path).st_mode
                    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                        continue  # sockets, fifos and devices are not media
                    arcname = os.path.join(top, os.path.relpath(path, root))
                    try:
                        archive.add(path, arcname=arcname, recursive=False)
                    except PermissionError:
                        raise PgdrillError(
                            f"cannot read media file {path}: permission denied",
                            "run the backup as a user that can read the whole media root",
                        ) from None

    return produce


def count_members(stream: BinaryIO) -> int:
    """Read a whole tar stream (so every member is checked) and count its members."""
    members = 0
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            members += 1
            if member.isfile():
                handle = archive.extractfile(member)
                if handle is not None:
                    while handle.read(1 << 20):
                        pass
    return members
