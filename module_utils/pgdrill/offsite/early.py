# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The db file's upload beside the dump: with an S3 remote and a push after each backup, the dump
goes up while pg_dump still writes it. A custom-format dump is one multipart upload to the file's
final object name, its parts read back from the partial file as it grows. A directory-format dump
sends each member as soon as it is sealed, while pg_dump dumps the other tables: one multipart
upload per member (``<dir>/<member>``), its parts read from the sealed file, ``PARTS_IN_FLIGHT``
parts in flight across all of them (the sealing threads only hand each member over); members under
EARLY_MEMBER_MIN go with the push after the set.

No object exists until the local set is final (its directory renamed, the manifest written): then
each upload is completed, the bytes sent checked against the file's sha256 and size, and the storage's
composite checksum against the parts'. A dump that fails, is stopped or fails its checks aborts
every upload, and nothing of the set is on the remote. The push that follows finds those files
there and proven, and uploads the rest, its manifest last.

rclone remotes keep the order of before (the push after the set). A failed upload beside the dump
never fails the backup: the push after it sends what the remote lacks.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Dict, Optional

from ..config import DatabaseConfig
from ..dirsets import member_path
from ..errors import PgdrillError
from ..fsio import AtomicWriter
from ..storage import Mismatch, parse_remote
from ..storage.s3 import S3Remote
from ..storage.s3_parts import GrowingUpload, UploadPool
from .base import lock_settings, open_for

log = logging.getLogger("pgdrill")

EARLY_MEMBER_MIN = 1 << 20  # bytes: a directory dump's smaller members go with the push after the set


def sent_early(size: int) -> bool:
    """Does a sealed member of ``size`` bytes go up beside the dump? Not a small one: an upload beside
    the dump costs about three requests more than the push after the set (the multipart upload's start,
    its completion, a second check), longer than sending a member under EARLY_MEMBER_MIN (a table of a
    few thousand rows); hundreds of small tables would slow the run, not speed it. Pure."""
    return size >= EARLY_MEMBER_MIN


class EarlyUpload:
    """One backup run's uploads beside the dump (see the module's text), by object name; without a
    remote, the dump is written and nothing else happens."""

    def __init__(self, remote: Optional[S3Remote], config: DatabaseConfig) -> None:
        self.remote = remote
        self.config = config
        self.uploads: Dict[str, GrowingUpload] = {}
        self._added = threading.Lock()  # members are handed over by the sealing threads
        self._pool: Optional[UploadPool] = None
        self._dir_fd = -1

    def sink(self, writer: AtomicWriter) -> Callable[[bytes], None]:
        """Start uploading ``writer``'s file; the sink to write the dump through."""
        if self.remote is None:
            return writer.write
        upload = self.uploads[writer.final_name] = self.remote.upload_while_written(writer.temp_path, writer.final_name, lock_settings(self.config))

        def write(data: bytes) -> None:
            writer.write(data)
            upload.grew(writer.size)

        return write

    def ended(self, writer: AtomicWriter) -> None:
        """The dump file is closed: its size and sha256 are final (its last part goes up)."""
        upload = self.uploads.get(writer.final_name)
        if upload is not None:
            upload.ended(writer.size, writer.sha256)

    def members(self, partial: str, directory: str) -> Optional[Callable[[Dict[str, Any]], None]]:
        """For a directory dump being sealed into ``partial`` (named ``directory`` once final): what
        each sealed member is handed to, from its sealing thread, which never waits on the network
        (None without a remote)."""
        if self.remote is None:
            return None
        remote, lock = self.remote, lock_settings(self.config)
        self._dir_fd = os.open(partial, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
        pool = self._pool = UploadPool()

        def sealed(member: Dict[str, Any]) -> None:
            if not sent_early(member["size"]):
                return
            name = member_path(directory, member["name"])
            try:
                upload = remote.upload_while_written(member["name"], name, lock, pool, self._dir_fd)
            except RuntimeError:
                return  # the run is being aborted (the pool is shut down): nothing to hand over
            upload.ended(member["size"], member["sha256"])
            with self._added:
                self.uploads[name] = upload

        return sealed

    def complete(self) -> None:
        """Once the local set is final: make each object exist, proven. A failure of the storage is a
        warning, and the uploads not completed yet are aborted (the push sends what the remote lacks,
        and reports what is still wrong); bytes that do not match the file raise."""
        with self._added:
            uploads, self.uploads = self.uploads, {}
        try:
            for name in list(uploads):
                if self.remote is not None:
                    self.remote.finish_while_written(uploads.pop(name), name)
        except Mismatch:
            raise
        except Exception as exc:  # noqa: BLE001 - the storage's failure, reported by the push if it lasts
            problem = exc.problem if isinstance(exc, PgdrillError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "%s: the upload of %s beside the dump did not end proven (%s); the push checks what the remote holds and sends what it lacks",
                self.config.label,
                name,
                problem,
            )
        finally:
            self._abort(uploads)

    def abort(self) -> None:
        """The set will not be: stop and abort every upload."""
        with self._added:
            uploads, self.uploads = self.uploads, {}
        self._abort(uploads)

    def _abort(self, uploads: Dict[str, GrowingUpload]) -> None:
        if self._pool is not None:
            self._pool.shutdown()  # the members waiting for a worker never begin
        for name, upload in uploads.items():
            if self.remote is not None:
                self.remote.abort_while_written(upload, name)
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1


def for_backup(config: DatabaseConfig) -> Optional[EarlyUpload]:
    """The upload beside the dump for a backup run of ``config``: only for an S3 remote that every
    run pushes to. A remote that cannot be opened gets no early upload: the push reports why."""
    if not (config.remote and config.remote_upload) or parse_remote(config.remote).kind != "s3":
        return None
    try:
        remote = open_for(config)
    except PgdrillError:
        return None
    return EarlyUpload(remote, config) if isinstance(remote, S3Remote) else None
