# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The S3 backend: ``s3://BUCKET/PREFIX`` through boto3 (imported when a remote is opened)."""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import os
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import PgdrillError
from . import (
    ABSENT,
    DELETED,
    LOCKED,
    MIB,
    S3_CREDENTIALS_FIX,
    STALE_UPLOAD_AGE,
    LockSettings,
    Received,
    Remote,
    RemoteObject,
    RemoteURL,
    check_object_name,
    is_object_name,
    local_hashes,
    mismatch,
    object_key,
    require_local_file,
    retain_until,
    stale_uploads,
    without_userinfo,
)

PART_SIZE = 8 * MIB  # S3 parts: at least 5 MiB
PARTS_IN_FLIGHT = 2  # parts uploaded at once; PARTS_IN_FLIGHT + 1 parts are held in memory at most
MAX_PARTS = 10000
SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the whole file's sha256, hex


def composite_sha256(part_digests: Sequence[bytes]) -> str:
    """The checksum S3 reports for a multipart upload with SHA256 parts: sha256 of the parts'
    sha256 digests, base64, then ``-`` and the number of parts."""
    whole = hashlib.sha256(b"".join(part_digests)).digest()
    return f"{base64.b64encode(whole).decode()}-{len(part_digests)}"


def part_size_for(size: int, minimum: int = PART_SIZE) -> int:
    """A part size that keeps a file within S3's 10,000 parts, in whole MiB."""
    needed = -(-size // MAX_PARTS)
    return max(minimum, -(-needed // MIB) * MIB)


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
        """Objects directly under the prefix, and the members of each directory-format dump there
        (``<dir>/<member>``), by name. ``with_sha256`` asks each object for its stored sha256 (one
        request per object)."""
        found: List[RemoteObject] = []
        base = object_key(self.url.prefix, "")
        with self._errors("listing"):
            folders = [base]
            while folders:
                for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.url.bucket, Prefix=folders.pop(), Delimiter="/"):
                    found += [
                        RemoteObject(item["Key"][len(base) :], int(item["Size"]))
                        for item in page.get("Contents", [])
                        if is_object_name(item["Key"][len(base) :])
                    ]
                    # a folder whose members may be a set's objects: a directory-format dump's, one level down
                    folders += [item["Prefix"] for item in page.get("CommonPrefixes", []) if is_object_name(item["Prefix"][len(base) :] + "member")]
        if with_sha256:
            found = [self.stat(item.name) or item for item in found]
        return sorted(found)

    def put(self, path: str, name: Optional[str] = None, sha256: Optional[str] = None, lock: Optional[LockSettings] = None) -> RemoteObject:
        """Upload ``path`` as ``name`` once. ``sha256`` is the manifest's (computed when not
        given); the bytes sent must hash to it or the upload is abandoned before the object exists.
        With ``lock``, the object is stored with a retain-until date in that mode."""
        require_local_file(path)
        name = check_object_name(name or os.path.basename(path))
        key = self.key(name)
        self._refuse_existing(name)
        size = os.path.getsize(path)
        if sha256 is None:
            sha256 = local_hashes(path, ["sha256"])[0]["sha256"]
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

        def send(number: int, data: bytes, checksum: str) -> Dict[str, Any]:
            answer = self.client.upload_part(Bucket=self.url.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ChecksumSHA256=checksum)
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

        try:
            whole = hashlib.sha256()
            parts: List[Dict[str, Any]] = []
            digests: List[bytes] = []
            sent = 0
            in_flight: Deque[Future] = collections.deque()
            # PARTS_IN_FLIGHT parts go up at once (boto3's clients are thread-safe); the file is read
            # one part ahead of them, so at most PARTS_IN_FLIGHT + 1 parts are ever held in memory.
            with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="pgdrill-upload") as pool:
                try:
                    while True:
                        data = handle.read(part_size)
                        if not data:
                            break
                        whole.update(data)
                        digest = hashlib.sha256(data).digest()
                        digests.append(digest)
                        sent += len(data)
                        if len(in_flight) >= PARTS_IN_FLIGHT:
                            parts.append(in_flight.popleft().result())
                        in_flight.append(pool.submit(send, len(digests), data, base64.b64encode(digest).decode()))
                        del data
                    while in_flight:
                        parts.append(in_flight.popleft().result())
                except BaseException:
                    for waiting in in_flight:
                        waiting.cancel()
                    raise
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
                    if is_object_name(name):
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
