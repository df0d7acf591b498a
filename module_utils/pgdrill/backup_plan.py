# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""What a backup run will do, decided once before it starts: the files it writes, how the media
archive is compressed, what a --dry-run or check mode shows. Pure but for the preview's look at
the client tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from . import encryption, manifest as manifest_mod
from .config import DatabaseConfig
from .errors import PgdrillError
from .naming import DIRECTORY_EXTENSION, dump_extension, file_name, format_stamp, media_extension
from .pgtools import PgTools, find_zstd
from .series import Series, utcnow


def media_compression(method: str, zstd: Optional[str]) -> "tuple[str, Optional[str]]":
    """How the media archive is compressed, and a note when that is not what was asked. Pure."""
    if method == "zstd" and not zstd:
        return "gzip", "zstd is not installed; the media archive uses gzip"
    return method, None


def media_command(method: str, level: int, zstd: Optional[str]) -> List[List[str]]:
    """The compressor after tar, if any. Pure."""
    if method == "zstd":
        return [[zstd or "zstd", "-q", "-T0", f"-{min(level, 19)}", "-c"]]
    if method == "gzip":
        return [["gzip", "-c", f"-{min(max(level, 1), 9)}"]]
    return []


def dump_format(setting: str, database_bytes: Optional[int], directory_above: int) -> str:
    """The format of a run's dump: the configured one, or for ``auto`` directory from
    ``directory_above`` bytes of database (its size read at run time), custom below. Pure."""
    if setting != "auto":
        return setting
    return manifest_mod.DIRECTORY_FORMAT if (database_bytes or 0) >= directory_above else "custom"


@dataclass(frozen=True)
class BackupPlan:
    """What one run will do, decided once: :meth:`preview` prints it (--dry-run, check mode) and
    :class:`BackupRun` carries it out, so the two cannot drift apart. The database dump's own
    compression is settled against the server's version at run time (a preview has no server)."""

    config: DatabaseConfig
    include_db: bool
    include_media: bool
    media_method: str
    zstd: Optional[str]
    notes: "tuple[str, ...]" = ()

    @property
    def media_level(self) -> int:
        return self.config.effective_level(self.media_method)

    def media_ext(self) -> str:
        return media_extension(self.media_method)

    def preview(self) -> Dict[str, Any]:
        """The files a run would write now, without connecting or writing."""
        config = self.config
        stamp = format_stamp(utcnow())
        files = []
        notes = list(self.notes)
        if self.include_db:
            tools = PgTools(config.pg_bin_dir)
            plan = tools.compression_plan(config.compression, config.effective_level()) if tools.find("pg_dump") else None
            if plan is None:
                notes.append("pg_dump is not installed; the backup would fail")
                ext = dump_extension(config.compression, True)
            else:
                ext = dump_extension(plan.method, plan.piped)
                if plan.note:
                    notes.append(plan.note)
            directory = file_name(config.prefix, "db", stamp, DIRECTORY_EXTENSION)  # one directory; its files sealed one by one (dirsets.py)
            custom = file_name(config.prefix, "db", stamp, sealed(config, ext))
            if config.format == "auto":  # the database's size when the run starts decides
                files.append(f"{custom} or {directory}")
                notes.append(f"format = auto: the dump is directory-format if the database is {config.directory_above} bytes or more when the run starts")
            else:
                files.append(directory if config.format == "directory" else custom)
            if config.globals:
                files.append(file_name(config.prefix, "globals", stamp, sealed(config, "sql")))
            if config.pitr_stanza and config.pitr_mark:
                notes.append(f"the dump would be taken in the snapshot of a restore point marked first (stanza {config.pitr_stanza}; pitr_mark = no: none)")
        if self.include_media:
            files.append(file_name(config.prefix, "media", stamp, sealed(config, self.media_ext())))
        files.append(manifest_mod.manifest_name(config.prefix, stamp))
        return {
            "database": config.dbname,
            "backup_dir": config.backup_dir,
            "files": files,
            "notes": notes,
            "prune": Series(config).plan_prune() if config.prune_after_backup else None,
        }


def sealed(config: DatabaseConfig, ext: str) -> str:
    """The extension a file gets: ``.age`` after the plain one when the series is encrypted. Pure."""
    return encryption.encrypted_name(ext) if config.encrypted else ext


def plan_backup(config: DatabaseConfig, include_db: bool, include_media: bool) -> BackupPlan:
    """Decide what a run does (for the run itself, --dry-run and check mode)."""
    if not include_db and not include_media:
        raise PgdrillError("nothing to back up", "pass --db, --media or both")
    zstd = find_zstd()
    notes = []
    method = config.compression
    if include_media:
        method, note = media_compression(config.compression, zstd)
        if note:
            notes.append(note)
    return BackupPlan(config, include_db, include_media, method, zstd, tuple(notes))
