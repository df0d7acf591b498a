# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The manifest: a JSON sidecar written last, whose presence makes a backup set exist."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import __version__, verdict
from .naming import file_name, parse_file_name

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
    return None


def problems(document: Any, prefix: str, stamp: str) -> List[str]:
    """What is wrong with a manifest read from disk; empty when it can be trusted. Pure."""
    if not isinstance(document, dict):
        return ["not a JSON object"]
    found = []
    if document.get("format") != FORMAT:
        found.append(f"format is {document.get('format')!r}, not {FORMAT!r}")
    if document.get("format_version") != FORMAT_VERSION:
        found.append(f"format_version {document.get('format_version')!r} is not supported by pgdrill {__version__}")
    if document.get("prefix") != prefix or document.get("stamp") != stamp:
        found.append("prefix or stamp does not match the file name")
    try:
        parse_utc(document["started_at"])
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        found.append("started_at is missing or not a time")
    files = document.get("files")
    if not isinstance(files, list) or not files:
        found.append("files is missing or empty")
    else:
        for entry in files:
            problem = file_entry_problem(entry, prefix, stamp)
            if problem:
                found.append(problem)
    for key in ("row_counts", "database", "options", "client", "compression"):
        if not isinstance(document.get(key), (dict, type(None))):
            found.append(f"{key} is neither an object nor null")
    return found


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
