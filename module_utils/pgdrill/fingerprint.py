# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""A database's fingerprint: its objects with their owners and privileges, taken in the dump's own
snapshot, and the comparison that proves a restore is that database.

Row counts prove the data arrived; they say nothing of who owns a table, who may read it, or
whether a policy, a trigger or a default privilege survived. A restore that lost every GRANT still
has the right row counts. The fingerprint records, per object, what a restore must reproduce, so
every restore (verify --restore, the drill, pgdrill_restore, restore_database.yml) can be compared
with it and every difference named.

Taking it is a handful of catalog queries (no table is read), done on the connection that exported
the dump's snapshot before pg_dump starts: catalog reads see that snapshot, and sequences, which are
not transactional, are read no later than pg_dump reads them, so a restored sequence is never
legitimately behind the fingerprint.

Object keys are ``<kind> <schema>.<name>`` with identifiers quoted as PostgreSQL quotes them, so
``"a.b".c`` and ``a."b.c"`` stay distinct.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, NamedTuple, Optional

FORMAT = 1
COVERS = (
    "database encoding, locale and owner",
    "schemas",
    "tables, partitions, views, materialized views, foreign tables and indexes",
    "sequences and their state",
    "functions, procedures and aggregates",
    "types, domains and enums",
    "extensions and their versions",
    "triggers",
    "row-level security flags and policies",
    "publications",
    "owners and privileges (ACLs, column privileges, default privileges)",
    "large objects: count, owners and total size",
)
NOT_COVERED = (
    "database-level GRANTs and settings (a pg_dump archive restores them only with --create)",
    "roles and tablespaces (the globals file), object comments, security labels",
    "objects that belong to extensions",
)

_USER_SCHEMA = "{n}.nspname NOT IN ('pg_catalog', 'information_schema') AND {n}.nspname NOT LIKE 'pg\\_toast%' AND {n}.nspname NOT LIKE 'pg\\_temp\\_%'"


def _not_extension_member(catalog: str, oid: str) -> str:
    return f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass AND e.objid = {oid} AND e.deptype = 'e')"


def _qualified(n: str, name: str) -> str:
    return f"quote_ident({n}.nspname) || '.' || quote_ident({name})"


RELATION_KINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
    "f": "foreign table",
    "i": "index",
    "I": "partitioned index",
}
ROUTINE_KINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}
TYPE_KINDS = {"b": "type", "c": "type", "d": "domain", "e": "type", "r": "type"}
DEFAULT_ACL_KEY = "default privileges of "
DEFAULT_ACL_TYPES = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas"}

QUERIES: Dict[str, str] = {
    "database": """
        SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, pg_get_userbyid(d.datdba)
        FROM pg_database d WHERE d.datname = current_database()""",
    "schemas": f"""
        SELECT quote_ident(n.nspname), pg_get_userbyid(n.nspowner), n.nspacl::text[]
        FROM pg_namespace n
        WHERE {_USER_SCHEMA.format(n="n")} AND {_not_extension_member("pg_namespace", "n.oid")}""",
    "relations": f"""
        SELECT c.relkind::text, quote_ident(n.nspname), {_qualified("n", "c.relname")}, pg_get_userbyid(c.relowner),
               c.relacl::text[], c.relrowsecurity, c.relforcerowsecurity,
               (SELECT {_qualified("pn", "pc.relname")} FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
                  JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid AND c.relispartition),
               (SELECT json_object_agg(quote_ident(a.attname), a.attacl::text[]) FROM pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped),
               CASE WHEN c.relkind IN ('i', 'I') THEN
                 (SELECT {_qualified("tn", "tc.relname")} FROM pg_index x JOIN pg_class tc ON tc.oid = x.indrelid
                    JOIN pg_namespace tn ON tn.oid = tc.relnamespace WHERE x.indexrelid = c.oid)
               WHEN c.relkind = 'S' THEN
                 (SELECT {_qualified("tn", "tc.relname")} FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
                    JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                      AND d.deptype IN ('a', 'i') LIMIT 1) END
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'i', 'I') AND {_USER_SCHEMA.format(n="n")}
          AND {_not_extension_member("pg_class", "c.oid")}""",
    "sequence_state": f"""
        SELECT {_qualified("s", "s.sequencename").replace("s.nspname", "s.schemaname")}, s.last_value, s.increment_by
        FROM pg_sequences s
        WHERE {_USER_SCHEMA.format(n="s").replace("s.nspname", "s.schemaname")}""",
    "routines": f"""
        SELECT p.prokind::text, quote_ident(n.nspname),
               {_qualified("n", "p.proname")} || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               pg_get_userbyid(p.proowner), p.proacl::text[]
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_USER_SCHEMA.format(n="n")} AND {_not_extension_member("pg_proc", "p.oid")}""",
    "types": f"""
        SELECT t.typtype::text, quote_ident(n.nspname), {_qualified("n", "t.typname")}, pg_get_userbyid(t.typowner),
               t.typacl::text[],
               (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.typtype IN ('b', 'c', 'd', 'e', 'r') AND {_USER_SCHEMA.format(n="n")}
          AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)
          AND {_not_extension_member("pg_type", "t.oid")}""",
    "extensions": """
        SELECT quote_ident(e.extname), e.extversion, quote_ident(n.nspname)
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace""",
    "triggers": f"""
        SELECT quote_ident(n.nspname), {_qualified("n", "c.relname")}, quote_ident(t.tgname), t.tgenabled::text
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND {_USER_SCHEMA.format(n="n")} AND {_not_extension_member("pg_class", "c.oid")}""",
    "policies": f"""
        SELECT quote_ident(n.nspname), {_qualified("n", "c.relname")}, quote_ident(p.polname), p.polcmd::text, p.polpermissive,
               CASE WHEN p.polroles = '{{0}}' THEN ARRAY['public']
                    ELSE ARRAY(SELECT r.rolname::text FROM pg_roles r WHERE r.oid = ANY (p.polroles) ORDER BY 1) END
        FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMA.format(n="n")}""",
    "publications": """
        SELECT quote_ident(p.pubname), pg_get_userbyid(p.pubowner), p.puballtables,
               ARRAY[p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate],
               ARRAY(SELECT quote_ident(t.schemaname) || '.' || quote_ident(t.tablename) FROM pg_publication_tables t
                     WHERE t.pubname = p.pubname ORDER BY 1)
        FROM pg_publication p""",
    "default_acls": """
        SELECT pg_get_userbyid(d.defaclrole), quote_ident(n.nspname), d.defaclobjtype::text, d.defaclacl::text[]
        FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace""",
    "large_objects": """
        SELECT pg_get_userbyid(l.lomowner), count(*) FROM pg_largeobject_metadata l GROUP BY 1""",
    # Sizes need each object opened; in a savepoint, because a role that may not read one must not
    # abort the transaction whose snapshot pg_dump is using.
    "large_object_bytes": """
        SELECT coalesce(sum(lo_lseek64(lo_open(l.oid, 262144), 0, 2)), 0) FROM pg_largeobject_metadata l""",
}


def _compact(entry: Dict[str, Any]) -> Dict[str, Any]:
    """Leave out empty fields: a fingerprint of thousands of objects stays small."""
    return {key: value for key, value in entry.items() if value not in (None, False, [], {})}


def _acl(values: Optional[List[str]]) -> Optional[List[str]]:
    return sorted(values) if values is not None else None


def build(rows: Dict[str, List[tuple]], large_object_bytes: Optional[int]) -> Dict[str, Any]:
    """The fingerprint from the queries' rows. Pure."""
    objects: Dict[str, Dict[str, Any]] = {}
    encoding, collate, ctype, owner = rows["database"][0]
    for name, schema_owner, acl in rows["schemas"]:
        objects[f"schema {name}"] = _compact({"owner": schema_owner, "acl": _acl(acl)})
    sequence_state = {name: (last, increment) for name, last, increment in rows["sequence_state"]}
    for kind, schema, name, rel_owner, acl, rls, force_rls, parent, column_acls, belongs_to in rows["relations"]:
        entry = {
            "schema": schema,
            "owner": rel_owner,
            "acl": _acl(acl),
            "rls": rls,
            "force_rls": force_rls,
            "partition_of": parent,
            "column_acls": {column: _acl(value) for column, value in sorted((column_acls or {}).items())},
            "table": belongs_to,
        }
        if kind in ("i", "I"):
            entry = {"schema": schema, "table": belongs_to}  # owned and privileged through their table
        if kind == "S" and name in sequence_state:
            entry["last_value"], entry["increment"] = sequence_state[name]
        objects[f"{RELATION_KINDS[kind]} {name}"] = _compact(entry)
    for kind, schema, name, routine_owner, acl in rows["routines"]:
        objects[f"{ROUTINE_KINDS.get(kind, 'function')} {name}"] = _compact({"schema": schema, "owner": routine_owner, "acl": _acl(acl)})
    for kind, schema, name, type_owner, acl, labels in rows["types"]:
        objects[f"{TYPE_KINDS[kind]} {name}"] = _compact({"schema": schema, "owner": type_owner, "acl": _acl(acl), "labels": labels})
    for name, version, schema in rows["extensions"]:
        objects[f"extension {name}"] = {"version": version, "in_schema": schema}
    for schema, table, name, enabled in rows["triggers"]:
        objects[f"trigger {name} on {table}"] = _compact({"schema": schema, "table": table, "enabled": enabled})
    for schema, table, name, command, permissive, roles in rows["policies"]:
        objects[f"policy {name} on {table}"] = _compact({"schema": schema, "table": table, "command": command, "permissive": permissive, "roles": list(roles)})
    for name, pub_owner, all_tables, actions, tables in rows["publications"]:
        objects[f"publication {name}"] = _compact({"owner": pub_owner, "all_tables": all_tables, "actions": list(actions), "tables": list(tables)})
    for role, schema, objtype, acl in rows["default_acls"]:
        where = f" in schema {schema}" if schema else ""
        objects[f"{DEFAULT_ACL_KEY}{role}{where} on {DEFAULT_ACL_TYPES.get(objtype, objtype)}"] = _compact(
            {"schema": schema, "for_role": role, "acl": _acl(acl)}
        )
    large_objects = {
        "count": sum(count for _, count in rows["large_objects"]),
        "owners": {lo_owner: count for lo_owner, count in sorted(rows["large_objects"])},
        "bytes": large_object_bytes,
    }
    return {
        "format": FORMAT,
        "covers": list(COVERS),
        "not_covered": list(NOT_COVERED),
        "database": {"encoding": encoding, "collate": collate, "ctype": ctype, "owner": owner},
        "objects": dict(sorted(objects.items())),
        "large_objects": large_objects,
    }


def sequence_rows(conn) -> List[Any]:
    """The sequences' state as ``take`` reads it. Sequences are not transactional: a caller that
    must record them at an exact moment (a restore point) reads them then and hands them to take."""
    return conn.execute(QUERIES["sequence_state"]).fetchall()


def take(conn, sequences: Optional[List[Any]] = None) -> Dict[str, Any]:
    """The fingerprint of the database ``conn`` is connected to, in its current transaction
    (``sequences``: their state read earlier, by ``sequence_rows``)."""
    started = time.monotonic()
    rows = {
        name: conn.execute(sql).fetchall()
        for name, sql in QUERIES.items()
        if name != "large_object_bytes" and not (sequences is not None and name == "sequence_state")
    }
    if sequences is not None:
        rows["sequence_state"] = sequences
    large_object_bytes: Optional[int] = None
    if any(count for _, count in rows["large_objects"]):
        try:
            with conn.transaction():
                large_object_bytes = int(conn.execute(QUERIES["large_object_bytes"]).fetchone()[0])
        except Exception:  # noqa: BLE001 - a large object this role may not read: size unknown, count and owners still hold
            large_object_bytes = None
    else:
        large_object_bytes = 0
    document = build(rows, large_object_bytes)
    document["seconds"] = round(time.monotonic() - started, 3)
    return document


class Difference(NamedTuple):
    object: str
    what: str
    expected: Any
    found: Any

    def describe(self) -> str:
        return f"{self.object}: {self.what} (expected {_show(self.expected)}, found {_show(self.found)})"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "{" + ", ".join(str(item) for item in value) + "}"
    return "none" if value is None else str(value)


class Scope(NamedTuple):
    """What a restore was asked to bring back: everything, or some schemas and tables."""

    schemas: frozenset = frozenset()
    tables: frozenset = frozenset()

    @property
    def whole(self) -> bool:
        return not self.schemas and not self.tables

    def holds(self, key: str, entry: Dict[str, Any]) -> bool:
        """Is this object part of what was asked for: in a chosen schema, a chosen table, or
        belonging to one (its index, trigger, policy or identity sequence)?"""
        if self.whole:
            return True
        return entry.get("schema") in self.schemas or entry.get("table") in self.tables or relation_name(key) in self.tables

    def with_partitions(self, fingerprint: Optional[Dict[str, Any]]) -> "Scope":
        """The chosen tables and, from the fingerprint, their partitions (at any depth). Pure."""
        tables = set(self.tables)
        objects = (fingerprint or {}).get("objects", {})
        while True:
            more = {relation_name(key) for key, entry in objects.items() if entry.get("partition_of") in tables} - tables
            if not more:
                return Scope(self.schemas, frozenset(tables))
            tables |= more


# The scope of a whole restore (the default of every comparison).
EVERYTHING = Scope()


def relation_name(key: str) -> Optional[str]:
    """``table app.customers`` -> ``app.customers``; None for objects that are not relations. Pure."""
    for kind in sorted(RELATION_KINDS.values(), key=len, reverse=True):
        if key.startswith(kind + " "):
            return key[len(kind) + 1 :]
    return None


def _owner_neutral(acl: Optional[List[str]], owner: Optional[str]) -> Optional[List[str]]:
    """An ACL with the object owner's name replaced, for restores that did not restore owners:
    the owner's own entry and the grantor of every GRANT are then the restoring role."""
    if acl is None or not owner:
        return acl
    out = []
    for item in acl:
        grantee, _, rest = item.partition("=")
        privileges, _, grantor = rest.partition("/")
        grantee = "<owner>" if grantee == owner else grantee
        grantor = "<owner>" if grantor == owner else grantor
        out.append(f"{grantee}={privileges}/{grantor}")
    return sorted(out)


OWNER_FIELDS = ("owner",)
PRIVILEGE_FIELDS = ("acl", "column_acls")


# Privileges a newer major grants owners by default (aclitem letters): MAINTAIN arrived in 17.
NEW_PRIVILEGES = {17: "m"}


def _without_new_privileges(acl: Any, source_major: int, target_major: int) -> Any:
    letters = "".join(new for major, new in NEW_PRIVILEGES.items() if source_major < major <= target_major)
    if not letters or not isinstance(acl, list):
        return acl
    out = []
    for item in acl:
        grantee, _, rest = item.partition("=")
        privileges, _, grantor = rest.partition("/")
        out.append(f"{grantee}={''.join(c for c in privileges if c not in letters)}/{grantor}")
    return sorted(out)


def _upgrade_explains(field: str, key: str, wanted: Any, found: Any, majors: Optional["tuple[int, int]"]) -> bool:
    """Is a difference the plain consequence of restoring into a newer major? An extension at the
    new server's default version, or privileges the new major gives owners by default. Pure."""
    if not majors or majors[0] >= majors[1]:
        return False
    if field == "version" and key.startswith("extension "):
        return True
    if field == "acl":
        return _without_new_privileges(wanted, *majors) == _without_new_privileges(found, *majors)
    return False


# acldefault(kind, owner) as the server computes it, in aclitem letters: (the owner's, PUBLIC's).
# An ACL equal to it grants exactly what a NULL ACL grants, and pg_dump emits nothing for it, so a
# restore has NULL where the source had ``{app=arwdDxt/app}``: both mean "the default". Tables gain
# the privileges of NEW_PRIVILEGES from their major on (MAINTAIN in 17).
OWNER_DEFAULTS = {"r": ("arwdDxt", ""), "s": ("rwU", ""), "f": ("X", "X"), "n": ("UC", ""), "T": ("U", "U"), "L": ("rw", "")}
_ACL_KINDS = (
    ("schema ", "n"),
    ("sequence ", "s"),
    ("function ", "f"),
    ("procedure ", "f"),
    ("aggregate ", "f"),
    ("window function ", "f"),
    ("type ", "T"),
    ("domain ", "T"),
)
_DEFAULT_ACL_KINDS = {"tables": "r", "sequences": "s", "functions": "f", "types": "T", "schemas": "n"}


def acl_kind(key: str) -> Optional[str]:
    """The acldefault kind of a fingerprint object (``r`` for every relation but sequences), or
    None for objects without an ACL of their own. Pure."""
    if key.startswith(DEFAULT_ACL_KEY):
        return _DEFAULT_ACL_KINDS.get(key.rsplit(" on ", 1)[-1])
    for prefix, kind in _ACL_KINDS:
        if key.startswith(prefix):
            return kind
    return "r" if relation_name(key) is not None else None


def default_acl(kind: str, owner: str, major: Optional[int]) -> List[str]:
    """acldefault(kind, owner) on a server of ``major``, as sorted aclitem texts. Pure."""
    own, world = OWNER_DEFAULTS[kind]
    if kind == "r":
        own += "".join(letters for since, letters in sorted(NEW_PRIVILEGES.items()) if major is not None and major >= since)
    items = [f"{_aclname(owner)}={own}/{_aclname(owner)}"] + ([f"={world}/{_aclname(owner)}"] if world else [])
    return sorted(items)


def _aclname(role: str) -> str:
    """A role name as aclitem text writes it (double-quoted when it holds anything but letters,
    digits and underscores). Pure."""
    return role if role and all((c.isascii() and c.isalnum()) or c == "_" for c in role) else '"' + role.replace('"', '""') + '"'


def is_owner_default(acl: Optional[List[str]], kind: Optional[str], owner: Optional[str], major: Optional[int]) -> bool:
    """Is ``acl`` the owner's default, which a NULL ACL means too? With ``major`` unknown, the
    default of any major counts. Pure."""
    if acl is None or kind is None or not owner:
        return False
    majors = [major] if major is not None else [None, *NEW_PRIVILEGES]
    return sorted(acl) in (default_acl(kind, owner, m) for m in majors)


def _acl_as_compared(key: str, entry: Dict[str, Any], major: Optional[int]) -> Optional[List[str]]:
    """An object's ACL for the comparison: None (the default) when it equals its owner's default. Pure."""
    owner = entry.get("for_role") if key.startswith(DEFAULT_ACL_KEY) else entry.get("owner")
    return None if is_owner_default(entry.get("acl"), acl_kind(key), owner, major) else entry.get("acl")


def _without_default_entries(objects: Dict[str, Dict[str, Any]], major: Optional[int]) -> Dict[str, Dict[str, Any]]:
    """Default privileges that grant only the role's default say nothing: as if absent. Pure."""
    return {key: entry for key, entry in objects.items() if not key.startswith(DEFAULT_ACL_KEY) or _acl_as_compared(key, entry, major) is not None}


def compare(
    expected: Dict[str, Any],
    actual: Dict[str, Any],
    owners: bool = True,
    privileges: bool = True,
    scope: Scope = EVERYTHING,
    majors: Optional["tuple[int, int]"] = None,
) -> "tuple[List[Difference], List[Difference]]":
    """Differences between the fingerprint taken at backup time and the restored database's.

    ``owners``/``privileges`` False leave out what the restore was told not to bring back.
    Returns (differences, notes): notes are differences that a restore into a newer major version
    (``majors``: source and target) explains. Pure."""
    differences: List[Difference] = []
    notes: List[Difference] = []

    def compared(key: str, entry: Dict[str, Any]) -> bool:
        # Default privileges are privileges through and through: left out with them.
        return scope.holds(key, entry) and (privileges or not key.startswith(DEFAULT_ACL_KEY))

    source_major, target_major = majors or (None, None)
    want_objects = _without_default_entries({key: entry for key, entry in expected.get("objects", {}).items() if compared(key, entry)}, source_major)
    got_objects = _without_default_entries({key: entry for key, entry in actual.get("objects", {}).items() if compared(key, entry)}, target_major)
    for key in sorted(set(want_objects) | set(got_objects)):
        if key not in got_objects:
            differences.append(Difference(key, "missing from the restore", "present", "absent"))
            continue
        if key not in want_objects:
            differences.append(Difference(key, "not in the backup", "absent", "present"))
            continue
        want, got = want_objects[key], got_objects[key]
        for field in sorted(set(want) | set(got)):
            if field in ("schema", "table", "for_role", "increment"):
                continue
            if field in OWNER_FIELDS and not owners:
                continue
            if field in PRIVILEGE_FIELDS and not privileges:
                continue
            wanted, found = want.get(field), got.get(field)
            if field == "acl" and _acl_as_compared(key, want, source_major) == _acl_as_compared(key, got, target_major):
                continue  # the same privileges, one side written as the owner's default
            if field == "acl" and not owners:
                wanted, found = _owner_neutral(wanted, want.get("owner")), _owner_neutral(found, got.get("owner"))
            if field == "column_acls" and not owners:
                wanted = {c: _owner_neutral(a, want.get("owner")) for c, a in (wanted or {}).items()}
                found = {c: _owner_neutral(a, got.get("owner")) for c, a in (found or {}).items()}
            if field == "last_value":
                if not _sequence_caught_up(wanted, found, want.get("increment")):
                    differences.append(Difference(key, "sequence is behind the backup", wanted, found))
                continue
            if wanted != found:
                difference = Difference(key, f"{field.replace('_', ' ')} differs", wanted, found)
                (notes if _upgrade_explains(field, key, wanted, found, majors) else differences).append(difference)
    if scope.whole:
        differences.extend(_database_differences(expected, actual, owners))
    return differences, notes


def _sequence_caught_up(wanted: Optional[int], found: Optional[int], increment: Optional[int]) -> bool:
    """A restored sequence may be ahead of the fingerprint (pg_dump read it a moment later), never behind."""
    if wanted is None:
        return True
    if found is None:
        return False
    return found >= wanted if (increment or 1) > 0 else found <= wanted


def _database_differences(expected: Dict[str, Any], actual: Dict[str, Any], owners: bool) -> List[Difference]:
    found = []
    want_db, got_db = expected.get("database", {}), actual.get("database", {})
    for field in ("encoding", "collate", "ctype") + (("owner",) if owners else ()):
        if want_db.get(field) != got_db.get(field):
            found.append(Difference("database", f"{field} differs", want_db.get(field), got_db.get(field)))
    want_lo, got_lo = expected.get("large_objects", {}), actual.get("large_objects", {})
    for field in ("count", "bytes") + (("owners",) if owners else ()):
        if want_lo.get(field) is not None and want_lo.get(field) != got_lo.get(field):
            found.append(Difference("large objects", f"{field} differs", want_lo.get(field), got_lo.get(field)))
    return found


def summary(expected: Dict[str, Any], differences: List[Difference], notes: List[Difference], scope: Scope = EVERYTHING) -> Dict[str, Any]:
    """What the comparison covered and found, for results and evidence. Pure."""
    compared = [key for key, entry in expected.get("objects", {}).items() if scope.holds(key, entry)]
    return {
        "objects": len(compared),
        "large_objects": (expected.get("large_objects") or {}).get("count", 0) if scope.whole else None,
        "differences": [d._asdict() for d in differences],
        "notes": [d._asdict() for d in notes],
        "ok": not differences,
    }
