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

import re
import time
from typing import Any, Callable, Dict, List, Optional

from . import db, fingerprint as fp
from .config import Connection
from .errors import PgdrillError

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
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            locker.rollback()
            if time.monotonic() > deadline:
                raise PgdrillError(problem, "a long transaction holds them: retry when it has ended, or raise the lock timeout") from None
            time.sleep(0.02)


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
    "writers_held_seconds"}. With ``switch_wal`` the WAL segment holding it is closed, so that
    archiving can ship it (a drill can reach the point only once it is archived)."""
    psycopg = db._psycopg()
    from psycopg import sql

    check_point_name(name)
    lister = db.connect(connection, dbname, autocommit=True)
    locker = db.connect(connection, dbname)
    reader = db.connect(connection, dbname)
    try:
        tables = [quoted for _schema, _table, quoted in lister.execute(db.TABLES_SQL).fetchall()]
        # REPEATABLE READ takes its snapshot at the first query, which comes after the locks.
        locker.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        reader.read_only = True
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
                "connect as a superuser, or as a superuser run: GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO <role>",
            ) from None
        # Sequences are not transactional: their state is read now, while no writer can move them
        # through a locked table (a restore replays them to this value or a little past it).
        sequences = fp.sequence_rows(locker)
        reader.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        locker.commit()  # writers resume
        held = time.monotonic() - started
        fingerprint = take_fingerprint(reader, sequences=sequences)
        counts = db.count_rows(reader)
        reader.commit()
        wal_file = lister.execute("SELECT pg_walfile_name(%s::pg_lsn)", (lsn,)).fetchone()[0]
        if switch_wal:
            lister.execute("SELECT pg_switch_wal()")
        return {
            "name": name,
            "lsn": lsn,
            "wal_file": wal_file,
            "created_at": created_at,
            "fingerprint": fingerprint,
            "row_counts": counts,
            "writers_held_seconds": round(held, 3),
        }
    finally:
        for conn in (reader, locker, lister):
            conn.close()
