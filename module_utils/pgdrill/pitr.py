# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Restore points that are exact: a named point in the WAL together with the database's fingerprint
and row counts as they are at that very point, so that a point-in-time restore to it can be proved
object by object and row by row.

Writers are held back for an instant only: SHARE locks on every user table (they wait for writers
already running, and keep new ones out), a snapshot exported, the restore point written, the snapshot
imported by a second connection, then the locks released. Nothing can commit to a locked table
between the snapshot and the restore point, so both see the same rows; the fingerprint and the
counts are then taken in the imported snapshot while the application writes again."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional

from . import db, fingerprint as fp
from .config import Connection
from .errors import PgdrillError
from .fsio import ensure_private_dir, write_text

# pg_create_restore_point takes names of up to 63 bytes; pgdrill keeps them to plain words.
POINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")
LOCK_TIMEOUT_MS = 10_000


def check_point_name(name: str) -> str:
    """A restore point name: letters, digits and ``_.:-``, at most 63 characters. Pure."""
    if not isinstance(name, str) or not POINT_NAME.fullmatch(name):
        raise PgdrillError(
            f"{name!r} is not a usable restore point name",
            "use letters, digits and _ . : - (at most 63 characters), e.g. pgdrill_20261204_021500",
        )
    return name


def lock_statement(tables: List[str]) -> Optional[str]:
    """One LOCK for all of them (quoted names), or None when there is no table. Pure."""
    return f"LOCK TABLE {', '.join(tables)} IN SHARE MODE" if tables else None


SWITCH_GRANT = "connect as a superuser, or as a superuser run: GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO <role>"

# Each attempt at the locks waits at most this long: well under the server's deadlock_timeout (1 s
# by default), so a writer that waits behind pgdrill is never the one the deadlock detector aborts.
ATTEMPT_MS = 100


def _lock_briefly(locker: Any, statement: str, total_ms: int, problem: str) -> None:
    """Take the locks in short attempts, giving them all back between attempts, until ``total_ms``."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + total_ms / 1000
    while True:
        try:
            locker.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{ATTEMPT_MS}ms")))
            locker.execute(statement)  # built from quote_ident output
            return
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PgdrillError(
                f"the role may not lock the tables in SHARE mode to mark a restore point: {str(exc).strip()}",
                "connect as a superuser, or grant the role UPDATE (or DELETE or TRUNCATE) on every table",
            ) from None
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            locker.rollback()
            if time.monotonic() > deadline:
                raise PgdrillError(problem, "a long transaction holds them: retry when it has ended, or raise the lock timeout") from None
            time.sleep(0.02)


def place_point(
    connection: Connection, dbname: str, name: str, adopt: Callable[[str], Any], switch_wal: bool = True, lock_timeout_ms: int = LOCK_TIMEOUT_MS
) -> Dict[str, Any]:
    """Create restore point ``name`` with writers held back: SHARE locks on every user table, a
    snapshot exported, the restore point written, ``adopt(snapshot)`` called (a second connection
    imports the snapshot there: the only moment it can), then the locks released. Returns {"name",
    "lsn", "wal_file", "created_at", "sequences", "writers_held_seconds"}: the sequences as they
    stood at the point, for the fingerprint. The one implementation of the sequence, for ``mark``
    and for a logical backup that dumps in the point's snapshot. With ``switch_wal`` the WAL
    segment holding it is closed, so that archiving can ship it (a drill can reach the point only
    once it is archived)."""
    psycopg = db._psycopg()

    check_point_name(name)
    lister = db.connect(connection, dbname, autocommit=True)
    locker = db.connect(connection, dbname)
    try:
        tables = [quoted for _schema, _table, quoted in lister.execute(db.TABLES_SQL).fetchall()]
        # REPEATABLE READ takes its snapshot at the first query, which comes after the locks.
        locker.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        started = time.monotonic()
        statement = lock_statement(tables)
        if statement:
            _lock_briefly(
                locker, statement, lock_timeout_ms, f"could not lock the tables of {dbname} within {lock_timeout_ms / 1000:g} s to mark restore point {name}"
            )
        snapshot = locker.execute("SELECT pg_export_snapshot()").fetchone()[0]
        try:
            lsn, created_at = locker.execute(
                "SELECT pg_create_restore_point(%s)::text, to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", (name,)
            ).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            raise PgdrillError(
                f"the role may not create restore points in {dbname}",
                SWITCH_GRANT,
            ) from None
        # Sequences are not transactional: their state is read now, while no writer can move them
        # through a locked table (a restore replays them to this value or a little past it).
        sequences = fp.sequence_rows(locker)
        adopt(snapshot)
        locker.commit()  # writers resume
        held = time.monotonic() - started
        wal_file = lister.execute("SELECT pg_walfile_name(%s::pg_lsn)", (lsn,)).fetchone()[0]
        if switch_wal:
            try:
                lister.execute("SELECT pg_switch_wal()")
            except psycopg.errors.InsufficientPrivilege:
                raise PgdrillError(f"restore point {name} was created but the role may not switch the WAL segment to have it archived", SWITCH_GRANT) from None
        return {"name": name, "lsn": lsn, "wal_file": wal_file, "created_at": created_at, "sequences": sequences, "writers_held_seconds": round(held, 3)}
    finally:
        for conn in (locker, lister):
            conn.close()


def mark(
    connection: Connection,
    dbname: str,
    name: str,
    switch_wal: bool = True,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
    take_fingerprint: Callable[..., Dict[str, Any]] = fp.take,
) -> Dict[str, Any]:
    """Create restore point ``name`` and return it with the fingerprint and row counts that hold
    exactly there: {"name", "lsn", "wal_file", "created_at", "fingerprint", "row_counts",
    "writers_held_seconds"}, taken in the point's snapshot while the application writes again."""
    reader = db.connect(connection, dbname)
    try:
        point = place_point(connection, dbname, name, lambda snapshot: db.export_snapshot(reader, imported=snapshot), switch_wal, lock_timeout_ms)
        fingerprint = take_fingerprint(reader, sequences=point.pop("sequences"))
        counts = db.count_rows(reader)
        reader.commit()
    finally:
        reader.close()
    held = point.pop("writers_held_seconds")
    return {**point, "fingerprint": fingerprint, "row_counts": counts, "writers_held_seconds": held}


# Points marked on their own live in <backup_dir>/points/<name>.json: not a set, never the catalog's.
POINTS_DIR = "points"
POINT_KEYS = ("name", "lsn", "wal_file", "created_at")
# What a drill proves at the point: without them a record names a point but proves nothing.
POINT_PROOFS = ("fingerprint", "row_counts")
NAME_STAMP = "%Y%m%dT%H%M%S"
# The longest name PostgreSQL keeps for a restore point.
NAME_LIMIT = 63


def point_name(prefix: str, moment: datetime, milliseconds: bool = False) -> str:
    """``pgdrill_<prefix>_<YYYYmmddTHHMMSS>Z``, the name pgdrill gives the points it marks: a backup's
    carries its set's second, a ``mark``'s the millisecond too (``...T021500.437Z``), so the two never
    share a name (recovery would stop at the first of two). The prefix is shortened, and characters a
    name may not hold replaced, so that every prefix gives a usable name. Pure."""
    utc = moment.astimezone(timezone.utc)
    stamp = utc.strftime(NAME_STAMP) + (f".{utc.microsecond // 1000:03d}" if milliseconds else "") + "Z"
    room = NAME_LIMIT - len("pgdrill__") - len(stamp)
    return check_point_name(f"pgdrill_{re.sub(r'[^A-Za-z0-9_.:-]', '-', prefix)[:room]}_{stamp}")


def refuse_saved(backup_dir: str, name: str) -> None:
    """Refuse a name a saved point already has: recovery stops at the first point of a name, so a
    second record of it would prove the wrong instant."""
    if os.path.lexists(os.path.join(backup_dir, POINTS_DIR, check_point_name(name) + ".json")):
        raise PgdrillError(f"a restore point named {name} was already saved in {os.path.join(backup_dir, POINTS_DIR)}", "choose another name (--name)")


def save_point(backup_dir: str, record: Dict[str, Any]) -> str:
    """Write a point record as ``<backup_dir>/points/<name>.json`` (directory 0700, file 0600,
    replaced whole through a temporary file); its path."""
    directory = os.path.join(backup_dir, POINTS_DIR)
    ensure_private_dir(directory)
    name = check_point_name(record["name"]) + ".json"
    refuse_saved(backup_dir, record["name"])
    return write_text(
        directory, name, json.dumps(record, indent=2, sort_keys=True) + "\n", "the restore point record", "make the backup directory the backup user's", 0o600
    )


def load_point(path: str) -> Dict[str, Any]:
    """A point record read back, checked to hold what a drill needs."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except OSError as exc:
        raise PgdrillError(f"cannot read restore point record {path}: {exc.strerror}", "name a file written by 'pgdrill-backup mark'") from None
    except ValueError:
        raise PgdrillError(f"restore point record {path} is not JSON", "name a file written by 'pgdrill-backup mark'") from None
    missing = [key for key in POINT_KEYS if not isinstance(record, dict) or not isinstance(record.get(key), str)]
    missing += [key for key in POINT_PROOFS if not isinstance(record, dict) or not isinstance(record.get(key), dict)]
    if missing:
        raise PgdrillError(f"restore point record {path} lacks {', '.join(missing)}", "name a file written by 'pgdrill-backup mark'")
    check_point_name(record["name"])
    return record


def points(backup_dir: str) -> List[Dict[str, Any]]:
    """Every point record saved in ``backup_dir``, oldest first (by creation time)."""
    directory = os.path.join(backup_dir, POINTS_DIR)
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".json") and not name.startswith("."))
    except FileNotFoundError:
        return []
    found = [load_point(os.path.join(directory, name)) for name in names]
    return sorted(found, key=lambda record: record["created_at"])


ARCHIVER_SQL = (
    "SELECT current_setting('archive_mode'), (SELECT setting FROM pg_settings WHERE name = 'archive_command'), archived_count, failed_count, last_archived_wal, "
    "to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), last_failed_wal, "
    "to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM pg_stat_archiver"
)


def archive_failing(archive: Optional[Dict[str, Any]]) -> Optional[str]:
    """Why WAL archiving is failing now (its last failure newer than its last success), or None. Pure."""
    if not archive or not archive.get("last_failed_at"):
        return None
    if archive.get("last_archived_at") and archive["last_archived_at"] >= archive["last_failed_at"]:
        return None
    return (
        f"WAL archiving is failing: {archive.get('last_failed_wal')} failed at {archive['last_failed_at']}"
        f" and nothing was archived since ({archive.get('failed_count')} failures so far); read the server log for archive_command's error"
    )


def archiver(connection: Connection) -> Dict[str, Any]:
    """What the server says of its WAL archiving (pg_stat_archiver); an error when archiving is off."""
    conn = db.connect(connection, connection.dbname or "postgres", autocommit=True)
    try:
        mode, command, archived, failed, last_wal, last_at, failed_wal, failed_at = conn.execute(ARCHIVER_SQL).fetchone()
    finally:
        conn.close()
    # archive_command is hidden from a role without pg_read_all_settings (None): then archive_mode alone says.
    if mode == "off" or (command is not None and not command.strip()):
        raise PgdrillError(
            f"WAL archiving is off on {connection.describe()} (archive_mode = {mode}, archive_command {'set' if command else 'empty'})",
            "set archive_mode = on and archive_command to 'pgbackrest --stanza=STANZA archive-push %p' (the pgdrill_pitr role does; it needs a restart)",
        )
    return {
        "archived_count": archived,
        "failed_count": failed,
        "last_archived_wal": last_wal,
        "last_archived_at": last_at,
        "last_failed_wal": failed_wal,
        "last_failed_at": failed_at,
    }
