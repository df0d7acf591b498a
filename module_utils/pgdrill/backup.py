# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Taking one backup set: dump, globals, media, checks, manifest, then retention."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

from . import db, dirsets, encryption, fingerprint as fingerprint_mod, manifest as manifest_mod, pitr
from .backup_plan import dump_format, BackupPlan, media_command, plan_backup, sealed
from .config import DatabaseConfig
from .errors import PgdrillError
from .fsio import AtomicWriter, write_atomic
from .media import check_media_root, excluded_dir, tar_producer
from .naming import DIRECTORY_EXTENSION, dump_extension, file_name, format_stamp, parse_stamp
from .pgtools import CompressionPlan, PgTools, cross_version_note, find_zstd, server_major
from .offsite.early import EarlyUpload
from .pipeline import FedPipeline, child_env, stream
from .archives import list_archive, toc_commands, toc_entries, explained
from .series import Series, utcnow

log = logging.getLogger("pgdrill")

GLOBALS_PERMISSION_FIX = (
    "reading role passwords needs a superuser: set role_passwords = no to back up roles without "
    "passwords, set globals = no to skip them, or connect as a superuser"
)


def globals_passwords(wanted: bool, readable: bool, user: str) -> "tuple[bool, Optional[str]]":
    """Whether the globals file carries the roles' password hashes, and the line saying what was
    left out when the role may not read them (an ordinary owner of its database). Pure."""
    if wanted and not readable:
        return False, (
            f"the roles in the globals file are saved without their passwords: reading password hashes needs a superuser and {user} is not one "
            "(a restore onto a new server then needs the passwords set again); connect as a superuser to keep them, or set role_passwords = no to say so"
        )
    return wanted, None


def _unique_stamp(series: Series) -> "tuple[datetime, str]":
    """A start time whose stamp no existing file of the series uses (two runs in one second)."""
    while True:
        started = utcnow()
        stamp = format_stamp(started)
        taken = any(entry.stamp == stamp for entry in series.sets())
        if not taken:
            return started, stamp
        time.sleep(1.05 - started.microsecond / 1e6)


# pg_dump needs ACCESS SHARE locks, which only an ACCESS EXCLUSIVE lock (ALTER TABLE, DROP, TRUNCATE,
# VACUUM FULL, a migration) blocks.
LOCK_HOLDER_SQL = (
    "SELECT pid, usename, state, xact_start, left(query, 80) FROM pg_stat_activity WHERE pid IN "
    "(SELECT pid FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted AND locktype = 'relation')"
)


def lock_timeout_error(exc: PgdrillError, target: str, seconds: float) -> PgdrillError:
    """pg_dump gave up waiting for a table lock: say so, and how to find who holds it."""
    return PgdrillError(
        f"pg_dump of {target} waited more than lock_wait_timeout ({seconds:g} s) for a table lock "
        f"held by another session (a migration, a long transaction) and gave up; nothing was kept from this run",
        f"find the holder with: {LOCK_HOLDER_SQL}; let it finish or end it, then run the backup again (or raise lock_wait_timeout)",
        **exc.details,
    )


def is_lock_timeout(exc: PgdrillError) -> bool:
    text = str(exc.details.get("stderr", "")) + exc.problem
    return "lock timeout" in text or "statement timeout" in text or "could not obtain lock" in text


def conninfo_value(key: str, value: str) -> str:
    """``key='value'`` as libpq's connection strings quote it. Pure."""
    return "%s='%s'" % (key, value.replace("\\", "\\\\").replace("'", "\\'"))


def _quietly(action, what: str) -> None:
    """Run a cleanup step on a connection whose server may be gone (stopped mid-dump): its own
    failure must not hide the error that got us here."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - psycopg raises several kinds here
        log.info("%s failed during cleanup: %s", what, exc)


class RunTimeout(PgdrillError):
    """The whole run took longer than max_runtime."""


@contextmanager
def run_time_limit(seconds: float, what: str):
    """Fail the run (as any failure: partial files removed, nothing pruned) after ``seconds``.
    Uses SIGALRM, so it works only in the main thread; 0 means no limit."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):  # noqa: ARG001
        raise RunTimeout(
            f"{what} took longer than max_runtime ({seconds:g} s) and was stopped; the files of its unfinished set were removed",
            "look for what made it slow (a lock, a slow disk, a bigger database), or raise max_runtime",
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Counter(threading.Thread):
    """Counts rows in the exported snapshot while pg_dump runs, on the snapshot's own connection."""

    def __init__(self, conn) -> None:
        super().__init__(name="pgdrill-row-counts", daemon=True)
        self.conn = conn
        self.counts: Optional[Dict[str, int]] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.counts = db.count_rows(self.conn)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            self.error = exc


def _take_fingerprint(conn, target: str, sequences: Optional[List[Any]] = None) -> Optional[Dict[str, Any]]:
    """The database's fingerprint in the dump's snapshot, taken before pg_dump starts (see
    fingerprint.py); ``sequences`` as read at a restore point. A backup is never lost for it:
    without one, restores compare row counts only and say so."""
    try:
        with conn.transaction():
            return fingerprint_mod.take(conn, sequences=sequences)
    except Exception as exc:  # noqa: BLE001 - reported, and the restore says what it could not compare
        log.warning("could not take the fingerprint of %s: %s; restores of this set will compare row counts only", target, exc)
        return None


def dump_commands(plan: CompressionPlan, pg_dump: str, snapshot: str, lock_ms: int, stdbuf: Optional[str], zstd: str) -> List[List[str]]:
    """pg_dump in the exported snapshot, and the compressor after it when the plan pipes one. Pure."""
    argv = [*plan.pg_dump_prefix(stdbuf), pg_dump, "--format=custom", *plan.pg_dump_args(), f"--snapshot={snapshot}"]
    if lock_ms:
        argv.append(f"--lock-wait-timeout={lock_ms}")
    compressor = plan.compressor(zstd)
    return [argv, compressor] if compressor else [argv]


def _export_snapshot(conn, lock_ms: int, imported: Optional[str] = None) -> str:
    """Export the dump's snapshot (``imported``'s, when given); the row count waits for the same
    locks as pg_dump, so it gets the same limit."""
    snapshot = db.export_snapshot(conn, imported)
    if lock_ms:
        conn.execute(f"SET lock_timeout = {lock_ms}")
    return snapshot


def marked_snapshot(config: DatabaseConfig, conn, lock_ms: int, started: datetime) -> "tuple[str, Dict[str, Any], List[Any]]":
    """The dump's snapshot as the snapshot of a restore point marked now (pitr.place_point, whose
    snapshot ``conn`` imports and exports again for pg_dump): (snapshot, the manifest's
    ``restore_point``, the sequences as they stood at the point). A mark that fails fails the run."""
    exported: List[str] = []
    try:
        # The locks wait as long as pg_dump's would (lock_wait_timeout; 0, forever: a day, in short attempts).
        point = pitr.place_point(
            config.connection,
            config.dbname,
            pitr.point_name(config.prefix, started),
            lambda snapshot: exported.append(_export_snapshot(conn, lock_ms, snapshot)),
            lock_timeout_ms=lock_ms or 86_400_000,
        )
    except Exception as exc:  # noqa: BLE001 - a PgdrillError, or the server's own error (psycopg's)
        problem, fix = (exc.problem, exc.fix) if isinstance(exc, PgdrillError) else (str(exc).strip(), "")
        raise PgdrillError(
            f"the restore point of the backup of {config.label} could not be marked: {problem}; nothing was kept from this run",
            (f"{fix}; or" if fix else "read the server's message above, or") + " set pitr_mark = no to back up without marking restore points",
        ) from None
    record = {key: point[key] for key in ("name", "lsn", "wal_file", "created_at")}
    return exported[0], {**record, "stanza": config.pitr_stanza}, point["sequences"]


def counted_rows(counter: Optional[_Counter], target: str, lock_ms: int, lock_wait_timeout: float) -> Optional[Dict[str, int]]:
    """The row counts taken beside the dump (None when not counted), or the error that stopped them."""
    if counter is None:
        return None
    if counter.error:
        if lock_ms and "lock timeout" in str(counter.error):
            raise lock_timeout_error(PgdrillError(str(counter.error)), target, lock_wait_timeout)
        raise PgdrillError(f"counting rows of {target} failed: {counter.error}", "set row_counts = no to skip counting")
    return counter.counts


def _end_snapshot(conn, target: str) -> None:
    """End the snapshot's transaction; a server gone after the dump fails the run."""
    try:
        conn.rollback()
    except Exception as exc:  # noqa: BLE001 - the server went away after the dump
        raise PgdrillError(
            f"the connection to {target} was lost at the end of the dump: {exc}", "check that the server is running and run the backup again"
        ) from None


class BackupRun:
    """One run for one database. ``execute`` returns the result or raises PgdrillError; on failure
    every file this run wrote is removed and nothing is pruned."""

    def __init__(
        self,
        config: DatabaseConfig,
        include_db: bool = True,
        include_media: bool = False,
        plan: Optional[BackupPlan] = None,
        early: Optional[EarlyUpload] = None,
    ) -> None:
        self.early: EarlyUpload = early or EarlyUpload(None, config)  # the dump's upload beside it (S3), completed before ``after``
        self.plan = plan or plan_backup(config, include_db, include_media)
        self.config = config
        self.include_db = self.plan.include_db
        self.include_media = self.plan.include_media
        self.series = Series(config)
        self.tools = PgTools(config.pg_bin_dir)
        self.env = child_env(config.connection.libpq_env())
        self.writers: List[Any] = []  # AtomicWriter, or a directory dump's DirectoryWriter
        self.entries: List[Dict[str, Any]] = []
        self.manifest_path: Optional[str] = None
        self.role_passwords = config.role_passwords  # settled against the role's rights when the globals are taken
        self.restore_point: Optional[Dict[str, Any]] = None  # marked in the dump's snapshot (pitr_stanza, pitr_mark)
        # Every stage that writes a file of an encrypted series ends in age: no plaintext on disk.
        self.encrypt: List[List[str]] = [encryption.encrypt_argv(config.encrypt_recipients, encryption.find_age())] if config.encrypted else []

    def execute(self, wait: Optional[float] = None, after: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
        """Take the set; then ``after`` (the off-host push), still under the lock; then retention.
        When ``after`` fails the set stays and nothing is pruned: the error says the set exists."""
        with run_time_limit(self.config.max_runtime, f"the backup of {self.config.label}"), self.series.lock(wait):
            removed_temps = self.series.remove_stale_temporaries()
            for name in removed_temps:
                log.info("removed leftover partial file %s", name)
            try:
                result = self._take()
            except BaseException:
                # Once the manifest has its final name the set exists and is whole: a signal or an
                # error after that point must never take its files away from under it.
                if not (self.manifest_path and os.path.lexists(self.manifest_path)):
                    for writer in self.writers:
                        writer.discard()
                self.early.abort()  # nothing of the set on the remote either
                raise
            result["removed_temporaries"] = removed_temps
            if after is not None:
                try:
                    self.early.complete()
                    after(result)
                except PgdrillError as exc:
                    raise PgdrillError(
                        f"backup set {result['set']} is complete on this host, but {exc.problem}; nothing was pruned",
                        (exc.fix + "; " if exc.fix else "") + "the next backup run retries the upload, or run: pgdrill-backup push",
                        **{**exc.details, "result": result},
                    ) from None
            if self.config.prune_after_backup:
                result["prune"] = self.series.prune(protect=result["set"])
            return result

    def _take(self) -> Dict[str, Any]:
        config = self.config
        started, stamp = _unique_stamp(self.series)
        facts: Dict[str, Any] = {}
        client: Dict[str, Any] = {}
        compression: Dict[str, Any] = {"method": "none", "level": 0, "piped": False}
        row_counts = None
        fingerprint = None
        if self.include_db:
            facts, client, compression, row_counts, fingerprint = self._dump(stamp)
        if self.include_media:
            self._media(stamp)
        finished = utcnow()
        for writer in self.writers:
            writer.commit()
        document = manifest_mod.build(
            prefix=config.prefix,
            stamp=stamp,
            started=started,
            finished=finished,
            files=self.entries,
            database=facts,
            client=client,
            compression=compression,
            row_counts=row_counts,
            options={
                "globals": bool(self.include_db and config.globals),
                "role_passwords": self.role_passwords,
                "media_root": os.path.abspath(config.media_root) if self.include_media and config.media_root else None,
                "row_counts": config.row_counts,
            },
            host=socket.gethostname(),
            fingerprint=fingerprint,
            encryption=encryption.manifest_entry(config.encrypt_recipients) if config.encrypted else None,
            restore_point=self.restore_point,
        )
        self.manifest_path = os.path.join(config.backup_dir, manifest_mod.manifest_name(config.prefix, stamp))
        write_atomic(config.backup_dir, manifest_mod.manifest_name(config.prefix, stamp), manifest_mod.encode(document))
        log.info("backup set %s_%s_utc complete: %s", config.prefix, stamp, ", ".join(e["name"] for e in self.entries))
        return {"set": document["set"], "manifest": document, "directory": config.backup_dir}

    def _writer(self, kind: str, stamp: str, ext: str) -> AtomicWriter:
        writer = AtomicWriter(self.config.backup_dir, file_name(self.config.prefix, kind, stamp, sealed(self.config, ext)))
        self.writers.append(writer)
        return writer

    def _record(self, writer: AtomicWriter, kind: str) -> None:
        writer.close_temp()
        if self.encrypt:
            encryption.read_header(writer.temp_path)  # keyless: what was written is an intact age file
        self.entries.append({"name": writer.final_name, "kind": kind, "size": writer.size, "sha256": writer.sha256})

    def _dump(self, stamp: str):
        """The database dump, in steps: settle the client and the compression against the server,
        export a snapshot, take the fingerprint in it, stream pg_dump into the set while the row
        counts are taken in the same snapshot, check the archive; then the globals."""
        config = self.config
        target = config.connection.describe(config.dbname)
        lock_ms = int(config.lock_wait_timeout * 1000)
        conn = db.connect(config.connection, config.dbname)
        try:
            facts = db.server_facts(conn)
            client, plan = self._settle_client(conn, facts)
            sequences = None
            if config.pitr_stanza and config.pitr_mark:
                snapshot, self.restore_point, sequences = marked_snapshot(config, conn, lock_ms, parse_stamp(stamp))
            else:
                snapshot = _export_snapshot(conn, lock_ms)
            fingerprint = _take_fingerprint(conn, target, sequences)
            counter = _Counter(conn) if config.row_counts else None
            directory = self._chosen_format(conn, target) == manifest_mod.DIRECTORY_FORMAT
            if directory:
                plan = dirsets.compression_plan(config.compression, config.effective_level(), find_zstd())
                name = file_name(config.prefix, "db", stamp, DIRECTORY_EXTENSION)
                folder = dirsets.DirectoryWriter(config.backup_dir, name, plan.compressor(find_zstd() or "zstd"), self.encrypt, self.env, config.dump_jobs)
                self.writers.append(folder)
                folder.on_sealed = self.early.members(folder.temp_path, folder.final_name)
                argv = dirsets.dump_argv(client["pg_dump_path"], folder.plain_path, snapshot, config.dump_jobs, lock_ms)
                log.info("dumping %s to %s in %d jobs", target, folder.final_name, config.dump_jobs)
                dump = functools.partial(folder.dump, argv, self.env, f"pg_dump of {target}", "read pg_dump's message; nothing was kept from this run")
                self._dump_while_counting(conn, counter, dump, target, lock_ms)
            else:
                commands = dump_commands(plan, client["pg_dump_path"], snapshot, lock_ms, shutil.which("stdbuf"), find_zstd() or "zstd")
                writer = self._writer("db", stamp, dump_extension(plan.method, plan.piped))
                log.info("dumping %s to %s", target, writer.final_name)
                entries = self._dump_while_counting(
                    conn, counter, lambda: self._stream_dump(commands, writer, target, dump_extension(plan.method, plan.piped)), target, lock_ms
                )
                self._record(writer, "db")
                self.early.ended(writer)
            row_counts = counted_rows(counter, target, lock_ms, config.lock_wait_timeout)
            _end_snapshot(conn, target)
        finally:
            _quietly(conn.close, "closing the connection")
        if directory:
            entries = list_archive(self.tools, self.env, folder.plain_path, folder.final_name)
            folder.seal(f"the dump of {target}")
            self.entries.append(folder.entry())
        elif entries is None:
            entries = list_archive(self.tools, self.env, writer.temp_path, writer.final_name)
        log.info("archive check: pg_restore --list read %d entries", len(entries))
        if config.globals:
            self._globals(stamp, target)
        client["toc_entries"] = len(entries)
        compression = {"method": plan.method, "level": plan.level, "piped": plan.piped}
        return facts, client, compression, row_counts, fingerprint

    def _chosen_format(self, conn, target: str) -> str:
        """The dump's format: the configured one, or for ``auto`` the one the database's size calls for."""
        config = self.config
        if config.format != "auto":
            return config.format
        size = db.database_size(conn)
        chosen = dump_format(config.format, size, config.directory_above)
        log.info("format = auto: %s is %d bytes (directory_above = %d): a %s-format dump", target, size, config.directory_above, chosen)
        return chosen

    def _settle_client(self, conn, facts: Dict[str, Any]) -> "tuple[Dict[str, Any], CompressionPlan]":
        """The pg_dump for this server (its client facts for the manifest), the compression plan,
        and whether the globals keep the roles' passwords; every compromise is logged."""
        config = self.config
        self.tools = self.tools.for_server(server_major(facts["server_version_num"]))
        pg_dump = self.tools.path("pg_dump")
        client_major, client_version = self.tools.require_client_for("pg_dump", facts["server_version_num"], facts["server_version"])
        version_note = cross_version_note(client_major, server_major(facts["server_version_num"]))
        if version_note:
            log.warning("%s", version_note)
        plan = self.tools.compression_plan(config.compression, config.effective_level())
        if plan.note:
            log.warning("%s", plan.note)
        if config.globals:
            self.role_passwords, note = globals_passwords(config.role_passwords, db.can_read_role_passwords(conn), facts["user"])
            if note:
                log.warning("%s", note)
        return {"pg_dump_version": client_version, "pg_dump_major": client_major, "pg_dump_path": pg_dump, "toc_entries": None, "note": version_note}, plan

    def _dump_while_counting(
        self, conn, counter: Optional[_Counter], dump: Callable[[], Optional[List[str]]], target: str, lock_ms: int
    ) -> Optional[List[str]]:
        """The ``dump`` step (pg_dump into the set) while ``counter`` counts rows on the snapshot's
        own connection; a failed dump cancels the count, and a lock wait that gave up is named."""
        if counter:
            counter.start()
        try:
            return dump()
        except PgdrillError as exc:
            if counter:
                _quietly(conn.cancel, "cancelling the row count")
            if lock_ms and is_lock_timeout(exc):
                raise lock_timeout_error(exc, target, self.config.lock_wait_timeout) from None
            raise
        except BaseException:
            if counter:
                _quietly(conn.cancel, "cancelling the row count")
            raise
        finally:
            if counter:
                counter.join()

    def _stream_dump(self, commands: List[List[str]], writer: AtomicWriter, target: str, plain_ext: str) -> Optional[List[str]]:
        """pg_dump's stream into the dump file. For an encrypted series the stream is encrypted on
        its way to the file and, at the same time, read by ``pg_restore --list``: the archive check
        needs no key and no plaintext on disk. Returns the table of contents then, else None (the
        caller lists the written file)."""
        what = f"pg_dump of {target}"
        fix = "read pg_dump's message; nothing was kept from this run"
        sink = self.early.sink(writer)
        if not self.encrypt:
            stream(commands, sink, self.env, what, fix)
            return None
        chunks: List[bytes] = []
        sealer = FedPipeline(self.encrypt, sink, self.env, f"encrypting the dump of {target} with age", encryption.ENCRYPT_FAILED_FIX)
        checker = FedPipeline(
            toc_commands(self.tools, "x." + plain_ext),
            chunks.append,
            self.env,
            f"reading the archive {writer.final_name} with pg_restore --list",
            head_read=True,
        )

        def both(data: bytes) -> None:
            checker.feed(data)
            sealer.feed(data)

        try:
            stream(commands, both, self.env, what, fix)
        except BaseException:
            checker.abort()
            sealer.abort()
            raise
        sealer.close()
        try:
            checker.close()
        except PgdrillError as exc:
            raise explained(exc, self.tools) from None
        return toc_entries(b"".join(chunks).decode("utf-8", "replace"))

    def _globals(self, stamp: str, target: str) -> None:
        pg_dumpall = self.tools.path("pg_dumpall")
        # --database takes a connection string when the value holds '=': pass one, so that a
        # database named "a=b" is a name and not connection settings.
        argv = [pg_dumpall, "--globals-only", f"--database={conninfo_value('dbname', self.config.dbname)}"]
        if not self.role_passwords:
            argv.append("--no-role-passwords")
        writer = self._writer("globals", stamp, "sql")
        try:
            stream([argv, *self.encrypt], writer.write, self.env, f"pg_dumpall --globals-only for {target}")
        except PgdrillError as exc:
            if "permission denied" in str(exc.details.get("stderr", "")):
                raise PgdrillError(exc.problem, GLOBALS_PERMISSION_FIX, **exc.details) from None
            raise
        self._record(writer, "globals")

    def _media(self, stamp: str) -> None:
        config = self.config
        plan = self.plan
        root = check_media_root(config.media_root, config.backup_dir)
        for note in plan.notes:
            log.warning("%s", note)
        writer = self._writer("media", stamp, plan.media_ext())
        log.info("archiving media root %s to %s", root, writer.final_name)
        stream(
            media_command(plan.media_method, plan.media_level, plan.zstd) + self.encrypt,
            writer.write,
            self.env,
            f"archiving media root {root}",
            producer=tar_producer(
                root,
                exclude=excluded_dir(root, config.backup_dir),
                top=os.path.basename(os.path.abspath(root if not config.media_root else config.media_root).rstrip(os.sep)) or None,
            ),
        )
        self._record(writer, "media")
