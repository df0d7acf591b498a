# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The S3 backend: ``s3://BUCKET/PREFIX`` through botocore, the core of the AWS SDK for Python (boto3), imported when a remote is opened."""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib.util
import os
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

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
from .s3_parts import PART_SIZE, FileWindow, GrowingUpload, PartSender, UploadPool, composite_sha256, part_size_for

__all__ = ["S3Remote", "composite_sha256", "part_size_for"]

SHA256_METADATA = "sha256"  # x-amz-meta-sha256: the whole file's sha256, hex


class S3Remote(Remote):
    def __init__(
        self, url: RemoteURL, endpoint_url: Optional[str] = None, region: Optional[str] = None, profile: Optional[str] = None, part_size: int = PART_SIZE
    ) -> None:
        self.url = url
        self.endpoint_url = endpoint_url or None
        self.part_size = part_size
        self._proven: Dict[str, RemoteObject] = {}  # objects uploaded beside their writer, and proven (finish_while_written)
        self._lock_checked: Optional[LockSettings] = None  # the bucket's Object Lock, checked by an upload beside the dump
        self._settings = (region or None, profile or None)
        self._client: Any = None
        self._client_lock = threading.Lock()
        if importlib.util.find_spec("botocore") is None:
            raise PgdrillError(
                f"remote {url.text} needs the AWS SDK for Python (boto3), which is not installed",
                "install it: apt install python3-boto3, or pip install 'pgdrill[offhost]'",
            )

    @property
    def client(self) -> Any:
        """The botocore S3 client, made on first use: importing botocore and loading its S3 model take
        about half a second of CPU, which a backup spends while pg_dump runs (the upload beside the
        dump asks first). botocore, not boto3: boto3 adds 3 MB to the process and nothing used here."""
        with self._client_lock:
            if self._client is None:
                import botocore.session
                from botocore.config import Config

                region, profile = self._settings
                with self._errors("setting up the S3 client"):
                    session = botocore.session.Session(profile=profile)
                    session.get_scoped_config()  # a profile that does not exist fails here, by name
                    options: Dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 10, "read_timeout": 120}
                    # No second sha256 pass over every byte sent to http endpoints (https ones skip it already):
                    # each part and each single upload carries its sha256 in a signed header the storage checks,
                    # and every object is checked after its upload (size, sha256 or composite checksum).
                    options["s3"] = {"payload_signing_enabled": False}
                    if self.endpoint_url:
                        options["s3"]["addressing_style"] = "path"  # what S3-compatible servers all accept
                    self._client = session.create_client("s3", region_name=region, endpoint_url=self.endpoint_url, config=Config(**options))
            return self._client

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
        found = RemoteObject(name, int(head["ContentLength"]), sha, hashes)
        proven = self._proven.get(name)
        if sha is None and proven is not None and (proven.size, proven.hashes.get("s3-checksum-sha256")) == (found.size, hashes.get("s3-checksum-sha256")):
            return proven  # the very object this process uploaded and proved: same size, same composite checksum of its parts
        return found

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
        extra: Dict[str, Any] = {"Metadata": {SHA256_METADATA: sha256}, **self._lock_arguments(lock)}
        part_size = part_size_for(size, self.part_size)
        with self._errors("uploading", name), open(path, "rb") as handle:
            if size <= part_size:  # one request, its body read from the file (the storage checks its sha256)
                local, read = local_hashes(path, ["sha256"])
                if local["sha256"] != sha256 or read != size:
                    raise mismatch(path, "the sha256", local["sha256"], f"{sha256} (given for the upload)")
                expected_checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
                body = FileWindow(handle.fileno(), 0, size)
                self._put_once(dict(Bucket=self.url.bucket, Key=key, Body=body, ChecksumSHA256=expected_checksum, **extra), name)
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

    @staticmethod
    def _lock_arguments(lock: Optional[LockSettings]) -> Dict[str, Any]:
        """The arguments that store an object with a retain-until date (none without ``lock``)."""
        if lock is None:
            return {}
        return {"ObjectLockMode": lock.mode, "ObjectLockRetainUntilDate": retain_until(datetime.now(timezone.utc), lock.days)}

    def _put_once(self, arguments: Dict[str, Any], name: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(IfNoneMatch="*", **arguments)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412"):
                self._refuse_existing(name)
            raise

    def _multipart(self, handle, key: str, name: str, size: int, part_size: int, sha256: str, extra: Dict[str, Any]) -> str:
        upload_id = self.client.create_multipart_upload(Bucket=self.url.bucket, Key=key, ChecksumAlgorithm="SHA256", **extra)["UploadId"]
        sender = PartSender(functools.partial(self._upload_part, key, upload_id), handle.fileno())
        try:
            while sender.sent < size:
                sender.send(min(part_size, size - sender.sent))
            parts = sender.finish()
            if sender.sent != size or sender.whole.hexdigest() != sha256:
                raise mismatch(
                    handle.name, "the sha256 of the bytes sent", sender.whole.hexdigest(), f"{sha256} (given for the upload); the upload was abandoned"
                )
            self._complete(key, name, upload_id, parts)
        except BaseException:
            sender.cancel()
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.url.bucket, Key=key, UploadId=upload_id)
            raise
        return composite_sha256(sender.digests)

    def _upload_part(self, key: str, upload_id: str, number: int, window: FileWindow, checksum: str) -> Dict[str, Any]:
        answer = self.client.upload_part(Bucket=self.url.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=window, ChecksumSHA256=checksum)
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

    def _complete(self, key: str, name: str, upload_id: str, parts: List[Dict[str, Any]]) -> None:
        """Make the object exist, unless another already does (the storage checks each part's sha256)."""
        from botocore.exceptions import ClientError

        try:
            self.client.complete_multipart_upload(Bucket=self.url.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*")
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412"):
                self._refuse_existing(name)
            raise

    # --- an upload beside the writer of its file (the dump) -----------------------------------------
    def upload_while_written(
        self, path: str, name: str, lock: Optional[LockSettings] = None, pool: Optional[UploadPool] = None, dir_fd: Optional[int] = None
    ) -> GrowingUpload:
        """Start uploading ``path`` as ``name`` while it is written (see :class:`GrowingUpload`;
        ``pool`` and ``dir_fd`` for a directory dump's sealed members); :meth:`finish_while_written`
        makes the object exist, :meth:`abort_while_written` leaves nothing. S3 fixes an object's
        metadata when its upload starts, before the file's sha256 exists: the object carries the
        storage's composite SHA256 of its parts, not the whole file's sha256 (which the set's
        manifest holds)."""
        key = self.key(name)
        extra = self._lock_arguments(lock)

        def begin() -> str:
            with self._errors("uploading", name):
                self._refuse_existing(name)
                if lock is not None and lock != self._lock_checked:
                    self.check_lock(lock)
                    self._lock_checked = lock  # once per run, not once per member of a directory dump
                return self.client.create_multipart_upload(Bucket=self.url.bucket, Key=key, ChecksumAlgorithm="SHA256", **extra)["UploadId"]

        return GrowingUpload(path, begin, functools.partial(self._upload_part, key), pool, dir_fd)

    def finish_while_written(self, upload: GrowingUpload, name: str) -> RemoteObject:
        """Once the file ended (``upload.ended``): wait for its last parts, check that the bytes sent
        hash to the file's sha256, complete the upload and check the stored object (its size, and the
        storage's composite SHA256 against the parts' digests). The object is then known to this remote
        as that file (:meth:`stat` reports its sha256). Any failure aborts the upload."""
        where = self.where(name)
        try:
            with self._errors("uploading", name):
                try:
                    parts, digests = upload.wait()
                except ValueError as exc:
                    raise mismatch(where, "what was uploaded beside the dump", exc, "the file as written; the upload was abandoned") from None
                if upload.upload_id is None:
                    raise RuntimeError("the upload beside the dump has no upload id: it never began")
                self._complete(self.key(name), name, upload.upload_id, parts)
        except BaseException:
            self.abort_while_written(upload, name)
            raise
        size, sha256 = upload.final
        stored = self._stored_after_upload(name, size, "the object storage")
        expected = composite_sha256(digests)
        if stored.hashes.get("s3-checksum-sha256") != expected:
            raise mismatch(where, "the storage's own SHA256 checksum", stored.hashes.get("s3-checksum-sha256"), expected)
        self._proven[name] = stored._replace(sha256=sha256, hashes={**stored.hashes, "sha256": sha256})
        return self._proven[name]

    def abort_while_written(self, upload: GrowingUpload, name: str) -> None:
        """Stop the upload and abort it: nothing of it stays on the remote. A part stuck on a storage
        that stopped answering is not waited for long; the next push aborts what it left after a day."""
        if upload.stop() and upload.upload_id is not None:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.url.bucket, Key=self.key(name), UploadId=upload.upload_id)
        upload.close()

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
