# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Reading and restoring the archives the engine writes: plain custom-format dumps (compressed by
pg_dump itself) and custom-format dumps piped through zstd (``.dump.zst``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Dict, List, Optional

from .errors import PgdrillError
from .media import count_members
from .pgtools import PgTools, archive_too_new, find_zstd
from .pipeline import describe_rc, last_line, run, stream

TRANSACTION_TIMEOUT_FIX = (
    "this archive was written by pg_dump 17 or newer, whose pg_restore sets transaction_timeout, which servers "
    "before PostgreSQL 17 do not have: restore it into PostgreSQL 17 or newer, and take future backups with the "
    "client of the server's own major version (install it; pgdrill picks it automatically, or set pg_bin_dir)"
)
ZSTD_HINT = "install zstd ('apt install zstd' or 'dnf install zstd'): this archive is zstd-compressed"


def zstd_path() -> str:
    found = find_zstd()
    if not found:
        raise PgdrillError("zstd is not installed", ZSTD_HINT)
    return found


def is_piped_zstd(path: str) -> bool:
    return path.endswith(".zst")


def list_archive(tools: PgTools, env: Dict[str, str], path: str, final_name: Optional[str] = None) -> List[str]:
    """The archive's table of contents as pg_restore --list prints it (comment lines dropped).
    ``final_name`` gives the format when ``path`` is still a temporary file."""
    text = read_toc(tools, env, path, final_name)
    return [line for line in text.splitlines() if line.strip() and not line.startswith(";")]


def read_toc(tools: PgTools, env: Dict[str, str], path: str, final_name: Optional[str] = None, verbose: bool = False) -> str:
    """``pg_restore --list`` of an archive (``--verbose`` adds each entry's dependencies)."""
    name = final_name or os.path.basename(path)
    what = f"reading the archive {name} with pg_restore --list"
    flags = ["--list"] + (["--verbose"] if verbose else [])
    try:
        if is_piped_zstd(name):
            chunks: List[bytes] = []
            stream([[zstd_path(), "-dcq", path], [tools.path("pg_restore"), *flags]], chunks.append, env, what, head_read=True)
            return b"".join(chunks).decode("utf-8", "replace")
        return run([tools.path("pg_restore"), *flags, path], env, what).stdout
    except PgdrillError as exc:
        raise _explained(exc, tools) from None


def _explained(exc: PgdrillError, tools: PgTools) -> PgdrillError:
    """pg_restore's cryptic failures, with the problem and the fix."""
    stderr = str(exc.details.get("stderr", ""))
    if "unsupported version" in stderr and "file header" in stderr:
        error = archive_too_new(None, f"pg_restore ({tools.path('pg_restore')})")
        return PgdrillError(f"{exc.problem}: {error.problem}", error.fix, **exc.details)
    missing_role = re.search(r'ERROR:\s+role "((?:[^"]|"")+)" does not exist', stderr)
    if missing_role:
        return PgdrillError(
            f"{exc.problem.split(':')[0]}: role \"{missing_role.group(1)}\" does not exist on this server, and the archive "
            "gives it objects or privileges",
            "replay the set's globals first (restore_globals; pgdrill_drill_restore_globals: true, the drill's default), "
            "or restore without ownership and privileges (no_owner and no_privileges), which the outcome then names",
            **exc.details,
        )
    if re.search(r"must be (able to SET ROLE|member of role)", stderr):
        return PgdrillError(
            f"{exc.problem.split(':')[0]}: the connecting role may not give objects to their owners from the backup",
            "connect as a superuser on this server (pgdrill_drill_login_user for drills), or restore without ownership "
            "(no_owner; pgdrill_drill_no_owner: true), which the outcome then names",
            **exc.details,
        )
    if 'unrecognized configuration parameter "transaction_timeout"' in stderr:
        return PgdrillError(f"{exc.problem}: the server does not know transaction_timeout", TRANSACTION_TIMEOUT_FIX, **exc.details)
    return exc


def read_media(path: str) -> int:
    """Read a media archive end to end; returns its member count."""
    if path.endswith(".tar.zst"):
        proc = subprocess.Popen([zstd_path(), "-dcq", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            members = count_members(proc.stdout)  # type: ignore[arg-type]
            proc.stdout.read()  # type: ignore[union-attr]
        finally:
            proc.stdout.close()  # type: ignore[union-attr]
            stderr = proc.stderr.read().decode("utf-8", "replace")  # type: ignore[union-attr]
            proc.wait()
        if proc.returncode != 0:
            raise PgdrillError(f"zstd {describe_rc(proc.returncode)} reading {os.path.basename(path)}: {last_line(stderr)}")
        return members
    mode = "rb"
    with open(path, mode) as raw:
        if path.endswith(".gz"):
            import gzip

            with gzip.GzipFile(fileobj=raw) as unzipped:
                return count_members(unzipped)  # type: ignore[arg-type]
        return count_members(raw)


def check_target_name(dbname: str) -> None:
    """pg_restore's --dbname takes a connection string too: a name that looks like one is refused. Pure."""
    if "=" in dbname or dbname.startswith(("postgres://", "postgresql://")):
        raise PgdrillError(f"refusing target database name {dbname!r}", "a database name must not look like a connection string")


def pg_restore_argv(
    tools: PgTools,
    archive: str,
    dbname: str,
    jobs: int = 1,
    clean: bool = False,
    no_owner: bool = False,
    no_privileges: bool = False,
    use_list: Optional[str] = None,
) -> List[str]:
    check_target_name(dbname)
    argv = [tools.path("pg_restore"), "--exit-on-error", f"--dbname={dbname}"]
    if jobs > 1:
        argv.append(f"--jobs={jobs}")
    if clean:
        argv += ["--clean", "--if-exists"]
    if no_owner:
        argv.append("--no-owner")
    if no_privileges:
        argv.append("--no-privileges")
    if use_list:
        argv.append(f"--use-list={use_list}")
    if archive != "-":
        argv.append(archive)
    return argv


def _restore(argvs: List[List[str]], env: Dict[str, str], what: str, tools: PgTools) -> None:
    fix = "read pg_restore's message; --exit-on-error stopped at the first error"
    try:
        if len(argvs) == 1:
            run(argvs[0], env, what, fix)
        else:
            stream(argvs, lambda chunk: None, env, what, fix)
    except PgdrillError as exc:
        raise _explained(exc, tools) from None


def restore_archive(
    tools: PgTools,
    env: Dict[str, str],
    archive: str,
    dbname: str,
    jobs: int = 1,
    work_dir: Optional[str] = None,
    clean: bool = False,
    no_owner: bool = False,
    no_privileges: bool = False,
    use_list: Optional[str] = None,
) -> Dict[str, object]:
    """Restore ``archive`` into the existing database ``dbname``.

    A ``.dump.zst`` restored with several jobs is first decompressed into ``work_dir`` (pg_restore
    needs a seekable file for parallel jobs); with one job it streams through a pipe instead.
    Returns the commands run and the time each step took.
    """
    what = f"restoring {os.path.basename(archive)} into database '{dbname}'"
    timings: Dict[str, float] = {}
    commands: List[List[str]] = []
    if not is_piped_zstd(archive):
        argv = pg_restore_argv(tools, archive, dbname, jobs, clean, no_owner, no_privileges, use_list)
        commands.append(argv)
        started = time.monotonic()
        _restore([argv], env, what, tools)
        timings["pg_restore"] = time.monotonic() - started
        return {"commands": commands, "timings": timings}
    if jobs <= 1:
        decompress = [zstd_path(), "-dcq", archive]
        argv = pg_restore_argv(tools, "-", dbname, 1, clean, no_owner, no_privileges, use_list)
        commands.append(decompress + ["|"] + argv)
        started = time.monotonic()
        _restore([decompress, argv], env, what, tools)
        timings["pg_restore"] = time.monotonic() - started
        return {"commands": commands, "timings": timings}
    scratch = tempfile.mkdtemp(prefix=".pgdrill-work-", dir=work_dir or os.path.dirname(os.path.abspath(archive)))
    try:
        plain = os.path.join(scratch, os.path.basename(archive)[: -len(".zst")])
        decompress = [zstd_path(), "-dq", "-o", plain, archive]
        commands.append(decompress)
        started = time.monotonic()
        try:
            run(decompress, env, f"decompressing {os.path.basename(archive)}", "free space in the work directory (work_dir) or restore with jobs 1, which streams")
        except PgdrillError as exc:
            if "No space left" in str(exc.details.get("stderr", "")):
                raise PgdrillError(f"disk full decompressing {os.path.basename(archive)} into {scratch}", "free space there, set work_dir to a larger filesystem, or restore with one job, which streams") from None
            raise
        timings["decompress"] = time.monotonic() - started
        argv = pg_restore_argv(tools, plain, dbname, jobs, clean, no_owner, no_privileges, use_list)
        commands.append(argv)
        started = time.monotonic()
        _restore([argv], env, what, tools)
        timings["pg_restore"] = time.monotonic() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"commands": commands, "timings": timings}
