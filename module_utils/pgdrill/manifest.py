"""The manifest: a JSON sidecar written last, whose presence makes a backup set exist."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import __version__
from .naming import file_name

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
        "options": options,
    }


def encode(document: Dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


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
    except (KeyError, TypeError, ValueError):
        found.append("started_at is missing or not a time")
    files = document.get("files")
    if not isinstance(files, list) or not files:
        found.append("files is missing or empty")
    else:
        for entry in files:
            if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                    and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)):
                found.append(f"file entry {entry!r} lacks name, size or sha256")
    return found


def build_verification(checks: List[Dict[str, Any]], restored: bool, checked_at: datetime) -> Dict[str, Any]:
    return {
        "format": VERIFY_FORMAT,
        "format_version": FORMAT_VERSION,
        "checked_at": utc_iso(checked_at),
        "ok": all(check["ok"] for check in checks),
        "restored": restored,
        "checks": checks,
        "tool": {"name": "pgdrill", "version": __version__},
    }
