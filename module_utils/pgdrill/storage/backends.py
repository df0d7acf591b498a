# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Choosing the backend a ``remote`` setting names: the one place that knows every backend (the
backends import the interface from :mod:`pgdrill.storage`, so the choice lives beside them, not in
the package's interface)."""

from __future__ import annotations

from typing import Dict, Optional

from ..errors import PgdrillError
from . import Remote, parse_remote
from .rclone import RcloneRemote
from .s3 import S3Remote


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
