# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Scratch databases (drills, verify --restore) and the roles made for them.

pgdrill marks what it creates for a scratch restore with a comment: the database, and every role
the globals replay created for it. Dropping is then guarded by the mark: pgdrill drops a database
only if it is one of its scratch databases, and with it only the roles made for that database, so a
cleanup can never take an application's database or a role the server had before. The mark carries
the creation time, so leftovers of a killed run can be found and removed later.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

from .db import database_exists, drop_database
from .errors import PgdrillError

DATABASE_MARK = "pgdrill scratch database"
ROLE_MARK = "pgdrill: made for scratch database "


def database_comment(purpose: str, set_id: str, now: Optional[datetime] = None) -> str:
    """``pgdrill scratch database (drill of SET, created 2026-11-27T12:00:00Z)``. Pure."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{DATABASE_MARK} ({purpose} of {set_id}, created {moment})"


def role_comment(database: str) -> str:
    return f"{ROLE_MARK}{database}"


def created_at(comment: Optional[str]) -> Optional[datetime]:
    """The creation time in a scratch database's mark; None for a database pgdrill did not mark. Pure."""
    if not comment or not comment.startswith(DATABASE_MARK):
        return None
    try:
        stamp = comment.rsplit("created ", 1)[1].rstrip(")")
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (IndexError, ValueError):
        return None


def mark_database(admin, name: str, purpose: str, set_id: str) -> None:
    from psycopg import sql

    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(database_comment(purpose, set_id))))


def mark_roles(admin, roles: List[str], database: str) -> None:
    from psycopg import sql

    for role in roles:
        admin.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(role), sql.Literal(role_comment(database))))


def database_mark(admin, name: str) -> Optional[str]:
    row = admin.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row[0] if row else None


def roles_made_for(admin, database: str) -> List[str]:
    rows = admin.execute("SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = %s ORDER BY 1", (role_comment(database),)).fetchall()
    return [row[0] for row in rows]


def drop(admin, name: str) -> Dict[str, Any]:
    """Drop scratch database ``name`` and the roles made for it. Refuses a database pgdrill did not
    mark as scratch. ``admin`` is an autocommit connection to another database."""
    from psycopg import sql

    result: Dict[str, Any] = {"database": name, "dropped": False, "roles_dropped": [], "roles_kept": []}
    if database_exists(admin, name):
        if created_at(database_mark(admin, name)) is None:
            raise PgdrillError(
                f"refusing to drop database '{name}': it is not a scratch database made by pgdrill",
                "pgdrill drops only the scratch databases it created (marked with a comment); drop other databases yourself",
            )
        drop_database(admin, name)
        result["dropped"] = True
    for role in roles_made_for(admin, name):
        try:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
            result["roles_dropped"].append(role)
        except Exception as exc:  # noqa: BLE001 - a role still in use elsewhere stays, and is reported
            result["roles_kept"].append({"role": role, "why": str(exc).strip().splitlines()[0]})
    return result


def leftovers(admin, prefix: str, older_than: timedelta, now: Optional[datetime] = None) -> List[str]:
    """Scratch databases whose name starts with ``prefix`` and whose mark is older than ``older_than``:
    left behind by a run that was killed before it could clean up."""
    now = now or datetime.now(timezone.utc)
    rows = admin.execute("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database WHERE starts_with(datname, %s)", (prefix,)).fetchall()
    return sorted(name for name, comment in rows if (created_at(comment) or now) < now - older_than)
