# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""One set model over two stores: what the engine asks of a backup set, whether it lies in the
backup directory (:class:`pgdrill.catalog.BackupSet`) or on a remote
(:class:`pgdrill.offsite_sets.RemoteSetInfo`), and the decisions written once over it. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Protocol, Sequence, Tuple, TypeVar

from . import manifest as manifest_mod, retention, verdict


class BackupSetView(Protocol):
    """The questions both stores answer about a set."""

    prefix: str
    stamp: str
    manifest: Optional[Dict[str, Any]]  # the trusted manifest, or None

    @property
    def id(self) -> str: ...

    @property
    def time(self) -> datetime: ...

    @property
    def complete(self) -> bool: ...

    @property
    def damaged(self) -> bool: ...

    @property
    def known_bad(self) -> bool: ...

    @property
    def kinds(self) -> FrozenSet[str]: ...

    @property
    def pinned(self) -> bool: ...

    @property
    def pin_reason(self) -> str: ...

    @property
    def problem(self) -> Optional[str]: ...

    @property
    def size(self) -> int: ...

    @property
    def file_names(self) -> List[str]: ...


class Dated(Protocol):
    """What choosing the newest set needs: its time and whether it is complete (a set listed by
    name only, from a directory listing, answers these two and nothing more)."""

    @property
    def time(self) -> datetime: ...

    @property
    def complete(self) -> bool: ...


D = TypeVar("D", bound=Dated)
S = TypeVar("S", bound=BackupSetView)


def facts(backup: BackupSetView, protect: Optional[str] = None) -> retention.SetFacts:
    """What retention needs to know about a set, local or remote (``protect``: the id of a set a
    run must not remove). Kinds count only for a complete set."""
    return retention.SetFacts(
        backup.id,
        backup.time,
        backup.complete,
        backup.damaged,
        backup.known_bad,
        backup.kinds if backup.complete else frozenset(),
        backup.id == protect,
        (backup.problem or "") if backup.damaged else "",
        backup.pinned,
        backup.pin_reason,
    )


def is_complete(backup: Dated) -> bool:
    return backup.complete


def newest(sets: Iterable[D], now: datetime, usable: Callable[[D], bool] = is_complete) -> Optional[D]:
    """The first set (sets come newest first) that is ``usable`` (by default: complete) and not
    dated ahead of ``now``: a set dated in the future is never "the newest", it can only be named."""
    return next((backup for backup in sets if usable(backup) and not retention.is_future(backup.time, now)), None)


def verified(record: Any) -> str:
    """never, ok, ok+restore, or failed: the last conclusive verdict a verification record carries,
    whichever store holds it (a set's file in the backup directory, this host's record of what
    verify --remote proved). A run that could not verify (a wrong key, a server down) leaves it as it was."""
    last = verdict.conclusive(record)
    if last is None:
        return "never"
    if last["verdict"] == verdict.BAD:
        return "failed"
    return "ok+restore" if last["restored"] else "ok"


class RecordedVerdict:
    """What a set's verification record concludes, for both stores: a set class that holds its
    record in ``verification`` gets ``verified`` and ``known_bad`` by the one rule of :func:`verified`."""

    verification: Optional[Dict[str, Any]]

    @property
    def verified(self) -> str:
        """never, ok, ok+restore, or failed: the last conclusive verdict of its verification record."""
        return verified(self.verification)

    @property
    def known_bad(self) -> bool:
        """Its own bytes were proven bad: the only verification outcome that counts against a set."""
        return self.verified == "failed"


def state(backup: BackupSetView, now: datetime) -> str:
    """complete, damaged, incomplete, or future (complete but dated ahead of the clock)."""
    if backup.complete:
        return "future" if retention.is_future(backup.time, now) else "complete"
    return "damaged" if backup.damaged else "incomplete"


def listing_row(backup: BackupSetView, now: datetime) -> Dict[str, Any]:
    """What ``list`` shows of a set in either store (each store adds what only it knows)."""
    ahead = retention.is_future(backup.time, now)
    return {
        "set": backup.id,
        "prefix": backup.prefix,
        "stamp": backup.stamp,
        "manifest": manifest_mod.manifest_name(backup.prefix, backup.stamp),
        "time": backup.time.isoformat(),
        # A set from the future has no age: a negative one would read as "very fresh".
        "age_seconds": None if ahead else round(max((now - backup.time).total_seconds(), 0.0), 1),
        "size": backup.size,
        "state": state(backup, now),
        "problem": backup.problem if backup.damaged else None,
        "kinds": sorted(backup.kinds),
        "pinned": backup.pinned,
        "finished_at": (backup.manifest or {}).get("finished_at"),
    }


def is_manifest(name: str) -> bool:
    """Is this file of a set its manifest? Pure."""
    return "_manifest_" in name


def deletion_order(names: Iterable[str]) -> List[str]:
    """The files of a set in the order a prune deletes them: the manifest first, so that an
    interrupted prune leaves debris, never a manifest that points at missing files."""
    return sorted(names, key=lambda name: 0 if is_manifest(name) else 1)


def prune_plan(sets: Sequence[S], now: datetime, policy: retention.Policy, protect: Optional[str] = None) -> List[Tuple[Dict[str, Any], S]]:
    """Retention over one store's sets: each decision as the row prune reports, with its set."""
    by_id = {backup.id: backup for backup in sets}
    plan = []
    for decision in retention.plan([facts(backup, protect) for backup in sets], now, policy):
        backup = by_id[decision.set_id]
        row = {
            "set": decision.set_id,
            "action": decision.action,
            "reason": decision.reason,
            "reasons": list(decision.reasons),
            "pinned": backup.pinned,
            "time": backup.time.isoformat(),
            "files": backup.file_names,
            "size": backup.size,
        }
        plan.append((row, backup))
    return plan
