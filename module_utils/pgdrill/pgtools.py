# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Finding the PostgreSQL client programs, their versions, and how to compress a dump."""

from __future__ import annotations

import glob
import os
import re
import shutil
from typing import Dict, NamedTuple, Optional, Tuple

from .errors import PgdrillError
from .pipeline import child_env, run

CLIENT_INSTALL_HINT = (
    "install the PostgreSQL client tools: on Debian/Ubuntu 'apt install postgresql-client' "
    "(postgresql-client-N from the PGDG repository for a newer server), on RHEL-family "
    "'dnf install postgresql'; or set pg_bin_dir to the directory that holds pg_dump"
)
VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
# Where distributions install each major version side by side (Debian/Ubuntu, PGDG on RHEL).
VERSIONED_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
# pg_dump/pg_restore 17+ send "SET transaction_timeout", which servers before 17 reject.
TRANSACTION_TIMEOUT_MAJOR = 17


def parse_client_version(text: str) -> Tuple[int, str]:
    """``pg_dump (PostgreSQL) 15.18 (Debian ...)`` -> (15, "15.18")."""
    match = VERSION_RE.search(text)
    if not match:
        raise ValueError(f"unrecognised version output: {text.strip()!r}")
    major = int(match.group(1))
    full = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
    return major, full


def find_zstd() -> Optional[str]:
    """zstd is not a PostgreSQL program: always looked up on PATH, never in pg_bin_dir."""
    return shutil.which("zstd")


def versioned_bindirs() -> Dict[int, str]:
    """Installed client directories by major version."""
    found: Dict[int, str] = {}
    for pattern in VERSIONED_BIN_GLOBS:
        for path in glob.glob(pattern):
            match = re.search(r"(\d+)", os.path.basename(os.path.dirname(path)))
            if match and os.access(os.path.join(path, "pg_dump"), os.X_OK):
                found[int(match.group(1))] = path
    return found


def pick_bindir(minimum_major: int, candidates: Dict[int, str]) -> Optional[str]:
    """The installed client of the lowest major that is at least ``minimum_major``. Pure.

    The closest version is the most compatible one: a pg_dump newer than its server can write
    archives that only a newer server can restore (see TRANSACTION_TIMEOUT_MAJOR).
    """
    usable = sorted(major for major in candidates if major >= minimum_major)
    return candidates[usable[0]] if usable else None


def cross_version_note(client_major: int, server_major_version: int) -> str:
    """A warning when a newer client writes archives an equally old server cannot restore. Pure."""
    if client_major >= TRANSACTION_TIMEOUT_MAJOR > server_major_version:
        return (
            f"pg_dump {client_major} writes archives that only pg_restore {client_major}+ reads, and those cannot restore "
            f"into PostgreSQL {server_major_version} (they set transaction_timeout, new in 17); install the version "
            f"{server_major_version} client and pgdrill will use it"
        )
    return ""


def archive_too_new(pg_dump_major: Optional[int], reader: str) -> PgdrillError:
    """The problem and the fix when a pg_restore is older than the pg_dump that wrote an archive."""
    wanted = pg_dump_major or "its"
    return PgdrillError(
        f"this set's archive was written by pg_dump {wanted}, and {reader} cannot read it (pg_restore reads only "
        "archives of its own or an older version: 'unsupported version in file header')",
        f"install the PostgreSQL {wanted} client tools here (Debian/Ubuntu: 'apt install postgresql-client-{wanted}' from "
        f"the PGDG repository, or the pgdrill_client role with pgdrill_client_server_major: {wanted}), or set pg_bin_dir "
        f"(pgdrill_drill_pg_bin_dir for drills) to the bin directory of a client of version {wanted} or newer",
    )


def server_major(version_num: int) -> int:
    return version_num // 10000 if version_num >= 100000 else version_num // 100


def client_too_old(client_major: int, server_version_num: int) -> bool:
    return client_major < server_major(server_version_num)


class CompressionPlan(NamedTuple):
    method: str  # zstd, gzip or none
    level: int
    piped: bool  # True: pg_dump -Z0 | zstd; False: pg_dump compresses itself
    note: str  # why this plan differs from what was asked, or ""

    def pg_dump_args(self) -> list:
        if self.piped or self.method == "none":
            return ["--compress=0"]
        if self.method == "zstd":
            return [f"--compress=zstd:{self.level}"]
        return [f"--compress={self.level}"]  # gzip; the spelling every pg_dump accepts

    def pg_dump_prefix(self, stdbuf_path: Optional[str]) -> list:
        """For a zstd pipe: let pg_dump write its output in 1 MiB pieces instead of 4 KiB (measured
        here: 8% less wall time on a 1.2 GB database, see bench/README.md). Needs coreutils' stdbuf."""
        return [stdbuf_path, "-o1M"] if (self.piped and stdbuf_path) else []

    def compressor(self, zstd_path: str) -> Optional[list]:
        if not self.piped:
            return None
        ultra = ["--ultra"] if self.level > 19 else []
        return [zstd_path, "-q", "-T0", *ultra, f"-{self.level}", "-c"]


def choose_compression(requested: str, level: int, native_zstd: bool, zstd_binary: bool) -> CompressionPlan:
    """Pure: zstd natively when pg_dump has it, else through a zstd pipe, else gzip."""
    if requested == "zstd":
        if native_zstd:
            return CompressionPlan("zstd", level, False, "")
        if zstd_binary:
            return CompressionPlan("zstd", level, True, "")
        return CompressionPlan(
            "gzip", 6, False, "zstd is not available (pg_dump lacks it and no zstd program is installed); using gzip. Install zstd for faster backups"
        )
    if requested == "gzip":
        return CompressionPlan("gzip", min(level, 9), False, "")
    return CompressionPlan("none", 0, False, "")


class PgTools:
    """Locates client programs in ``pg_bin_dir`` or on PATH and remembers what it learned."""

    def __init__(self, pg_bin_dir: Optional[str] = None) -> None:
        self.pg_bin_dir = pg_bin_dir
        self._versions: Dict[str, Tuple[int, str]] = {}
        self._native_zstd: Optional[bool] = None

    def for_server(self, minimum_major: int) -> "PgTools":
        """These tools, or, when no pg_bin_dir was configured, the installed versioned client
        closest above ``minimum_major``. Falls back to PATH when none is installed that way."""
        if self.pg_bin_dir:
            return self
        chosen = pick_bindir(minimum_major, versioned_bindirs())
        return PgTools(chosen) if chosen else self

    def find(self, name: str) -> Optional[str]:
        if self.pg_bin_dir:
            candidate = os.path.join(self.pg_bin_dir, name)
            return candidate if os.access(candidate, os.X_OK) else None
        return shutil.which(name)

    def path(self, name: str) -> str:
        found = self.find(name)
        if found:
            return found
        where = f"in pg_bin_dir {self.pg_bin_dir}" if self.pg_bin_dir else "on PATH"
        raise PgdrillError(f"{name} is not installed ({name} not found {where})", CLIENT_INSTALL_HINT)

    def version(self, name: str) -> Tuple[int, str]:
        if name not in self._versions:
            done = run([self.path(name), "--version"], child_env(), f"asking {name} for its version", CLIENT_INSTALL_HINT)
            try:
                self._versions[name] = parse_client_version(done.stdout)
            except ValueError as exc:
                raise PgdrillError(f"{name}: {exc}", CLIENT_INSTALL_HINT) from None
        return self._versions[name]

    def require_client_for(self, name: str, server_version_num: int, server_version: str) -> Tuple[int, str]:
        major, full = self.version(name)
        if client_too_old(major, server_version_num):
            wanted = server_major(server_version_num)
            raise PgdrillError(
                f"{name} {full} is older than the server (PostgreSQL {server_version}); "
                f"{name} cannot safely dump or restore a newer server, so pgdrill refuses",
                f"install the version {wanted} client (Debian/Ubuntu: 'apt install postgresql-client-{wanted}' "
                f"from the PGDG repository) or set pg_bin_dir to its bin directory",
            )
        return major, full

    def for_archive(self, pg_dump_major: Optional[int]) -> "PgTools":
        """Tools whose pg_restore reads archives of pg_dump ``pg_dump_major`` (the set's manifest
        records it): the installed client closest above it, or pg_bin_dir. Refuses an older one,
        whose pg_restore would stop at "unsupported version in file header"."""
        tools = self.for_server(pg_dump_major or 0)
        if pg_dump_major:
            major, full = tools.version("pg_restore")
            if major < pg_dump_major:
                raise archive_too_new(pg_dump_major, f"pg_restore {full} ({tools.path('pg_restore')})")
        return tools

    def native_zstd(self) -> bool:
        """Does this pg_dump compress with zstd itself? (PostgreSQL 16+, when built with zstd)."""
        if self._native_zstd is None:
            major, _ = self.version("pg_dump")
            if major < 16:
                self._native_zstd = False
            else:
                # Compression options are checked before connecting; the bogus socket makes sure
                # the probe never reaches a server.
                probe = [
                    self.path("pg_dump"),
                    "--format=custom",
                    "--compress=zstd:1",
                    "--schema-only",
                    "--file",
                    os.devnull,
                    "--dbname",
                    "host=/nonexistent/pgdrill-probe connect_timeout=1",
                ]
                done = run(probe, child_env(), "probing pg_dump for zstd", check=False)
                self._native_zstd = "compression" not in done.stderr
        return self._native_zstd

    def compression_plan(self, requested: str, level: int) -> CompressionPlan:
        zstd_binary = find_zstd() is not None
        native = self.native_zstd() if requested == "zstd" else False
        return choose_compression(requested, level, native, zstd_binary)
