# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Live connections through psycopg 3: server facts, snapshots, row counts, scratch databases.

psycopg is imported only here and only when a function is called, so the parts of the engine that
need no connection (naming, retention, listing, pruning) run without it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from .config import Connection
from .errors import PgdrillError

CONNECT_TIMEOUT = 15
PASSWORD_FIX = (
    "put a line host:port:database:user:password for it in the backup user's .pgpass (mode 0600), "
    "or set passfile in the config; check the user name and that pg_hba.conf allows it"
)


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise PgdrillError(
            "psycopg 3 is not installed for this Python",
            "install it: 'apt install python3-psycopg' (Debian 12+/Ubuntu 24.04+) or 'pip install \"psycopg[binary]\"'",
        ) from None
    return psycopg


def classify_connect_error(text: str, target: str) -> PgdrillError:
    """Turn libpq's message into a problem and a fix. Pure."""
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    lowered = text.lower()
    if "password authentication failed" in lowered or "authentication failed" in lowered:
        return PgdrillError(f"authentication failed for {target}: {first}", PASSWORD_FIX)
    if "no password supplied" in lowered:
        return PgdrillError(f"no password was available for {target}", PASSWORD_FIX)
    match = re.search(r'database "([^"]+)" does not exist', text)
    if match:
        return PgdrillError(
            f"database '{match.group(1)}' does not exist ({target})",
            "create it, or correct dbname in the pgdrill config (or PGDATABASE)",
        )
    match = re.search(r'role "([^"]+)" does not exist', text)
    if match:
        return PgdrillError(f"role '{match.group(1)}' does not exist ({target})", "correct 'user' in the pgdrill config (or PGUSER), or create the role")
    if any(
        marker in lowered
        for marker in (
            "connection refused",
            "no such file or directory",
            "could not translate host name",
            "timeout expired",
            "could not connect",
            "network is unreachable",
        )
    ):
        return PgdrillError(
            f"cannot reach the PostgreSQL server for {target}: {first}",
            "check that PostgreSQL is running and that host and port (config or PGHOST/PGPORT) point at it",
        )
    return PgdrillError(f"cannot connect to {target}: {first}", "check the connection settings in the pgdrill config")


def connect_defaults(environ: Mapping[str, str]) -> Dict[str, object]:
    """pgdrill's own connect_timeout and application_name, unless the environment sets them (a
    Django project's DATABASES OPTIONS arrive as PGCONNECT_TIMEOUT, PGAPPNAME): libpq's environment
    counts for less than a keyword, so a keyword here would silently override them. Pure."""
    defaults: Dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "pgdrill"}
    return {key: value for key, value in defaults.items() if not environ.get(LIBPQ_VARIABLES[key])}


LIBPQ_VARIABLES = {"connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME"}


def connect(connection: Connection, dbname: Optional[str] = None, autocommit: bool = False):
    psycopg = _psycopg()
    try:
        return psycopg.connect(autocommit=autocommit, **connect_defaults(os.environ), **connection.psycopg_kwargs(dbname))
    except psycopg.OperationalError as exc:
        raise classify_connect_error(str(exc), connection.describe(dbname)) from None


MAINTENANCE_DATABASES = ("postgres", "template1")


def connect_maintenance(connection: Connection, preferred: str) -> Tuple[Any, str]:
    """An autocommit connection for creating and dropping a scratch database, and the database it is
    in: ``preferred`` (the configured one, which a role without superuser can reach), else, when
    that database does not exist (a new host after a disaster: a scratch restore must not need it),
    postgres or template1. Any other failure is raised as it is."""
    missing: Optional[PgdrillError] = None
    for name in dict.fromkeys((preferred, *MAINTENANCE_DATABASES)):
        try:
            return connect(connection, name, autocommit=True), name
        except PgdrillError as exc:
            if f"database '{name}' does not exist" not in exc.message:
                raise
            missing = missing or exc
    raise missing or PgdrillError(f"none of {preferred}, {', '.join(MAINTENANCE_DATABASES)} can be reached", "create one of them")


def server_facts(conn) -> Dict[str, Any]:
    """Version, encoding and locale of the connected database, in one version-independent query."""
    row = conn.execute(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
        " pg_encoding_to_char(d.encoding), to_jsonb(d), current_user"
        " FROM pg_database d WHERE d.datname = current_database()"
    ).fetchone()
    version, version_num, encoding, raw, user = row
    facts = {
        "name": raw["datname"],
        "server_version": version.split()[0],
        "server_version_num": version_num,
        "encoding": encoding,
        "collate": raw.get("datcollate"),
        "ctype": raw.get("datctype"),
        "locale_provider": {"c": "libc", "i": "icu", "b": "builtin"}.get(raw.get("datlocprovider", "c"), "libc"),
        "icu_locale": raw.get("daticulocale") or (raw.get("datlocale") if raw.get("datlocprovider") == "i" else None),
        "builtin_locale": raw.get("datlocale") if raw.get("datlocprovider") == "b" else None,
        "user": user,
        "system_identifier": None,
    }
    try:
        with conn.transaction():
            facts["system_identifier"] = str(conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0])
    except Exception:  # noqa: BLE001 - not allowed for this role; the identifier is optional
        pass
    return facts


def database_size(conn) -> int:
    """The connected database's size in bytes, as PostgreSQL counts it (pg_database_size)."""
    return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


TABLES_SQL = """
SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


UNLOGGED_SQL = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'u' ORDER BY 1
"""


def unlogged_tables(conn) -> List[str]:
    """User tables that are UNLOGGED (keys as count_rows): their rows are never in the WAL, so a
    physical restore always brings them back empty."""
    return [row[0] for row in conn.execute(UNLOGGED_SQL).fetchall()]


def legacy_table_key(schema: str, table: str) -> str:
    """The unquoted key of manifests written before the fingerprint existed."""
    return f"{schema}.{table}"


def count_rows(conn, legacy_keys: bool = False) -> Dict[str, int]:
    """Exact row counts of every user table, in the connection's current snapshot, keyed
    ``schema.table`` quoted as PostgreSQL quotes identifiers (so ``"a.b".c`` and ``a."b.c"`` stay
    two tables, and the keys match the fingerprint's), or unquoted for manifests of pgdrill 0.1."""
    from psycopg import sql

    counts = {}
    for schema, table, quoted in conn.execute(TABLES_SQL).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        counts[legacy_table_key(schema, table) if legacy_keys else quoted] = conn.execute(query).fetchone()[0]
    return counts


def table_checksums(conn) -> Dict[str, str]:
    """Each user table's content as ``<rows>:<checksum>``, the checksum the sum of each row's md5
    (its first 60 bits): the same rows in any order, on any server, give the same value. Keys as
    :func:`count_rows`."""
    from psycopg import sql

    checksums = {}
    for schema, table, quoted in conn.execute(TABLES_SQL).fetchall():
        query = sql.SQL("SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0) FROM {}.{} AS t").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        rows, total = conn.execute(query).fetchone()
        checksums[quoted] = f"{rows}:{total}"
    return checksums


def export_snapshot(conn, imported: Optional[str] = None) -> str:
    """Start a repeatable-read transaction and export its snapshot for pg_dump --snapshot; with
    ``imported``, the transaction first takes that snapshot (exported by another, still open one)."""
    psycopg = _psycopg()
    from psycopg import sql

    conn.rollback()  # end whatever implicit transaction earlier queries opened
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    conn.execute("SET idle_in_transaction_session_timeout = 0")
    conn.execute("SET statement_timeout = 0")
    if imported is not None:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(imported)))
    return conn.execute("SELECT pg_export_snapshot()").fetchone()[0]


def database_exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def is_superuser(conn) -> bool:
    return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]


def can_read_role_passwords(conn) -> bool:
    """May this role read the password hashes (pg_authid)? Superusers only, unless granted."""
    return bool(conn.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()[0])


def role_names(conn) -> Set[str]:
    return {row[0] for row in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def other_sessions(conn, name: str) -> int:
    return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]


def create_database(conn, name: str, facts: Dict[str, Any]) -> None:
    """CREATE DATABASE from template0 with the source's encoding and locale. ``conn`` is autocommit."""
    from psycopg import sql

    parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))]
    if facts.get("encoding"):
        parts.append(sql.SQL("ENCODING {}").format(sql.Literal(facts["encoding"])))
    if facts.get("collate"):
        parts.append(sql.SQL("LC_COLLATE {}").format(sql.Literal(facts["collate"])))
    if facts.get("ctype"):
        parts.append(sql.SQL("LC_CTYPE {}").format(sql.Literal(facts["ctype"])))
    if facts.get("locale_provider") == "icu" and facts.get("icu_locale"):
        parts.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(facts["icu_locale"])))
    elif facts.get("locale_provider") == "builtin" and facts.get("builtin_locale"):
        parts.append(sql.SQL("LOCALE_PROVIDER builtin BUILTIN_LOCALE {}").format(sql.Literal(facts["builtin_locale"])))
    try:
        conn.execute(sql.SQL(" ").join(parts))
    except Exception as exc:  # noqa: BLE001
        if "permission denied to create database" in str(exc):
            role = conn.execute("SELECT quote_ident(current_user)").fetchone()[0]
            raise PgdrillError(
                f"cannot create database '{name}': the role {role} may not create databases (it lacks CREATEDB)",
                f"as a superuser, run: ALTER ROLE {role} CREATEDB; or connect as a login user that has CREATEDB (restoring on a scratch server)",
            ) from None
        raise PgdrillError(
            f"cannot create database '{name}': {str(exc).strip().splitlines()[0]}",
            f"the connecting role needs CREATEDB, and the server needs the source's locale ({facts.get('collate')}) installed",
        ) from None


def drop_database(conn, name: str) -> None:
    from psycopg import sql

    version = conn.info.server_version
    if version >= 130000:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    else:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def compare_counts(expected: Dict[str, int], actual: Dict[str, int]) -> List[Tuple[str, Optional[int], Optional[int]]]:
    """Tables whose counts differ, as (table, expected, actual). Pure."""
    keys = sorted(set(expected) | set(actual))
    return [(key, expected.get(key), actual.get(key)) for key in keys if expected.get(key) != actual.get(key)]
