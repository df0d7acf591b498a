# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""A set's globals script (``pg_dumpall --globals-only``) made safe to replay on the target server,
and the replay's errors that matter. Pure: text in, text out."""

from __future__ import annotations

import re
from typing import List, NamedTuple, Set

_ROLE_STATEMENT = re.compile(r'^(?:CREATE ROLE|ALTER ROLE|COMMENT ON ROLE)\s+("(?:[^"]|"")+"|[^\s;"]+)')
_IDENT = r'("(?:[^"]|"")+"|[^\s;"]+)'
_MEMBERSHIP = re.compile(r"^GRANT\s+%s\s+TO\s+%s" % (_IDENT, _IDENT))
_PASSWORD = re.compile(r"\s+PASSWORD\s+'(?:[^']|'')*'")
_LOGIN = re.compile(r"(?<=\s)LOGIN(?=[\s;])")


def _role_name(token: str) -> str:
    return token[1:-1].replace('""', '"') if token.startswith('"') else token


class GlobalsPlan(NamedTuple):
    script: str
    left_alone: List[str]  # roles the target already has: none of their statements ran
    created: List[str]  # roles the script creates
    changes: List[str]  # what was changed in the script, for the evidence


def globals_for_target(script: str, existing_roles: Set[str], role_passwords: bool = True) -> GlobalsPlan:
    """The globals script (pg_dumpall --globals-only) made safe for the target server. Pure.

    - Roles the target already has are left exactly as they are: their CREATE, ALTER and COMMENT
      statements, and memberships granted to them, are left out (replaying them would overwrite
      their passwords and attributes, the superuser's among them, with the source's).
    - Without ``role_passwords`` the roles it creates get no password and NOLOGIN: a drill must not
      make production credentials work on staging.
    - New roles, memberships among them, and tablespaces stay.
    """
    kept: List[str] = []
    skipped: List[str] = []
    created: List[str] = []
    stripped = 0
    for line in script.splitlines(keepends=True):
        role_match = _ROLE_STATEMENT.match(line)
        member_match = _MEMBERSHIP.match(line)
        name = _role_name(role_match.group(1)) if role_match else None
        if name in existing_roles:
            skipped += [name] if name not in skipped else []
            continue
        if member_match and _role_name(member_match.group(2)) in existing_roles:
            continue  # a membership for a role the target already has would change that role
        if name and line.startswith("CREATE ROLE"):
            created.append(name)
        if name and line.startswith("ALTER ROLE") and not role_passwords:
            new_line = _LOGIN.sub("NOLOGIN", _PASSWORD.sub("", line))
            stripped += new_line != line
            line = new_line
        kept.append(line)
    changes = []
    if skipped:
        changes.append("left out the statements for roles the target already has: " + ", ".join(skipped))
    if created and not role_passwords:
        changes.append(f"created {len(created)} role(s) without passwords and NOLOGIN")
    return GlobalsPlan("".join(kept), skipped, created, changes)


def globals_problems(stderr: str) -> List[str]:
    """psql errors from replaying globals, except roles or tablespaces that already exist. Pure."""
    errors = [line.strip() for line in stderr.splitlines() if "ERROR:" in line]
    return [line for line in errors if not re.search(r"already exists", line)]
