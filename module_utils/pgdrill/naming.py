# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""File names of backup sets: building, parsing, grouping. Pure functions only.

A set is every file named ``<prefix>_<kind>_<YYYYMMDD_HHMMSS>_utc.<ext>`` for one prefix and stamp,
for example ``ez360pm_db_20261126_021500_utc.dump.zst``; a directory-format dump is a directory
``<prefix>_db_<stamp>_utc.dir`` (see dirsets.py). The manifest (kind ``manifest``) is written
last; a set without one is incomplete. A pin (kind ``pin``, ``<prefix>_pin_<stamp>_utc.json``) is a
small record beside a set that keeps it out of retention. Temporary files are hidden (leading dot) and end in
``.part-<token>``, so no partial file ever carries a final name.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Dict, Iterable, List, NamedTuple, Optional

STAMP_FORMAT = "%Y%m%d_%H%M%S"
KINDS = ("db", "globals", "media", "manifest", "verify", "pin")
PLAIN_EXTENSIONS = ("dump", "dump.zst", "sql", "tar", "tar.gz", "tar.zst", "json")
# Files encrypted with age carry ".age" after their plain extension; manifests and verification
# records stay readable without a key, so "json" has no encrypted form.
EXTENSIONS = PLAIN_EXTENSIONS + tuple(f"{ext}.age" for ext in PLAIN_EXTENSIONS if ext != "json")
# The extensions the engine writes for each kind; any other pairing is not a pgdrill file.
_PLAIN_KIND_EXTENSIONS = {
    "db": ("dump", "dump.zst"),
    "globals": ("sql",),
    "media": ("tar", "tar.gz", "tar.zst"),
    "manifest": ("json",),
    "verify": ("json",),
    "pin": ("json",),
}
KIND_EXTENSIONS = {kind: exts + tuple(f"{ext}.age" for ext in exts if ext != "json") for kind, exts in _PLAIN_KIND_EXTENSIONS.items()}
# A directory-format dump: a directory whose files are encrypted one by one, so it has no ".age" form.
DIRECTORY_EXTENSION = "dir"
EXTENSIONS += (DIRECTORY_EXTENSION,)
KIND_EXTENSIONS["db"] += (DIRECTORY_EXTENSION,)
PREFIX_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_EXT_ALT = "|".join(re.escape(e) for e in sorted(EXTENSIONS, key=len, reverse=True))
_FINAL = r"(?P<prefix>[A-Za-z0-9][A-Za-z0-9._-]*)_(?P<kind>%s)_(?P<stamp>\d{8}_\d{6})_utc\.(?P<ext>%s)" % (
    "|".join(KINDS),
    _EXT_ALT,
)
# Matched whole (re.fullmatch), never with "$", which also accepts a trailing newline: a name that
# ends in one is someone else's file, never one of the engine's.
FINAL_RE = re.compile(_FINAL)
TEMP_RE = re.compile(r"\.(?P<final>%s)\.part-[A-Za-z0-9_]+" % _FINAL)


class BackupFileName(NamedTuple):
    prefix: str
    kind: str
    stamp: str
    ext: str

    @property
    def name(self) -> str:
        return f"{self.prefix}_{self.kind}_{self.stamp}_utc.{self.ext}"

    @property
    def set_id(self) -> str:
        return set_id(self.prefix, self.stamp)


def validate_prefix(prefix: str) -> Optional[str]:
    """Return why ``prefix`` is unusable, or None when it is fine."""
    if not PREFIX_RE.fullmatch(prefix or ""):
        return f"prefix {prefix!r} must start with a letter or digit and hold only letters, digits, '.', '_' or '-' (at most 63 characters)"
    return None


def format_stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(STAMP_FORMAT)


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=timezone.utc)


def set_id(prefix: str, stamp: str) -> str:
    """The name users see for a set: ``<prefix>_<stamp>_utc``."""
    return f"{prefix}_{stamp}_utc"


def file_name(prefix: str, kind: str, stamp: str, ext: str) -> str:
    if kind not in KINDS or ext not in KIND_EXTENSIONS[kind]:
        raise ValueError(f"unknown kind {kind!r} or extension {ext!r} for it")
    return BackupFileName(prefix, kind, stamp, ext).name


def _valid_stamp(stamp: str) -> bool:
    try:
        parse_stamp(stamp)
        return True
    except ValueError:
        return False


def parse_file_name(name: str) -> Optional[BackupFileName]:
    """Parse a final file name; None for anything that is not one of the engine's files: a kind
    with an extension the engine never writes for it (an operator's ``x_db_..._utc.sql``), or a
    stamp that is no time (``20261399_...``), is someone else's file and never touched."""
    match = FINAL_RE.fullmatch(name)
    if not match or match["ext"] not in KIND_EXTENSIONS[match["kind"]] or not _valid_stamp(match["stamp"]):
        return None
    return BackupFileName(match["prefix"], match["kind"], match["stamp"], match["ext"])


def parse_temp_name(name: str) -> Optional[BackupFileName]:
    """Parse a temporary file name and return the final name it was meant for, or None."""
    match = TEMP_RE.fullmatch(name)
    return parse_file_name(match["final"]) if match else None


SET_ID_RE = re.compile(r"(?P<prefix>[A-Za-z0-9][A-Za-z0-9._-]*)_(?P<stamp>\d{8}_\d{6})_utc")


def parse_set_id(text: str) -> Optional["tuple[str, str]"]:
    """(prefix, stamp) of a set id ``<prefix>_<stamp>_utc``, or None."""
    match = SET_ID_RE.fullmatch(text)
    return (match["prefix"], match["stamp"]) if match and _valid_stamp(match["stamp"]) else None


def prefix_of(wanted: str) -> Optional[str]:
    """The series prefix a set id or file name names; None for a bare stamp or anything else."""
    parsed = parse_file_name(wanted)
    if parsed is not None:
        return parsed.prefix
    found = parse_set_id(wanted)
    return found[0] if found else None


def set_id_of_manifest(name: str) -> Optional[str]:
    """The set a manifest file name belongs to, or None when it is not a manifest's name."""
    parsed = parse_file_name(name)
    return parsed.set_id if parsed is not None and parsed.kind == "manifest" else None


def temp_prefix(final_name: str) -> str:
    return f".{final_name}.part-"


def group_by_set(names: Iterable[str], prefix: str) -> Dict[str, List[BackupFileName]]:
    """Group the final file names of one prefix by stamp; foreign names are ignored."""
    groups: Dict[str, List[BackupFileName]] = {}
    for name in names:
        parsed = parse_file_name(name)
        if parsed is not None and parsed.prefix == prefix:
            groups.setdefault(parsed.stamp, []).append(parsed)
    return groups


def dump_extension(compression_method: str, piped: bool) -> str:
    """Extension of a database archive: a zstd pipe adds ``.zst``; native compression does not."""
    if piped and compression_method == "zstd":
        return "dump.zst"
    return "dump"


def media_extension(compression_method: str) -> str:
    return {"none": "tar", "gzip": "tar.gz", "zstd": "tar.zst"}[compression_method]
