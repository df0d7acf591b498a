# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""A series' off-host copies: push, pull, list, verify and prune on the remote.

The remote holds a series' sets under the same file names as the backup directory (a
directory-format dump as one object per member, ``<dir>/<member>``). A set is uploaded file by
file, its manifest last: a remote set without a manifest is debris of an
interrupted push and never counts. Objects are written once (``storage.Remote.put`` refuses to
overwrite), so versioned and Object-Lock buckets keep every copy as first written. Verification
records stay local: they are rewritten, which a write-once remote does not allow.

The decisions (which sets a push still owes, what a remote set is) are pure functions in
:mod:`offsite_sets`; the I/O here is thin and goes through :mod:`storage` only: ``base`` (the remote, its
listing and sets), ``push``, ``pull`` (pull and verify --remote) and ``prune`` (remote retention and pins).
"""

from __future__ import annotations

from .base import NO_REMOTE_FIX, DigestSink, catalog, choose, lock_settings, objects_by_name, open_for, read_document, series_hosts
from .prune import pin_remote_only, prune_remote, remote_pin_summary, unpin_remote
from .pull import foreign_problem, pull, pull_skip_reason, verify_remote
from .push import push, push_set, remote_only_sets

__all__ = [
    "NO_REMOTE_FIX",
    "DigestSink",
    "catalog",
    "choose",
    "foreign_problem",
    "lock_settings",
    "objects_by_name",
    "open_for",
    "pin_remote_only",
    "prune_remote",
    "pull",
    "pull_skip_reason",
    "push",
    "push_set",
    "read_document",
    "remote_only_sets",
    "remote_pin_summary",
    "series_hosts",
    "unpin_remote",
    "verify_remote",
]
