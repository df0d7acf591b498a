# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The one error type the engine raises for conditions a user can fix, and the exit codes a run ends
with (pgdrill-backup's, the Django command's and the scheduled drill's alike)."""

from __future__ import annotations

# 0 everything asked for succeeded; 1 a backup, check or prune failed; 2 bad usage or configuration;
# 75 (EX_TEMPFAIL) another run holds the series lock: try again later.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 75


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
