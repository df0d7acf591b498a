# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""What a verification concludes about its set. Pure.

A failed check blames the set only when the set's own bytes are proven bad (a checksum that does
not match, a ciphertext that does not authenticate, an archive pg_restore rejects, restored content
that differs): the verdict is then ``bad``, and only a bad set is treated as bad by retention. A
check that could not be made (a wrong or missing key, a server that is down, a role without
CREATEDB, a missing tool) makes the verdict ``inconclusive``: the run fails, and the set keeps the
last conclusive verdict it had."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Tuple

from .errors import PgdrillError, SetDamaged

PASSED = "passed"
BAD = "bad"
INCONCLUSIVE = "inconclusive"
CONCLUSIVE = (PASSED, BAD)

BLAME_SET = "set"
BLAME_ENVIRONMENT = "environment"

# Records written before checks carried a blame: these checks could fail only on the set's bytes.
_LEGACY_PROOFS = ("checksum ", "age header ")


def check(name: str, ok: bool, detail: str, blame: str = BLAME_SET, **extra: Any) -> Dict[str, Any]:
    """One check's result; a failed one says whom it blames (the set, or what was needed to check it)."""
    return {"name": name, "ok": ok, "detail": detail, **({} if ok else {"blame": blame}), **extra}


def failed_check(name: str, exc: PgdrillError) -> Dict[str, Any]:
    """A check that raised: the set is blamed only for a SetDamaged."""
    if isinstance(exc, SetDamaged):
        return check(name, False, exc.message)
    return check(name, False, f"could not verify: {exc.message}", blame=BLAME_ENVIRONMENT)


def blame_of(result: Dict[str, Any]) -> str:
    """Whom a failed check blames (records of older pgdrill versions: by the check's name)."""
    blame = result.get("blame")
    if blame in (BLAME_SET, BLAME_ENVIRONMENT):
        return str(blame)
    name = str(result.get("name", ""))
    return BLAME_SET if name == "manifest" or name.startswith(_LEGACY_PROOFS) else BLAME_ENVIRONMENT


def of_checks(checks: Iterable[Any]) -> str:
    """passed when every check passed; bad when a failed one blames the set; else inconclusive."""
    failed = [item for item in checks if not (isinstance(item, dict) and item.get("ok") is True)]
    if not failed:
        return PASSED
    if any(isinstance(item, dict) and blame_of(item) == BLAME_SET for item in failed):
        return BAD
    return INCONCLUSIVE


def of_record(record: Any) -> Optional[str]:
    """The verdict a verification record states (or, for an older record, implies); None for none."""
    if not isinstance(record, dict):
        return None
    stated = record.get("verdict")
    if stated in (PASSED, BAD, INCONCLUSIVE):
        return str(stated)
    if record.get("ok") is True:
        return PASSED
    checks = record.get("checks")
    return of_checks(checks) if isinstance(checks, list) and checks else INCONCLUSIVE


def conclusive(record: Any) -> Optional[Dict[str, Any]]:
    """The last conclusive verdict a record carries: its own, or the one an inconclusive run kept
    ({"verdict", "restored", "checked_at"}); None when the set was never verified conclusively."""
    verdict = of_record(record)
    if verdict in CONCLUSIVE:
        return {"verdict": verdict, "restored": bool(record.get("restored")), "checked_at": record.get("checked_at")}
    if verdict == INCONCLUSIVE:
        kept = record.get("last_conclusive")
        return conclusive(kept) if isinstance(kept, dict) and kept.get("verdict") in CONCLUSIVE else None
    return None


def could_not_verify(record: Any) -> Optional[str]:
    """Why the latest run could not verify the set (its first failed check), or None."""
    if of_record(record) != INCONCLUSIVE:
        return None
    for item in record.get("checks") or []:
        if isinstance(item, dict) and item.get("ok") is not True and not item.get("skipped"):
            return str(item.get("detail") or item.get("name") or "a check could not run")
    return "a check could not run"


def failure_words(set_name: str, checks: Iterable[Dict[str, Any]]) -> Optional[Tuple[str, bool]]:
    """What to say about a verification that did not pass, and whether it blames the set: the
    failed check named is one that blames the set, when any does; None when every check passed. Pure."""
    failed = [check for check in checks if not check.get("ok")]
    if not failed:
        return None
    check = next((item for item in failed if blame_of(item) == BLAME_SET), failed[0])
    if blame_of(check) == BLAME_SET:
        return f"backup set {set_name} failed verification: {check['name']}: {check['detail']}", True
    return f"backup set {set_name} could not be verified (the set is not blamed): {check['name']}: {check['detail']}", False
