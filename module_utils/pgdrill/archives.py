# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""A set's archive files and how to get at what they hold: decoding them (zstd, age), listing a
dump's table of contents, the pg_restore command lines and the restore of a dump into a database,
and reading or extracting the media archive. The archives are custom-format dumps compressed by
pg_dump itself or piped through zstd (``.dump.zst``), each optionally encrypted (``.age``).
(Restoring a whole set, with its guards and proof, is :mod:`recovery`.)"""

from __future__ import annotations

import errno
import functools
import os
import re
import time
from typing import Any, Callable, Dict, List, Optional

from .encryption import age_failure, decrypt_argv, find_age
from .errors import PgdrillError, SetDamaged
from .fsio import private_work_dir
from .media import count_members
from .pgtools import PgTools, archive_too_new, find_zstd
from .pipeline import child_env, run, run_into, stream

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
    return plain_name(path).endswith(".zst")


def is_encrypted(path: str) -> bool:
    return path.endswith(".age")


def plain_name(path: str) -> str:
    """The file's name without ``.age``: what its decrypted bytes are."""
    return path[: -len(".age")] if is_encrypted(path) else path


def require_identity(path: str, identity: Optional[str]) -> str:
    if not identity:
        raise PgdrillError(
            f"{os.path.basename(path)} is encrypted, and no age identity is configured to decrypt it",
            "set encrypt_identity_file to the secret key of one of the set's recipients (the drill or escrow key); "
            "without it, verify checks checksums and the age header only",
        )
    return identity


def decode_commands(name: str, identity: Optional[str] = None, source: Optional[str] = None, from_stdin: bool = False) -> List[List[str]]:
    """The programs that turn a file named ``name`` into what its plain extension says: ``age
    --decrypt`` for ``.age``, then ``zstd -d`` for a piped ``.zst`` (or ``gzip -d`` for a media
    archive's ``.gz``); empty when it is readable as it is. The first program reads ``source`` (default: ``name``), or with ``from_stdin`` its
    standard input."""
    source = None if from_stdin else os.path.abspath(source or name)
    commands: List[List[str]] = []
    if is_encrypted(name):
        commands.append(decrypt_argv(require_identity(name, identity), source, find_age()))
        source = None
    if is_piped_zstd(name):
        commands.append([zstd_path(), "-dcq"] + ([source] if source else []))
    elif plain_name(name).endswith(".gz"):
        commands.append(["gzip", "-dc"] + ([source] if source else []))
    return commands


def toc_commands(tools: PgTools, name: str, identity: Optional[str] = None, verbose: bool = False) -> List[List[str]]:
    """The programs that read a dump's table of contents from their standard input."""
    return decode_commands(name, identity, from_stdin=True) + [[tools.path("pg_restore"), "--list"] + (["--verbose"] if verbose else [])]


def toc_entries(text: str) -> List[str]:
    """The entries of a ``pg_restore --list`` listing, comment lines dropped. Pure."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith(";")]


def list_archive(tools: PgTools, env: Dict[str, str], path: str, final_name: Optional[str] = None, identity: Optional[str] = None) -> List[str]:
    """The archive's table of contents as pg_restore --list prints it (comment lines dropped).
    ``final_name`` gives the format when ``path`` is still a temporary file."""
    return toc_entries(read_toc(tools, env, path, final_name, identity=identity))


def read_toc(tools: PgTools, env: Dict[str, str], path: str, final_name: Optional[str] = None, verbose: bool = False, identity: Optional[str] = None) -> str:
    """``pg_restore --list`` of an archive (``--verbose`` adds each entry's dependencies). An
    encrypted archive is decrypted on the way, with ``identity``: a head read, which proves the
    table of contents only (the manifest's sha256 proves the whole file)."""
    name = final_name or os.path.basename(path)
    what = f"reading the archive {name} with pg_restore --list"
    flags = ["--list"] + (["--verbose"] if verbose else [])
    try:
        decode = decode_commands(name, identity, source=path)
        if decode:
            chunks: List[bytes] = []
            stream([*decode, [tools.path("pg_restore"), *flags]], chunks.append, env, what, head_read=True)
            return b"".join(chunks).decode("utf-8", "replace")
        return run([tools.path("pg_restore"), *flags, path], env, what).stdout
    except PgdrillError as exc:
        raise explained(exc, tools, identity) from None


def explained(exc: PgdrillError, tools: PgTools, identity: Optional[str] = None) -> PgdrillError:
    """pg_restore's (and age's) cryptic failures, with the problem and the fix."""
    stderr = str(exc.details.get("stderr", ""))
    if "age: error:" in stderr or ": age " in exc.problem:
        subject = exc.problem.split(" failed:")[0]
        return age_failure(stderr, identity, subject.replace("reading the archive ", "").replace("restoring ", ""), subject, exc.details)
    if "unsupported version" in stderr and "file header" in stderr:
        error = archive_too_new(None, f"pg_restore ({tools.path('pg_restore')})")
        return PgdrillError(f"{exc.problem}: {error.problem}", error.fix, **exc.details)
    missing_role = re.search(r'ERROR:\s+role "((?:[^"]|"")+)" does not exist', stderr)
    if missing_role:
        return PgdrillError(
            f'{exc.problem.split(":")[0]}: role "{missing_role.group(1)}" does not exist on this server, and the archive gives it objects or privileges',
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
    damage = archive_damage(stderr)
    if damage:
        return SetDamaged(
            f"{exc.problem.split(':')[0]}: the archive itself is damaged ({damage})", "use another set or another copy (local or remote)", **exc.details
        )
    return exc


# What pg_restore and zstd say when the bytes of an archive are bad (not the server, the key or a tool).
ARCHIVE_DAMAGE = re.compile(
    r"did not find magic string in file header|input file is too short|input file does not appear to be a valid archive"
    r"|could not read (?:from )?input file: end of file|unexpected end of file|could not uncompress data|corrupt(?:ed)? (?:data|block|input)"
    r"|invalid (?:block|stored block lengths|distance too far back|code lengths set)|Data corruption detected|Unknown frame descriptor"
    r"|Restored data doesn't match checksum|premature end|truncated input|could not find header for file|unrecognized data block type",
    re.IGNORECASE,
)


def archive_damage(stderr: str) -> Optional[str]:
    """The line of ``stderr`` that proves an archive's own bytes bad, or None. Pure."""
    for line in stderr.splitlines():
        if ARCHIVE_DAMAGE.search(line):
            return line.strip()
    return None


def read_media(path: str, identity: Optional[str] = None) -> int:
    """Read a media archive end to end (decrypting it with ``identity`` when it is encrypted);
    returns its member count."""
    name = os.path.basename(path)
    decode = decode_commands(name, identity, source=path)
    if not decode:
        with open(path, "rb") as raw:
            return count_members(raw)
    counted: List[int] = []

    def consume(stdout) -> None:  # noqa: ANN001 - a pipe
        counted.append(count_members(stdout))
        while stdout.read(1 << 20):
            pass

    try:
        run_into(decode, consume, child_env(), f"reading the media archive {name}")
    except PgdrillError as exc:
        raise explained(exc, PgTools(None), identity) from None
    return counted[0]


def read_small(path: str, identity: Optional[str] = None, limit: int = 64 << 20) -> bytes:
    """A small file of a set (the globals), decrypted in memory when it is encrypted: its
    plaintext never touches the disk. Refuses more than ``limit`` bytes."""
    decode = decode_commands(os.path.basename(path), identity, source=path)
    if not decode:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    else:
        chunks: List[bytes] = []
        try:
            stream(decode, chunks.append, child_env(), f"decrypting {os.path.basename(path)}")
        except PgdrillError as exc:
            raise explained(exc, PgTools(None), identity) from None
        data = b"".join(chunks)
    if len(data) > limit:
        raise PgdrillError(
            f"{os.path.basename(path)} is larger than {limit >> 20} MiB, which no globals file is", "check the set: this file is not what it should be"
        )
    return data


# The first component of every member name (the media root's own name) becomes "."; S: symbolic
# link targets are not names in the archive and stay as they were.
MEDIA_TOP_AS_DESTINATION = "--transform=s,^[^/]*,.,S"


def extract_media(path: str, destination: str, identity: Optional[str] = None) -> Dict[str, object]:
    """Unpack a media archive into ``destination``, which must be missing or empty: a media
    restore never overwrites files. ``destination`` becomes what the media root was: the archive's
    top directory (the root, under its own name) is unpacked as ``destination`` itself, with its
    mode, and everything under it directly inside. The archive is read whole first and every
    member checked (media.member_problem: no absolute or ``..`` path, no device or pipe, no hard
    link outside it, nothing under a link), so a crafted archive is refused by member before
    anything is written; then GNU tar extracts it and restores links as links (their targets are
    left as they were)."""
    name = os.path.basename(path)
    if os.path.lexists(destination) and (not os.path.isdir(destination) or os.path.islink(destination) or os.listdir(destination)):
        raise PgdrillError(
            f"{destination} exists and is not an empty directory; a media restore never overwrites files",
            "restore into a new or empty directory, then move it into place",
        )
    read_media(path, identity)
    os.makedirs(destination, mode=0o700, exist_ok=True)
    decode = decode_commands(name, identity, source=path)
    tar = [
        "tar",
        "--extract",
        "--file=-" if decode else f"--file={os.path.abspath(path)}",
        f"--directory={destination}",
        "--no-same-owner",
        "--delay-directory-restore",
        MEDIA_TOP_AS_DESTINATION,
    ]
    started = time.monotonic()
    try:
        stream([*decode, tar], lambda data: None, child_env(), f"restoring the media archive {name} into {destination}", "read tar's message")
    except PgdrillError as exc:
        raise explained(exc, PgTools(None), identity) from None
    return {
        "archive": name,
        "destination": destination,
        "seconds": round(time.monotonic() - started, 3),
        "command": [word for stage in decode for word in stage + ["|"]] + tar,
    }


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


def _restore(argvs: List[List[str]], env: Dict[str, str], what: str, tools: PgTools, identity: Optional[str] = None) -> None:
    fix = "read pg_restore's message; --exit-on-error stopped at the first error"
    try:
        if len(argvs) == 1:
            run(argvs[0], env, what, fix)
        else:
            stream(argvs, lambda chunk: None, env, what, fix)
    except PgdrillError as exc:
        raise explained(exc, tools, identity) from None


DECODE_FIX = "free space in the work directory (work_dir), set work_dir to a larger filesystem, or restore with one job, which streams"


def decode_into(
    fd: int, decode: List[List[str]], env: Dict[str, str], archive: str, scratch: str, tools: PgTools, identity: Optional[str], fix: str = DECODE_FIX
) -> None:
    """Decode ``archive`` through ``decode`` into the open file ``fd``; disk full is named."""

    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    try:
        stream(decode, write_all, env, f"decoding {os.path.basename(archive)}", fix)
    except OSError as exc:
        full = exc.errno == errno.ENOSPC
        raise PgdrillError(
            f"disk full decoding {os.path.basename(archive)} into {scratch}" if full else f"cannot write the decoded archive into {scratch}: {exc.strerror}",
            fix,
        ) from None
    except PgdrillError as exc:
        if "No space left" in exc.message or "No space left" in str(exc.details.get("stderr", "")):
            raise PgdrillError(f"disk full decoding {os.path.basename(archive)} into {scratch}", fix) from None
        raise explained(exc, tools, identity) from None


def restore_route(needs_decoding: bool, jobs: int) -> str:
    """How an archive reaches pg_restore: read as it is (``direct``), decoded on the way into one job
    (``stream``), or, for parallel jobs, decoded first into a seekable work file (``work_file``). Pure."""
    if not needs_decoding:
        return "direct"
    if jobs <= 1:
        return "stream"
    return "work_file"


def pipeline_words(stages: List[List[str]]) -> List[str]:
    """A pipeline's programs as one word list, each followed by ``|`` (the record's shape). Pure."""
    return [word for stage in stages for word in stage + ["|"]]


def _timed(timings: Dict[str, float], step: str, action: Callable[[], None]) -> None:
    started = time.monotonic()
    action()
    timings[step] = time.monotonic() - started


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
    identity: Optional[str] = None,
) -> Dict[str, Any]:
    """Restore ``archive`` into the existing database ``dbname``.

    An archive pg_restore cannot read as it is (``.dump.zst``, or encrypted ``.age``) streams
    through its decoders into one pg_restore job; with several jobs it is first decoded into
    ``work_dir`` (pg_restore needs a seekable file for parallel jobs), and that file is removed
    afterwards whatever happens. Returns the commands run and the time each step took.
    """
    what = f"restoring {os.path.basename(archive)} into database '{dbname}'"
    argv_for = functools.partial(pg_restore_argv, tools, dbname=dbname, clean=clean, no_owner=no_owner, no_privileges=no_privileges, use_list=use_list)
    decode = decode_commands(os.path.basename(archive), identity, source=archive)
    timings: Dict[str, float] = {}
    route = restore_route(bool(decode), jobs)
    if route == "work_file":
        return _restore_from_work_file(decode, functools.partial(argv_for, jobs=jobs), env, archive, work_dir, what, tools, identity)
    if route == "stream":
        argv = argv_for("-", jobs=1)
        _timed(timings, "pg_restore", lambda: _restore([*decode, argv], env, what, tools, identity))
        return {"commands": [pipeline_words(decode) + argv], "timings": timings}
    argv = argv_for(archive, jobs=jobs)
    _timed(timings, "pg_restore", lambda: _restore([argv], env, what, tools))
    return {"commands": [argv], "timings": timings}


def _restore_from_work_file(
    decode: List[List[str]],
    argv_for: Callable[[str], List[str]],
    env: Dict[str, str],
    archive: str,
    work_dir: Optional[str],
    what: str,
    tools: PgTools,
    identity: Optional[str],
) -> Dict[str, Any]:
    """Parallel jobs need a seekable file: the plaintext is decoded into a file unlinked as soon as it
    is made, in a private work directory; pg_restore reads it through this process's open
    descriptor, so a run killed with -9 leaves no plaintext behind (and its empty directory goes
    with the next run)."""
    timings: Dict[str, float] = {}
    with private_work_dir(work_dir or os.path.dirname(os.path.abspath(archive)), "work") as scratch:
        plain = os.path.join(scratch, "archive.dump")
        fd = os.open(plain, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.unlink(plain)
            _timed(timings, "decode", lambda: decode_into(fd, decode, env, archive, scratch, tools, identity))
            argv = argv_for(f"/proc/{os.getpid()}/fd/{fd}")
            _timed(timings, "pg_restore", lambda: _restore([argv], env, what, tools))
        finally:
            os.close(fd)
    return {"commands": [pipeline_words(decode)[:-1], argv], "timings": timings}
