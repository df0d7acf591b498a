# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""How a host command behaves as a process: its stdout survives a closed pipe, and SIGTERM unwinds
like Ctrl-C (pgdrill-backup's and the Django command's alike)."""

from __future__ import annotations

import os


class PipeSafeStdout:
    """stdout that survives its reader going away (``pgdrill-backup list | head``): the rest of the
    output is dropped, the work itself goes on and its exit code stands."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _silence(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def on_sigterm(signum, frame):  # noqa: ARG001
    # Unwind like Ctrl-C so that partial files are removed on the way out.
    raise SystemExit(128 + signum)
