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


class SetDamaged(PgdrillError):
    """The backup set's own bytes are proven bad: a checksum that does not match, a ciphertext that
    does not authenticate, an archive pg_restore or zstd rejects, restored content that differs.

    Only this failure may count against a set (retention then treats it as bad). Every other
    failure of a check (a wrong key, a server that is down, a missing tool or privilege) says the
    check could not be made, and nothing about the set."""
