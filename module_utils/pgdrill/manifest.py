# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The manifest: a JSON sidecar written last, whose presence makes a backup set exist."""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

from . import __version__, verdict
from .naming import DIRECTORY_EXTENSION, file_name, parse_file_name

# Bounds on what is read as a manifest or a verification record: a real one is a few kB (a few MB
# with many thousands of tables). Anything beyond marks its set damaged instead of exhausting memory.
MAX_DOCUMENT_BYTES = 16 << 20
MANIFEST_FILE_KINDS = ("db", "globals", "media")

FORMAT = "pgdrill-manifest"
FORMAT_VERSION = 1
VERIFY_FORMAT = "pgdrill-verification"


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def manifest_name(prefix: str, stamp: str) -> str:
    return file_name(prefix, "manifest", stamp, "json")


def verification_name(prefix: str, stamp: str) -> str:
    return file_name(prefix, "verify", stamp, "json")


def pin_name(prefix: str, stamp: str) -> str:
    return file_name(prefix, "pin", stamp, "json")


def build_pin(set_name: str, reason: str, pinned_at: datetime, by: str) -> Dict[str, Any]:
    """A pin: which set, why, when (UTC) and who. Written once; ``unpin`` removes it."""
    return {"format": "pgdrill-pin/1", "set": set_name, "reason": reason, "pinned_at": utc_iso(pinned_at), "by": by}


def build(
    *,
    prefix: str,
    stamp: str,
    started: datetime,
    finished: datetime,
    files: List[Dict[str, Any]],
    database: Dict[str, Any],
    client: Dict[str, Any],
    compression: Dict[str, Any],
    row_counts: Optional[Dict[str, int]],
    options: Dict[str, Any],
    host: str,
    fingerprint: Optional[Dict[str, Any]] = None,
    encryption: Optional[Dict[str, Any]] = None,
    restore_point: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "set": f"{prefix}_{stamp}_utc",
        "prefix": prefix,
        "stamp": stamp,
        "tool": {"name": "pgdrill", "version": __version__},
        "host": host,
        "started_at": utc_iso(started),
        "finished_at": utc_iso(finished),
        "duration_seconds": round((finished - started).total_seconds(), 3),
        "database": database,
        "client": client,
        "compression": compression,
        "files": files,
        "row_counts": row_counts,
        # Keys are schema.table quoted as PostgreSQL quotes identifiers (pgdrill 0.1 left them unquoted).
        "row_count_keys": "quoted",
        "fingerprint": fingerprint,
        # Readable without a key: how the files are encrypted and to whom (recipient fingerprints).
        "encryption": encryption,
        "options": options,
        # The restore point marked in the dump's snapshot (PITR): a physical restore to it holds this set's content.
        "restore_point": restore_point,
    }


def encode(document: Dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def file_entry_problem(entry: Any, prefix: str, stamp: str) -> Optional[str]:
    """Why one entry of a manifest's file list cannot be trusted, or None. Pure.

    A listed name must be a plain file name of this very set (its prefix, stamp and kind): a set
    that arrives from another host must never make pgdrill open ``../x`` or ``/etc/hostname``."""
    if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and type(entry.get("size")) is int and isinstance(entry.get("sha256"), str)):
        return f"file entry {str(entry)[:200]!r} lacks name, size or sha256"
    name = entry["name"]
    parsed = parse_file_name(name)
    if parsed is None or parsed.prefix != prefix or parsed.stamp != stamp or parsed.kind not in MANIFEST_FILE_KINDS:
        return f"file name {name[:200]!r} is not a plain name of this set ({prefix}_<kind>_{stamp}_utc.<ext>)"
    if entry.get("kind") != parsed.kind:
        return f"file {name} is listed as kind {str(entry.get('kind'))[:20]!r}"
    if entry["size"] < 0 or len(entry["sha256"]) != 64:
        return f"file {name} has an impossible size or sha256"
    if (parsed.ext == DIRECTORY_EXTENSION) != (entry.get("format") == DIRECTORY_FORMAT):
        return f"file {name} is listed as format {str(entry.get('format'))[:20]!r}"
    return members_problem(entry) if parsed.ext == DIRECTORY_EXTENSION else None


# A directory-format dump (dirsets.py) is one entry of kind db whose ``members`` list each file of
# the directory: a plain name (never a path), its size and sha256. The entry's size is their sum and
# its sha256 the digest of the list, so that one entry stands for the whole directory.
DIRECTORY_FORMAT = "directory"
MEMBER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
TOC_MEMBER = "toc.dat"


def plain_member(name: str) -> str:
    """What a member's decoded bytes are: its name without ``.age``, then without ``.zst``. Pure."""
    name = name[: -len(".age")] if name.endswith(".age") else name
    return name[: -len(".zst")] if name.endswith(".zst") else name


def members_digest(members: List[Dict[str, Any]]) -> str:
    """The sha256 that stands for a directory's member list (name, size and sha256 of each). Pure."""
    lines = "".join(f"{m['name']} {m['size']} {m['sha256']}\n" for m in sorted(members, key=lambda m: m["name"]))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def members_problem(entry: Dict[str, Any]) -> Optional[str]:
    """Why a directory entry's member list cannot be trusted, or None. Pure."""
    name, members = entry["name"], entry.get("members")
    if not isinstance(members, list) or not members:
        return f"directory {name} lists no members"
    for member in members:
        if not (isinstance(member, dict) and isinstance(member.get("name"), str) and type(member.get("size")) is int and isinstance(member.get("sha256"), str)):
            return f"directory {name}: member {str(member)[:200]!r} lacks name, size or sha256"
        if not MEMBER_NAME_RE.fullmatch(member["name"]) or member["size"] < 0 or len(member["sha256"]) != 64:
            return f"directory {name}: member {member['name'][:200]!r} is not a plain file name with a size and sha256"
    names = [member["name"] for member in members]
    if len(set(names)) != len(names):
        return f"directory {name} lists a member twice"
    if TOC_MEMBER not in {plain_member(member) for member in names}:
        return f"directory {name} lists no {TOC_MEMBER}"
    if entry["size"] != sum(member["size"] for member in members) or entry["sha256"] != members_digest(members):
        return f"directory {name}: its size or sha256 does not match its member list"
    return None


# Times a set can have been taken: pgdrill did not exist before 2000, and every date up to 9000
# converts to any time zone (an impossible one, 0001-01-01, would overflow in retention's calendar).
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)


def plausible_time(value: Any) -> bool:
    """An ISO 8601 time with a zone, within the years a set can have been taken. Pure."""
    if not isinstance(value, str):
        return False
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.tzinfo is not None and EARLIEST <= moment <= LATEST
    except (ValueError, OverflowError):
        return False


# The schema of every manifest field any code reads: Is (a predicate and what it expects), an
# object's fields ({name: schema}), MapOf or ListOf a schema. A field may be null or absent (sets of
# older pgdrill lack some); when it is there, it has the type the code reading it expects.
class Is(NamedTuple):
    predicate: Callable[[Any], bool]
    expected: str


class MapOf(NamedTuple):
    inner: Any


class ListOf(NamedTuple):
    inner: Any


Schema = Union[Is, MapOf, ListOf, Dict[str, Any]]
TEXT = Is(lambda v: isinstance(v, str), "a string")
COUNT = Is(lambda v: type(v) is int and v >= 0, "a whole number of at least 0")
INTEGER = Is(lambda v: type(v) is int, "a whole number")
NUMBER = Is(lambda v: type(v) in (int, float) and math.isfinite(v), "a number")
FLAG = Is(lambda v: type(v) is bool, "true or false")
TIME = Is(plausible_time, f"a time with its zone between the years {EARLIEST.year} and {LATEST.year}")
IDENTIFIER = Is(lambda v: type(v) in (str, int), "a string or a whole number")
ACL = ListOf(TEXT)
FINGERPRINT_OBJECT: Dict[str, Schema] = {
    "schema": TEXT,
    "table": TEXT,
    "for_role": TEXT,
    "owner": TEXT,
    "acl": ACL,
    "column_acls": MapOf(ACL),
    "partition_of": TEXT,
    "last_value": INTEGER,
    "increment": INTEGER,
    "version": TEXT,
    "in_schema": TEXT,
}
SCHEMA: Dict[str, Schema] = {
    "set": TEXT,
    "host": TEXT,
    "tool": {"name": TEXT, "version": TEXT},
    "started_at": TIME,
    "finished_at": TIME,
    "duration_seconds": NUMBER,
    "database": {
        "name": TEXT,
        "server_version": TEXT,
        "server_version_num": COUNT,
        "encoding": TEXT,
        "collate": TEXT,
        "ctype": TEXT,
        "locale_provider": TEXT,
        "icu_locale": TEXT,
        "builtin_locale": TEXT,
        "user": TEXT,
        "system_identifier": IDENTIFIER,
    },
    "client": {"pg_dump_version": TEXT, "pg_dump_major": COUNT, "pg_dump_path": TEXT, "toc_entries": COUNT, "note": TEXT},
    "compression": {"method": TEXT, "level": INTEGER, "piped": FLAG},
    "row_counts": MapOf(COUNT),
    "row_count_keys": TEXT,
    "fingerprint": {
        "database": {"encoding": TEXT, "collate": TEXT, "ctype": TEXT, "owner": TEXT},
        "objects": MapOf(FINGERPRINT_OBJECT),
        "large_objects": {"count": COUNT, "bytes": COUNT, "owners": MapOf(COUNT)},
    },
    "encryption": {"method": TEXT, "format": TEXT, "recipients": ListOf(TEXT)},
    "restore_point": {"name": TEXT, "lsn": TEXT, "wal_file": TEXT, "created_at": TIME, "stanza": TEXT},
    "options": {},
}


def _expected(schema: Schema) -> str:
    if isinstance(schema, Is):
        return schema.expected
    if isinstance(schema, dict):
        return "an object"
    plural = _expected(schema.inner).split(" ", 1)[1] + "s"
    return ("an object of " if isinstance(schema, MapOf) else "a list of ") + plural


def schema_problems(value: Any, schema: Schema, path: str) -> List[str]:
    """Where ``value`` (not null) breaks ``schema``, each as "field X: expected Y". Pure."""
    if isinstance(schema, Is):
        return [] if schema.predicate(value) else [f"field {path}: expected {schema.expected}"]
    wrong = [f"field {path}: expected {_expected(schema)}"]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return wrong
        found: List[str] = []
        for key, inner in schema.items():
            if value.get(key) is not None:
                found.extend(schema_problems(value[key], inner, f"{path}.{key}" if path else key))
        return found
    if isinstance(schema, MapOf) and isinstance(value, dict):
        pairs = [(f"{path}[{str(key)[:100]!r}]", item) for key, item in value.items()]
    elif isinstance(schema, ListOf) and isinstance(value, list):
        pairs = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    else:
        return wrong
    for where, item in pairs:
        bad = [f"field {where}: expected {_expected(schema.inner)}"] if item is None else schema_problems(item, schema.inner, where)
        if bad:
            return bad  # the first bad item of a list or map says enough
    return []


def problems(document: Any, prefix: str, stamp: str) -> List[str]:
    """What is wrong with a manifest read from disk or from a remote; empty when it can be trusted:
    every field any code reads has the type the code expects. Pure."""
    if not isinstance(document, dict):
        return ["not a JSON object"]
    found = []
    if document.get("format") != FORMAT:
        found.append(f"format is {document.get('format')!r}, not {FORMAT!r}")
    if document.get("format_version") != FORMAT_VERSION:
        found.append(f"format_version {document.get('format_version')!r} is not supported by pgdrill {__version__}")
    if document.get("prefix") != prefix or document.get("stamp") != stamp:
        found.append("prefix or stamp does not match the file name")
    if document.get("started_at") is None:
        found.append("started_at is missing")
    files = document.get("files")
    if not isinstance(files, list) or not files:
        found.append("files is missing or empty")
    else:
        for entry in files:
            problem = file_entry_problem(entry, prefix, stamp)
            if problem:
                found.append(problem)
    found.extend(schema_problems(document, SCHEMA, ""))
    return found[:10]


def decode_document(data: bytes) -> Any:
    """Parse a manifest or verification record, bounded: raises ValueError for anything too big,
    too deep or not JSON (never RecursionError or MemoryError)."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"larger than {MAX_DOCUMENT_BYTES >> 20} MiB")
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except (OverflowError, MemoryError) as exc:
        raise ValueError(f"not a usable JSON document ({type(exc).__name__})") from None


def build_verification(checks: List[Dict[str, Any]], restored: bool, checked_at: datetime, previous: Any = None) -> Dict[str, Any]:
    """A verification record. An inconclusive one keeps the set's last conclusive verdict
    (``previous`` is the record it replaces): a check that could not run changes nothing."""
    outcome = verdict.of_checks(checks)
    document = {
        "format": VERIFY_FORMAT,
        "format_version": FORMAT_VERSION,
        "checked_at": utc_iso(checked_at),
        "ok": outcome == verdict.PASSED,
        "verdict": outcome,
        "restored": restored,
        "checks": checks,
        "tool": {"name": "pgdrill", "version": __version__},
    }
    if outcome == verdict.INCONCLUSIVE:
        document["last_conclusive"] = verdict.conclusive(previous)
    return document
