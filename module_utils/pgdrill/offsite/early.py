# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The db file's upload beside the dump: with an S3 remote and a push after each backup, a
custom-format dump goes up while pg_dump still writes it (a multipart upload to the file's final
object name, its parts read back from the partial file as it grows). The object exists only once
the local set is final and the bytes sent hash to the file's sha256; a dump that fails, is stopped
or fails its checks aborts the upload, and nothing of the set is on the remote. The push that
follows finds the db file there and proven, and uploads the rest, its manifest last.

rclone remotes keep the order of before (the push after the set); so do directory-format sets.
A failed upload beside the dump never fails the backup: the push after it sends the file whole.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from ..config import DatabaseConfig
from ..errors import PgdrillError
from ..fsio import AtomicWriter
from ..storage import Mismatch, parse_remote
from ..storage.s3 import S3Remote
from ..storage.s3_parts import GrowingUpload
from .base import lock_settings, open_for

log = logging.getLogger("pgdrill")


class EarlyUpload:
    """One backup run's upload of its db file beside the dump (see the module's text); without a
    remote, the dump is written and nothing else happens."""

    def __init__(self, remote: Optional[S3Remote], config: DatabaseConfig) -> None:
        self.remote = remote
        self.config = config
        self.upload: Optional[GrowingUpload] = None
        self.name = ""

    def sink(self, writer: AtomicWriter) -> Callable[[bytes], None]:
        """Start uploading ``writer``'s file; the sink to write the dump through."""
        if self.remote is None:
            return writer.write
        self.name = writer.final_name
        upload = self.upload = self.remote.upload_while_written(writer.temp_path, writer.final_name, lock_settings(self.config))

        def write(data: bytes) -> None:
            writer.write(data)
            upload.grew(writer.size)

        return write

    def ended(self, writer: AtomicWriter) -> None:
        """The dump file is closed: its size and sha256 are final (its last part goes up)."""
        if self.upload is not None:
            self.upload.ended(writer.size, writer.sha256)

    def complete(self) -> None:
        """Once the local set is final: make the object exist, proven. A failure of the storage is a
        warning (the push sends the file whole, and reports what is still wrong); bytes that do not
        match the file raise."""
        upload, self.upload = self.upload, None
        if upload is None or self.remote is None:
            return
        try:
            self.remote.finish_while_written(upload, self.name)
        except Mismatch:
            raise
        except Exception as exc:  # noqa: BLE001 - the storage's failure, reported by the push if it lasts
            problem = exc.problem if isinstance(exc, PgdrillError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "%s: the upload of %s beside the dump did not end proven (%s); the push checks what the remote holds and sends what it lacks",
                self.config.label,
                self.name,
                problem,
            )

    def abort(self) -> None:
        """The set will not be: stop and abort the upload."""
        upload, self.upload = self.upload, None
        if upload is not None and self.remote is not None:
            self.remote.abort_while_written(upload, self.name)


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
