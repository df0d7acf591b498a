# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Choosing part of an archive to restore: some schemas, some tables. Pure functions only.

``pg_restore -n`` does not create the schema it selects, and ``pg_restore -t`` brings a table
without its indexes, constraints, triggers or policies. pgdrill instead reads the archive's table
of contents with its dependencies (``pg_restore --list --verbose``) and writes the list of entries
a partial restore needs, for ``pg_restore --use-list``:

- the chosen tables (with their partitions) or everything in the chosen schemas;
- everything that depends on those and on nothing outside them (data, indexes, constraints,
  triggers, policies, row security, identity sequences, privileges, comments); a foreign key to a
  table that was not chosen is left out, so is a view over one;
- what they need to exist: their schemas, extensions, types, domains, functions and sequences.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Set, Tuple

# Kinds of entries that hold rows or define a relation: chosen explicitly, never pulled in as support.
RELATIONS = ("TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "SEQUENCE")
# What a chosen object may need without being chosen itself.
SUPPORT = (
    "SCHEMA",
    "EXTENSION",
    "TYPE",
    "DOMAIN",
    "FUNCTION",
    "PROCEDURE",
    "AGGREGATE",
    "COLLATION",
    "OPERATOR",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "CAST",
    "CONVERSION",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "SHELL TYPE",
    "SEQUENCE",
    "SEQUENCE OWNED BY",
)
# Entries that go with a support object: its privileges, its comment, a sequence's value.
DECORATIONS = ("ACL", "COMMENT", "SEQUENCE SET")
# Multi-word kinds first, so "TABLE DATA" is not read as "TABLE".
KINDS = sorted(
    {
        "TABLE DATA",
        "TABLE ATTACH",
        "INDEX ATTACH",
        "SEQUENCE SET",
        "SEQUENCE OWNED BY",
        "FK CONSTRAINT",
        "CHECK CONSTRAINT",
        "DEFAULT ACL",
        "MATERIALIZED VIEW DATA",
        "MATERIALIZED VIEW",
        "ROW SECURITY",
        "PUBLICATION TABLE",
        "PUBLICATION TABLES IN SCHEMA",
        "FOREIGN TABLE",
        "EVENT TRIGGER",
        "LARGE OBJECT",
        "BLOB METADATA",
        "BLOB DATA",
        "OPERATOR CLASS",
        "OPERATOR FAMILY",
        "TEXT SEARCH CONFIGURATION",
        "TEXT SEARCH DICTIONARY",
        "TEXT SEARCH PARSER",
        "TEXT SEARCH TEMPLATE",
        "SHELL TYPE",
        "USER MAPPING",
        "FOREIGN DATA WRAPPER",
        "FOREIGN SERVER",
        "DATABASE PROPERTIES",
        "SEARCHPATH",
        "ENCODING",
        "STDSTRINGS",
        "TABLE",
        "VIEW",
        "SEQUENCE",
        "INDEX",
        "CONSTRAINT",
        "TRIGGER",
        "POLICY",
        "RULE",
        "DEFAULT",
        "ACL",
        "COMMENT",
        "SCHEMA",
        "EXTENSION",
        "TYPE",
        "DOMAIN",
        "FUNCTION",
        "PROCEDURE",
        "AGGREGATE",
        "COLLATION",
        "OPERATOR",
        "CAST",
        "CONVERSION",
        "PUBLICATION",
        "SUBSCRIPTION",
        "BLOB",
        "BLOBS",
        "DATABASE",
        "STATISTICS",
        "LANGUAGE",
        "TRANSFORM",
        "ACCESS METHOD",
    },
    key=len,
    reverse=True,
)
_ENTRY = re.compile(r"^(?P<id>\d+); (?P<tableoid>\d+) (?P<oid>\d+) (?P<rest>.*)$")
_DEPENDS = re.compile(r"^;\s+depends on:(?P<ids>[\d ]*)$")


class Entry(NamedTuple):
    id: int
    line: str
    kind: str
    rest: str  # "<namespace> <tag> <owner>" as pg_restore prints it
    depends: Tuple[int, ...]


def parse(listing: str) -> List[Entry]:
    """The entries of ``pg_restore --list --verbose`` output, with their dependencies."""
    entries: List[Entry] = []
    pending: Optional[Tuple[int, str, str, str]] = None
    depends: Tuple[int, ...] = ()

    def flush() -> None:
        if pending:
            entries.append(Entry(pending[0], pending[1], pending[2], pending[3], depends))

    for line in listing.splitlines():
        match = _ENTRY.match(line)
        if match:
            flush()
            rest = match["rest"]
            kind = next((k for k in KINDS if rest.startswith(k + " ")), rest.split(" ", 1)[0])
            pending, depends = (int(match["id"]), line, kind, rest[len(kind) + 1 :]), ()
            continue
        dep = _DEPENDS.match(line)
        if dep and pending:
            depends = tuple(int(word) for word in dep["ids"].split())
    flush()
    return entries


def find_schema(entries: Iterable[Entry], schema: str) -> List[Entry]:
    """SCHEMA entries named ``schema`` (printed ``- <name> <owner>``)."""
    return [e for e in entries if e.kind == "SCHEMA" and (e.rest.startswith(f"- {schema} ") or e.rest == f"- {schema}")]


def find_relation(entries: Iterable[Entry], schema: str, name: str) -> List[Entry]:
    """Relation entries of ``schema.name`` (printed ``<schema> <name> <owner>``)."""
    prefix = f"{schema} {name} "
    return [e for e in entries if e.kind in RELATIONS and (e.rest.startswith(prefix) or e.rest == prefix.strip())]


def select(entries: List[Entry], roots: Set[int]) -> Set[int]:
    """The ids a partial restore of ``roots`` needs (see the module's description)."""
    by_id: Dict[int, Entry] = {e.id: e for e in entries}
    chosen: Set[int] = set(roots)  # what was asked for and what depends only on it
    support: Set[int] = set()  # what those need to exist
    dependents: Dict[int, List[int]] = {}
    for entry in entries:
        for dep in entry.depends:
            dependents.setdefault(dep, []).append(entry.id)

    changed = True
    while changed:
        changed = False
        # Upwards: every dependency of a chosen or support entry that is itself support.
        for entry_id in list(chosen | support):
            for dep in by_id[entry_id].depends if entry_id in by_id else ():
                if dep in by_id and dep not in chosen and dep not in support and by_id[dep].kind in SUPPORT:
                    support.add(dep)
                    changed = True
        # Downwards: entries that depend on a chosen entry and on nothing that stays out.
        for entry_id in list(chosen):
            for dependent in dependents.get(entry_id, []):
                if dependent in chosen:
                    continue
                deps = by_id[dependent].depends
                # Ids missing from the listing are pg_dump's section boundaries, not objects.
                if all(dep not in by_id or dep in chosen or dep in support or by_id[dep].kind in SUPPORT for dep in deps):
                    chosen.add(dependent)
                    changed = True
        # A support entry's privileges and comment go with it.
        for entry_id in list(support):
            for dependent in dependents.get(entry_id, []):
                entry = by_id[dependent]
                if entry.kind in DECORATIONS and dependent not in chosen and set(entry.depends) <= support:
                    chosen.add(dependent)
                    changed = True
    return chosen | support


def use_list(entries: List[Entry], ids: Set[int]) -> str:
    """The --use-list file: the chosen entries in archive order."""
    return "".join(entry.line + "\n" for entry in entries if entry.id in ids)


def split_table(name: str) -> Tuple[str, str]:
    """``app.customers`` -> (app, customers); ``customers`` -> (public, customers). Names are as
    pg_restore --list prints them (unquoted); quote a dotted name: ``"a.b".c``. Pure."""
    parts = _split_quoted(name)
    if len(parts) == 1:
        return "public", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ValueError(f"{name!r} is not schema.table")


def _split_quoted(name: str) -> List[str]:
    parts, current, quoted, i = [], "", False, 0
    while i < len(name):
        char = name[i]
        if char == '"':
            if quoted and i + 1 < len(name) and name[i + 1] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif char == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
        i += 1
    parts.append(current)
    return parts
