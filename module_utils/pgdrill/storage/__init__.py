# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Off-host storage: one small interface (:class:`Remote`), one module per backend.

``s3://BUCKET/PREFIX`` (:mod:`.s3`)
    S3-compatible object storage through boto3 (the ``offhost`` extra, or Debian's python3-boto3).
    Credentials come from the standard AWS chain only (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SHARED_CREDENTIALS_FILE`` with a profile, instance roles); pgdrill's config names at most
    an endpoint, a region and a profile, never a secret.
``rclone:REMOTE:PATH`` (or ``rclone::BACKEND:PATH`` for a backend configured only by environment) (:mod:`.rclone`)
    any rclone backend (SFTP, GCS, Azure, B2, ...), configured by rclone's own config file or
    ``RCLONE_CONFIG_*`` variables, run from argument lists.

The rules every backend keeps:

- an object is written once: ``put`` refuses a name that exists, so buckets with Object Lock or
  versioning keep every copy as first written;
- ``put`` proves the copy: the size and a hash of what the remote stored are compared with the
  local file after the upload (S3: the whole-file sha256 is stored as object metadata, because
  multipart checksums are composite, and each part's sha256 is checked by the server on arrival);
- ``get`` writes into an :class:`~pgdrill.fsio.AtomicWriter` and verifies the sha256 before the
  file gets its final name;
- ``delete`` of an object that Object Lock protects reports ``kept (locked)``, not an error;
- every failure (server down, credentials refused, no bucket, rclone missing) is a PgdrillError
  with the problem and the fix.

A third backend goes in a module of its own beside ``s3.py`` and ``rclone.py``: a subclass of
:class:`Remote` (the methods that raise NotImplementedError here), its URL form in
:func:`parse_remote` (a new ``RemoteURL.kind``), and one branch in :func:`pgdrill.storage.backends.open_remote`.

This package knows objects, not backup sets: which files make a set, in which order they are
uploaded and what a remote set is are the set model's (:mod:`pgdrill.offsite_sets`).
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Protocol, Sequence, Tuple

from ..errors import PgdrillError, SetDamaged
from ..fsio import AtomicWriter
from ..naming import parse_file_name

DELETED = "deleted"
LOCKED = "kept (locked)"
ABSENT = "absent"
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
MAX_LOCK_DAYS = 36500  # the configuration's bound (rules.py reads it): a hundred years
MIB = 1 << 20
URL_FIX = "write remote as s3://BUCKET/PREFIX or rclone:REMOTE:PATH"
S3_CREDENTIALS_FIX = (
    "give the host credentials through the standard AWS chain: AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY in its environment, or AWS_SHARED_CREDENTIALS_FILE (0600) with remote_profile; "
    "never in pgdrill's config"
)


# --- remote URLs (pure) ---------------------------------------------------------------------------
class RemoteURL(NamedTuple):
    kind: str  # "s3" or "rclone"
    bucket: str  # s3 only
    prefix: str  # s3: key prefix without slashes at either end; rclone: the path
    rclone_remote: str  # rclone only: "NAME" or ":BACKEND"

    @property
    def text(self) -> str:
        if self.kind == "s3":
            return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"rclone:{self.rclone_remote}:{self.prefix}"


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_RCLONE_NAME_RE = re.compile(r"[A-Za-z0-9_.+@-][A-Za-z0-9_.+@ -]*")
_RCLONE_BACKEND_RE = re.compile(r":[a-z0-9]+")  # all matched whole (fullmatch)


def _prefix_problem(prefix: str) -> Optional[str]:
    parts = prefix.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' path segment"
    if any(ord(char) < 32 for char in prefix):
        return "holds control characters"
    return None


def without_userinfo(url: str) -> str:
    """A URL as it may appear in a message: whatever stands before an ``@`` (``user:secret@``,
    inline credentials) is cut, the scheme and the host kept. Pure."""
    if "@" not in url:
        return url
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://...@{url.rsplit('@', 1)[1]}" if sep else "...@" + url.rsplit("@", 1)[1]


def _shown(text: str) -> str:
    """A remote URL as it may appear in a message: anything that looks like inline credentials
    (``user:secret@`` in an s3 URL, ``,key=value`` parameters of an rclone backend) is cut."""
    if text.startswith("s3://") and "@" in text.split("/", 3)[2]:
        text = without_userinfo(text)
    if "," in text:
        text = text.split(",", 1)[0] + ",..."
    return text


def parse_remote(url: str) -> RemoteURL:
    """Parse a ``remote`` setting; a PgdrillError names what is wrong and how to write it. Pure."""
    text = (url or "").strip()
    shown = _shown(text)
    if text.startswith("s3://"):
        rest = text[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if "@" in bucket:
            raise PgdrillError(f"remote {shown!r}: credentials do not belong in the remote URL", "give them through the AWS chain: " + S3_CREDENTIALS_FIX)
        prefix = prefix.strip("/")
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise PgdrillError(f"remote {shown!r}: {_shown(bucket)!r} is not a valid bucket name (3 to 63 lower-case letters, digits, '.' or '-')", URL_FIX)
        if prefix:
            problem = _prefix_problem(prefix)
            if problem:
                raise PgdrillError(f"remote {shown!r}: the prefix {prefix!r} {problem}", URL_FIX)
        return RemoteURL("s3", bucket, prefix, "")
    if text.startswith("rclone:"):
        rest = text[len("rclone:") :]
        if rest.startswith(":"):  # rclone::BACKEND:PATH, an on-the-fly backend
            backend, sep, path = rest[1:].partition(":")
            name = ":" + backend
            if not sep or not _RCLONE_BACKEND_RE.fullmatch(name):
                if "," in backend:
                    raise PgdrillError(
                        f"remote {shown!r}: backend parameters do not belong in the remote URL (it appears in process lists and logs)",
                        "configure the backend in rclone's config file or RCLONE_CONFIG_<NAME>_* / RCLONE_<BACKEND>_* variables",
                    )
                raise PgdrillError(f"remote {shown!r}: write an on-the-fly backend as rclone::BACKEND:PATH, e.g. rclone::local:/srv/backups", URL_FIX)
        else:
            name, sep, path = rest.partition(":")
            if not sep or not name or not _RCLONE_NAME_RE.fullmatch(name) or name != name.strip():
                raise PgdrillError(f"remote {shown!r}: name the rclone remote and a path, as rclone:REMOTE:PATH", URL_FIX)
        path = path.rstrip("/") if path not in ("/",) else path
        if path and path != "/":
            problem = _prefix_problem(path.lstrip("/"))
            if problem:
                raise PgdrillError(f"remote {shown!r}: the path {path!r} {problem}", URL_FIX)
        return RemoteURL("rclone", "", path, name)
    if "://" in text:
        raise PgdrillError(f"remote {shown!r}: pgdrill stores off-host copies in s3:// object storage or through rclone", URL_FIX)
    raise PgdrillError(f"remote {shown!r} is not a remote pgdrill understands", URL_FIX)


def object_key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def check_object_name(name: str) -> str:
    """An object of a set is a plain file name, not hidden; or one member of a directory-format
    dump, ``<the directory's file name>/<member>``, one level down and no deeper. Pure."""
    parts = (name or "").split("/")
    if len(parts) > 2 or (len(parts) == 2 and parse_file_name(parts[0]) is None) or any(_bad_segment(part) for part in parts):
        raise ValueError(f"not a backup file name: {name!r}")
    return name


def _bad_segment(part: str) -> bool:
    return not part or part.startswith(".") or any(ord(char) < 32 for char in part)


def is_object_name(name: str) -> bool:
    """Is ``name`` (relative to the prefix) one a set's objects can have (:func:`check_object_name`)? Pure."""
    try:
        check_object_name(name)
    except ValueError:
        return False
    return True


def folder_of(name: str) -> str:
    """The set's file an object belongs to: itself, or the directory a member lies in. Pure."""
    return name.split("/", 1)[0]


# --- Object Lock (pure) ---------------------------------------------------------------------------
class LockSettings(NamedTuple):
    mode: str
    days: int


def parse_lock(mode: Optional[str], days: Optional[int]) -> Optional[LockSettings]:
    """``remote_object_lock_mode`` and ``remote_object_lock_days``: None when no lock is asked for."""
    if days is not None and not 0 <= days <= MAX_LOCK_DAYS:
        raise PgdrillError(f"remote_object_lock_days is {days}", f"give a number of days from 1 to {MAX_LOCK_DAYS}, or 0 for no lock")
    if not days:
        return None
    chosen = (mode or "GOVERNANCE").upper()
    if chosen not in LOCK_MODES:
        raise PgdrillError(f"remote_object_lock_mode {mode!r} is not an S3 Object Lock mode", "use GOVERNANCE or COMPLIANCE")
    return LockSettings(chosen, int(days))


def retain_until(now: datetime, days: int) -> datetime:
    return (now.astimezone(timezone.utc) + timedelta(days=days)).replace(microsecond=0)


# --- remote set layout (pure) --------------------------------------------------------------------
class RemoteObject(NamedTuple):
    name: str
    size: int
    sha256: Optional[str] = None  # the whole file's sha256 when the remote tells it
    hashes: Dict[str, str] = {}  # every hash the remote reported, by rclone's hash name


STALE_UPLOAD_AGE = timedelta(days=1)


def stale_uploads(uploads: Iterable[Tuple[str, str, datetime]], prefix: str, now: datetime, age: timedelta = STALE_UPLOAD_AGE) -> List[Tuple[str, str]]:
    """(name, upload id) of the incomplete multipart uploads to abort: those of this series' own
    file names (matched whole), started more than ``age`` before ``now``. A younger one may be a
    push in progress; another series' or a foreign one is not ours to touch. Pure."""
    return [
        (name, upload_id) for name, upload_id, started in uploads if getattr(parse_file_name(folder_of(name)), "prefix", None) == prefix and now - started > age
    ]


class Mismatch(SetDamaged):
    """What arrived from (or was stored on) the remote is not the file it should be: the copy's own
    bytes are proven bad, unlike a server that is down or credentials that are refused."""


def mismatch(where: str, what: str, found: Any, expected: Any) -> PgdrillError:
    return Mismatch(
        f"{where}: {what} is {found}, expected {expected}; the copy is damaged or not the file it should be",
        "do not trust this copy: use another set or another copy, and check the remote storage",
    )


# --- the interface ---------------------------------------------------------------------------------
class Received(Protocol):
    """Where a download goes: an AtomicWriter (a file that appears only once checked), or a sink
    that only hashes (verify --remote). Both count and hash what they were given."""

    size: int

    @property
    def sha256(self) -> str: ...

    def write(self, data: bytes) -> None: ...


class Remote:
    """What the engine asks of off-host storage. Names are a set's file names, under the URL's prefix,
    or a directory-format dump's members one level down (``<dir>/<member>``, :func:`check_object_name`)."""

    url: RemoteURL

    @property
    def text(self) -> str:
        return self.url.text

    def where(self, name: str) -> str:
        return f"{self.text.rstrip('/')}/{name}"

    def check(self) -> None:
        """Reachable, credentials accepted, bucket or path usable; else a PgdrillError."""
        raise NotImplementedError

    def stat(self, name: str) -> Optional[RemoteObject]:
        raise NotImplementedError

    def list(self) -> List[RemoteObject]:
        raise NotImplementedError

    def put(self, path: str, name: Optional[str] = None, sha256: Optional[str] = None, lock: Optional[LockSettings] = None) -> RemoteObject:
        raise NotImplementedError

    def get_into(self, name: str, writer: "Received", expected_sha256: Optional[str] = None, expected_size: Optional[int] = None) -> RemoteObject:
        raise NotImplementedError

    def delete(self, name: str) -> str:
        raise NotImplementedError

    def remove_empty_folder(self, folder: str) -> None:
        """Remove the folder a directory-format dump's members were in, once they are deleted, where
        the storage keeps folders of their own (object storage has none: nothing to do)."""

    def check_lock(self, lock: LockSettings) -> None:
        """Refuse Object Lock settings the remote cannot honour (a PgdrillError naming them)."""
        raise NotImplementedError

    def incomplete_uploads(self) -> List[str]:
        """Names of uploads that were interrupted and left something behind on the remote."""
        raise NotImplementedError

    def abort_incomplete_uploads(self) -> int:
        """Remove what interrupted uploads left behind; how many there were. Run it only under the
        series lock: an upload in progress elsewhere would be removed too."""
        raise NotImplementedError

    def abort_stale_uploads(self, prefix: str, now: datetime, age: timedelta = STALE_UPLOAD_AGE) -> List[str]:
        """Abort the interrupted uploads of one series (``prefix``) started more than ``age`` before
        ``now`` (the storage bills their parts until then); the names. What the listing does not
        date (rclone's partial files) is left to :meth:`abort_incomplete_uploads`."""
        return []

    def get(self, name: str, directory: str, expected_sha256: Optional[str] = None, expected_size: Optional[int] = None) -> str:
        """Download ``name`` into ``directory`` under the same name; the file appears only once
        its sha256 (and size) matched. Returns its path."""
        with AtomicWriter(directory, check_object_name(name)) as writer:
            self.get_into(name, writer, expected_sha256, expected_size)
            return writer.commit()

    def _stored_after_upload(self, name: str, size: int, where_to_look: str) -> "RemoteObject":
        """The object as the remote lists it right after an upload, refused unless it is there
        with the size uploaded (each backend then compares its own checksums)."""
        stored = self.stat(name)
        where = self.where(name)
        if stored is None:
            raise PgdrillError(f"uploading {where}: the object is missing right after its upload", f"check {where_to_look}; run the push again")
        if stored.size != size:
            raise mismatch(where, "the stored size", stored.size, size)
        return stored

    def _refuse_existing(self, name: str) -> None:
        if self.stat(name) is not None:
            raise PgdrillError(
                f"{self.where(name)} already exists; pgdrill writes every remote object once and never overwrites it",
                "nothing to do if it is this set's file; otherwise remove it from the remote by hand",
            )

    def _verify_arrival(self, name: str, writer: "Received", there: RemoteObject, expected_sha256: Optional[str], expected_size: Optional[int]) -> None:
        where = self.where(name)
        if writer.size != there.size:
            raise mismatch(where, "the size received", writer.size, f"{there.size} (the remote's listing)")
        if expected_size is not None and writer.size != expected_size:
            raise mismatch(where, "the size", writer.size, f"{expected_size} (the manifest)")
        if there.sha256 and writer.sha256 != there.sha256:
            raise mismatch(where, "the sha256 of what arrived", writer.sha256, f"{there.sha256} (stored with the object)")
        if expected_sha256 and writer.sha256 != expected_sha256:
            raise mismatch(where, "the sha256", writer.sha256, f"{expected_sha256} (the manifest)")


def local_hashes(path: str, kinds: Sequence[str]) -> Tuple[Dict[str, str], int]:
    digests = {kind: hashlib.new(kind) for kind in kinds}
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while True:
            chunk = handle.read(MIB)
            if not chunk:
                break
            size += len(chunk)
            for digest in digests.values():
                digest.update(chunk)
    return {kind: digest.hexdigest() for kind, digest in digests.items()}, size


def require_local_file(path: str) -> None:
    if not os.path.isfile(path):
        raise PgdrillError(f"cannot upload {path}: no such file")
