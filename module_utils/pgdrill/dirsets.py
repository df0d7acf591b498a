# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Directory-format sets (``format = directory``): the database dump as ``pg_dump --format=directory
--jobs=N --compress=0`` writes it, kept as one directory of the set, ``<prefix>_db_<stamp>_utc.dir``.

The dump is written into a hidden partial directory (``.<final name>.part-<token>``, 0700) that
never carries a final name: pg_dump writes into its ``.plain`` subdirectory; each file is compressed
with zstd (``.zst``) and, in an encrypted series, encrypted with age (``.age``), one by one, into the
partial directory itself, with its sha256 and size: a table's file as soon as pg_dump says it is
finished, while the others are still being dumped, the rest after pg_dump ends; every file is synced, the plain
copy goes, and one rename gives the directory its final name. The manifest, written after that,
lists the directory as one entry of kind db with every member (manifest.members_problem). Reading it
back decodes the members into a private work directory, where ``pg_restore --jobs=N`` reads them.
A set brought from elsewhere (the off-host copy, another host) arrives the same way: every member
checked into a hidden partial directory that one rename names (:func:`receive`).
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import stat
import subprocess
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, Callable, Dict, List, Optional, cast

from . import encryption, manifest as manifest_mod, verdict
from .archives import decode_commands, decode_into, explained, pg_restore_argv, toc_entries
from .errors import PgdrillError
from .fsio import DIR_MODE, FILE_MODE, NOFOLLOW, AtomicWriter, fsync_dir, os_error, owner_for_new_files, private_work_dir, sha256_of
from .naming import temp_prefix
from .pgtools import CompressionPlan, PgTools
from .pipeline import describe_rc, last_line, run, stream

PLAIN_DIR = ".plain"


def is_directory(entry: Optional[Dict[str, Any]]) -> bool:
    """Is this manifest entry a directory-format dump? Pure."""
    return bool(entry) and (entry or {}).get("format") == manifest_mod.DIRECTORY_FORMAT


def compression_plan(method: str, level: int, zstd: Optional[str]) -> CompressionPlan:
    """How a directory dump's files are compressed: zstd, one file at a time, or not at all. Pure."""
    if method == "none":
        return CompressionPlan("none", 0, False, "")
    if method != "zstd":
        raise PgdrillError(f"a directory-format dump compresses with zstd, not {method}", "set compression = zstd (or none), or format = custom")
    if not zstd:
        raise PgdrillError("zstd is not installed, and a directory-format dump compresses each file with it", "install zstd, or set compression = none")
    return CompressionPlan("zstd", level, True, "")


def dump_argv(pg_dump: str, out_dir: str, snapshot: str, jobs: int, lock_ms: int) -> List[str]:
    """pg_dump writing the directory format in ``jobs`` parallel jobs, inside the exported snapshot. Pure."""
    argv = [pg_dump, "--format=directory", f"--jobs={jobs}", "--compress=0", f"--snapshot={snapshot}", f"--file={out_dir}"]
    if lock_ms:
        argv.append(f"--lock-wait-timeout={lock_ms}")
    return argv


# pg_dump --verbose in parallel mode says "finished item <dump id> TABLE DATA <table>" once a worker has
# written and closed that table's file, <dump id>.dat; every other line of it is progress.
FINISHED = re.compile(r"finished item (\d+) TABLE DATA ")
PROGRESS = re.compile(r"^pg_dump: (?!error|warning|detail|hint)[a-z]")


def finished_file(line: str) -> Optional[str]:
    """The file a pg_dump --verbose line says is whole, or None. Pure."""
    found = FINISHED.search(line)
    return f"{found.group(1)}.dat" if found else None


def member_path(directory: str, member: str) -> str:
    """A member's path relative to the backup directory, ``<dir>/<member>``: where it lies on a host, and its
    object's name on the off-host copy. Pure."""
    return f"{directory}/{member}"


def entry_objects(entry: Dict[str, Any]) -> List["tuple[str, Dict[str, Any]]"]:
    """The objects a manifest entry is on the off-host copy, each with what the manifest lists for it
    (sha256, size): the file itself, or each member of a directory-format dump. Pure."""
    if is_directory(entry):
        return [(member_path(entry["name"], member["name"]), member) for member in entry["members"]]
    return [(entry["name"], entry)]


def member_name(plain: str, compressed: bool, encrypted: bool) -> str:
    """A member's name in the set: pg_dump's, then ``.zst``, then ``.age``. Pure."""
    return plain + (".zst" if compressed else "") + (".age" if encrypted else "")


def listing(path: str) -> Dict[str, int]:
    """The entries of a set's directory: name -> size, -1 for anything not a regular file."""
    found = {}
    for name in os.listdir(path):
        info = os.lstat(os.path.join(path, name))
        found[name] = info.st_size if stat.S_ISREG(info.st_mode) else -1
    return found


def member_problems(directory: str, listed: List[Dict[str, Any]], present: Dict[str, int]) -> List[str]:
    """What is wrong with a directory's members from their stat alone: missing, extra, another size. Pure."""
    wanted = {member["name"]: member["size"] for member in listed}
    found = [f"{directory}/{name} is missing" for name in sorted(wanted) if name not in present]
    found += [f"{directory}/{name} is not in the manifest" for name in sorted(present) if name not in wanted]
    for name, size in sorted(wanted.items()):
        if present.get(name, size) < 0:
            found.append(f"{directory}/{name} is not a regular file (a link, a directory)")
        elif present.get(name, size) != size:
            found.append(f"{directory}/{name} is {present[name]} bytes, the manifest says {size}")
    return found


class DirectoryWriter:
    """A directory dump on its way: the AtomicWriter protocol (``commit``, ``discard``) for a
    directory. Nothing of it carries a final name before :meth:`commit`. Its files are compressed
    (``compressor``) and encrypted (``encrypt``) by ``jobs`` threads, each as soon as it is whole."""

    def __init__(self, directory: str, final_name: str, compressor: Optional[List[str]], encrypt: List[List[str]], env: Dict[str, str], jobs: int) -> None:
        self.directory = directory
        self.final_name = final_name
        self.temp_path = os.path.join(directory, temp_prefix(final_name) + secrets.token_hex(4))
        self.final_path = os.path.join(directory, final_name)
        self.plain_path = os.path.join(self.temp_path, PLAIN_DIR)
        self.members: List[Dict[str, Any]] = []
        self.committed = False
        self._sealing: Dict[str, "Future[Dict[str, Any]]"] = {}
        self._seal = functools.partial(self._seal_one, compressor=compressor, encrypt=encrypt, env=env)
        self.on_sealed: Optional[Callable[[Dict[str, Any]], None]] = None  # given each member once sealed (its upload beside the dump)
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pgdrill-seal")
        make_partial(directory, self.temp_path)

    def dump(self, argv: List[str], env: Dict[str, str], what: str, fix: str) -> None:
        """Run pg_dump (``argv``, writing into the plain directory) with --verbose: each table's file
        is sealed as soon as pg_dump says it is finished, while the others are still being written."""
        proc = subprocess.Popen([*argv, "--verbose"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, close_fds=True)
        said: List[str] = []
        try:
            for raw in cast(IO[bytes], proc.stderr):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                name = finished_file(line)
                if name and os.path.isfile(os.path.join(self.plain_path, name)):
                    self._start(name)
                elif not PROGRESS.search(line):
                    said.append(line)  # what is not progress: the warnings and errors
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0:
            stderr = "\n".join(said[-60:])
            raise PgdrillError(f"{what} failed: pg_dump {describe_rc(rc)}: {last_line(stderr)}", fix, rc=rc, stderr=stderr, cmd=list(argv))

    def _start(self, name: str) -> None:
        if name not in self._sealing:
            self._sealing[name] = self._pool.submit(self._seal_and_hand_over, name)

    def _seal_and_hand_over(self, name: str) -> Dict[str, Any]:
        member = self._seal(name)
        if self.on_sealed is not None:
            self.on_sealed(member)
        return member

    def seal(self, what: str) -> None:
        """Seal every file not sealed yet (the table of contents, large objects), wait for all, each
        synced with its sha256 and size; then the plain directory goes."""
        for name in sorted(os.listdir(self.plain_path)):
            self._start(name)
        try:
            self.members = [future.result() for future in self._sealing.values()]
        except PgdrillError as exc:
            raise PgdrillError(f"{what}: {exc.problem}", exc.fix, **exc.details) from None
        finally:
            self._pool.shutdown(wait=True)
        os.rmdir(self.plain_path)
        fsync_dir(self.temp_path)

    def _seal_one(self, name: str, compressor: Optional[List[str]], encrypt: List[List[str]], env: Dict[str, str]) -> Dict[str, Any]:
        source = os.path.join(self.plain_path, name)
        final = member_name(name, compressor is not None, bool(encrypt))
        if compressor is None and not encrypt:
            os.chmod(source, FILE_MODE)
            os.rename(source, os.path.join(self.temp_path, final))
            with open(os.path.join(self.temp_path, final), "rb") as handle:
                os.fsync(handle.fileno())
            digest, size = sha256_of(os.path.join(self.temp_path, final))
            return {"name": final, "size": size, "sha256": digest}
        commands = [[*compressor, source], *encrypt] if compressor else [[*encrypt[0], source]]
        with AtomicWriter(self.temp_path, final) as writer:
            stream(commands, writer.write, env, f"sealing {name}", "read the message; nothing was kept from this run")
            writer.commit()
        if encrypt:
            encryption.read_header(writer.final_path)  # keyless: what was written is an intact age file
        os.unlink(source)
        return {"name": final, "size": writer.size, "sha256": writer.sha256}

    def entry(self) -> Dict[str, Any]:
        """The manifest's entry for the directory."""
        members = sorted(self.members, key=lambda member: member["name"])
        return {
            "name": self.final_name,
            "kind": "db",
            "format": manifest_mod.DIRECTORY_FORMAT,
            "size": sum(member["size"] for member in members),
            "sha256": manifest_mod.members_digest(members),
            "members": members,
        }

    def commit(self) -> str:
        """One rename gives the whole directory its final name; never over anything."""
        finish_partial(self.directory, self.temp_path, self.final_path)
        self.committed = True
        return self.final_path

    def discard(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)  # no sealing thread writes into what goes
        shutil.rmtree(self.final_path if self.committed else self.temp_path, ignore_errors=True)
        self.committed = False


def make_partial(directory: str, partial: str) -> None:
    """A hidden partial directory (0700, owned as the directory's new files are)."""
    try:
        os.mkdir(partial, DIR_MODE)
        os.chmod(partial, DIR_MODE)
        owner = owner_for_new_files(directory)
        if owner is not None:
            os.chown(partial, owner, -1)
    except OSError as exc:
        raise os_error(exc, "create a directory in", directory) from None


def finish_partial(directory: str, partial: str, final: str) -> None:
    """One rename gives a partial directory its final name, never over anything; then both are synced."""
    if os.path.lexists(final):
        raise PgdrillError(f"{final} already exists; pgdrill never overwrites a backup file")
    fsync_dir(partial)
    try:
        os.rename(partial, final)
    except OSError as exc:
        raise os_error(exc, "rename to", final) from None
    fsync_dir(directory)


def receive(directory: str, entry: Dict[str, Any], fetch: Callable[[Dict[str, Any], AtomicWriter], None]) -> str:
    """Bring a directory-format dump into ``directory`` from elsewhere (a remote, another host):
    ``fetch`` writes each member of the manifest's ``entry`` into its writer, checking it against
    the member's sha256 and size, into a hidden partial directory, which gets the final name by
    one rename only when every member is there, never over anything (the caller refuses a
    destination that exists before fetching). On any failure the partial directory goes."""
    final = os.path.join(directory, entry["name"])
    partial = os.path.join(directory, temp_prefix(entry["name"]) + secrets.token_hex(4))
    make_partial(directory, partial)
    try:
        for member in entry["members"]:
            with AtomicWriter(partial, member["name"]) as writer:
                fetch(member, writer)
                writer.commit()
        finish_partial(directory, partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


# --- reading a directory set ---------------------------------------------------------------------
def check_members(path: str, entry: Dict[str, Any]) -> Dict[str, Any]:
    """Every member's sha256 and size against the manifest; a missing, extra or changed file fails naming it."""
    name = f"checksum {entry['name']}"
    try:
        present = listing(path)
    except OSError as exc:
        return verdict.check(name, False, f"could not verify: cannot read the directory: {exc.strerror}", blame=verdict.BLAME_ENVIRONMENT)
    bad = member_problems(entry["name"], entry["members"], present)
    for member in entry["members"]:
        if present.get(member["name"]) == member["size"]:
            try:
                digest, _ = sha256_of(os.path.join(path, member["name"]))
            except OSError as exc:
                return verdict.check(name, False, f"could not verify: cannot read {member['name']}: {exc.strerror}", blame=verdict.BLAME_ENVIRONMENT)
            if digest != member["sha256"]:
                bad.append(f"{entry['name']}/{member['name']}: sha256 does not match the manifest: the file is corrupted")
    if bad:
        return verdict.check(name, False, "; ".join(bad[:10]) + (f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""))
    return verdict.check(name, True, f"sha256 and size of all {len(entry['members'])} files ({entry['size']} bytes) match")


def header_check(path: str, entry: Dict[str, Any]) -> Dict[str, Any]:
    """Keyless: each encrypted member starts with an intact age header."""
    sealed = [member["name"] for member in entry["members"] if member["name"].endswith(".age")]
    for member in sealed:
        try:
            encryption.read_header(os.path.join(path, member))
        except PgdrillError as exc:
            return verdict.failed_check(f"age headers {entry['name']}", exc)
    return verdict.check(f"age headers {entry['name']}", True, f"{len(sealed)} files, each an intact age file")


def _decode_member(source: str, member: str, out_dir: str, identity: Optional[str], env: Dict[str, str], tools: PgTools) -> None:
    fd = os.open(
        os.path.join(out_dir, manifest_mod.plain_member(member)), os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_CLOEXEC", 0), FILE_MODE
    )
    try:
        decode = decode_commands(member, identity, source=os.path.join(source, member))
        decode_into(fd, decode, env, member, out_dir, tools, identity, "free space in the work directory (work_dir), or set work_dir to a larger filesystem")
    finally:
        os.close(fd)


def decode_members(source: str, members: List[str], out_dir: str, identity: Optional[str], env: Dict[str, str], tools: PgTools, jobs: int) -> None:
    """Decode ``members`` of the directory ``source`` into ``out_dir``, ``jobs`` at a time."""
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pgdrill-decode") as pool:
        list(pool.map(lambda member: _decode_member(source, member, out_dir, identity, env, tools), members))


def needs_decoding(entry: Dict[str, Any]) -> bool:
    return any(manifest_mod.plain_member(member["name"]) != member["name"] for member in entry["members"])


def list_toc(tools: PgTools, env: Dict[str, str], path: str, entry: Dict[str, Any], identity: Optional[str], work_dir: Optional[str]) -> List[str]:
    """The dump's table of contents (``pg_restore --list``, comment lines dropped)."""
    return toc_entries(read_toc(tools, env, path, entry, identity, work_dir))


def read_toc(
    tools: PgTools, env: Dict[str, str], path: str, entry: Dict[str, Any], identity: Optional[str], work_dir: Optional[str], verbose: bool = False
) -> str:
    """``pg_restore --list`` of the dump (``--verbose`` adds each entry's dependencies), read from its
    decoded toc.dat alone."""
    what = f"reading the archive {entry['name']} with pg_restore --list"
    flags = ["--list"] + (["--verbose"] if verbose else [])
    try:
        if not needs_decoding(entry):
            return run([tools.path("pg_restore"), *flags, path], env, what).stdout
        toc = [member["name"] for member in entry["members"] if manifest_mod.plain_member(member["name"]) == manifest_mod.TOC_MEMBER]
        with private_work_dir(work_dir or os.path.dirname(path), "work") as scratch:
            decode_members(path, toc, scratch, identity, env, tools, 1)
            return run([tools.path("pg_restore"), *flags, scratch], env, what).stdout
    except PgdrillError as exc:
        raise explained(exc, tools, identity) from None


def restore(
    tools: PgTools,
    env: Dict[str, str],
    path: str,
    entry: Dict[str, Any],
    dbname: str,
    jobs: int,
    work_dir: Optional[str],
    identity: Optional[str],
    flags: Dict[str, bool],
    use_list: Optional[str] = None,
) -> Dict[str, Any]:
    """Restore a directory dump into ``dbname``: its members decoded into a private work directory
    (removed afterwards whatever happens), then ``pg_restore --jobs`` from there (``--use-list`` for
    a partial restore); a directory whose members need no decoding is read where it lies. Returns
    the commands and each step's time."""
    what = f"restoring {entry['name']} into database '{dbname}'"
    fix = "read pg_restore's message; --exit-on-error stopped at the first error"
    timings: Dict[str, float] = {}
    if not needs_decoding(entry):
        argv = pg_restore_argv(tools, path, dbname, jobs=jobs, use_list=use_list, **flags)
        started = time.monotonic()
        _run_restore(argv, env, what, fix, tools, identity)
        return {"commands": [argv], "timings": {"pg_restore": time.monotonic() - started}}
    with private_work_dir(work_dir or os.path.dirname(path), "work") as scratch:
        plain = os.path.join(scratch, "dump")
        os.mkdir(plain, DIR_MODE)
        started = time.monotonic()
        decode_members(path, [member["name"] for member in entry["members"]], plain, identity, env, tools, jobs)
        timings["decode"] = time.monotonic() - started
        argv = pg_restore_argv(tools, plain, dbname, jobs=jobs, use_list=use_list, **flags)
        started = time.monotonic()
        _run_restore(argv, env, what, fix, tools, identity)
        timings["pg_restore"] = time.monotonic() - started
    toc = next(member["name"] for member in entry["members"] if manifest_mod.plain_member(member["name"]) == manifest_mod.TOC_MEMBER)
    decode = [word for stage in decode_commands(toc, identity, source=os.path.join(path, toc)) for word in [*stage, "|"]][:-1]
    return {"commands": [decode, argv], "timings": timings}  # the decode of each member, as of toc.dat


def _run_restore(argv: List[str], env: Dict[str, str], what: str, fix: str, tools: PgTools, identity: Optional[str]) -> None:
    try:
        run(argv, env, what, fix)
    except PgdrillError as exc:
        raise explained(exc, tools, identity) from None
