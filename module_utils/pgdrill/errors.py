# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The one error type the engine raises for conditions a user can fix."""

from __future__ import annotations


class PgdrillError(Exception):
    """A failure that names the problem and, where one exists, the fix.

    ``details`` carries machine-readable context (rc, stderr, cmd) for the Ansible modules.
    """

    def __init__(self, problem: str, fix: str = "", **details: object) -> None:
        self.problem = problem
        self.fix = fix
        self.details = details
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.problem}. Fix: {self.fix}" if self.fix else self.problem


class LockBusy(PgdrillError):
    """Another run holds the lock of the same backup series."""
