# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Which backup sets to keep and which to delete. Pure: no I/O, no clock.

The rules, in order:
1. Sets are ordered by the time in their manifest (never by mtime or name).
2. The set the current run has just written is never removed by the prune that follows it, even
   when the clock was wrong before.
3. A set whose manifest cannot be trusted, or whose files are missing or truncated, is kept and
   reported: a person should look at it. It never counts as a backup.
4. A set with no manifest is debris from a failed or interrupted run: it never counts as a
   backup, and is removed once its newest file is older than the grace period.
5. A complete set dated in the future (beyond a few minutes of clock tolerance) is kept and
   reported: the clock was wrong when it was taken or is wrong now. It never counts as a backup,
   so it can neither push real sets out of keep_last nor pass for a recent one.
6. Retention counts each kind of backup on its own: the sets holding a database dump, and the sets
   holding media. The newest ``keep_last`` complete sets of each kind are kept whatever their age.
7. The newest complete set of each kind is kept even with keep_last 0, and so is the newest complete
   set of each kind not known to be bad (a failed verification), so a good backup of each always
   remains.
8. Other complete sets older than ``retention_days`` are removed; younger ones are kept.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Dict, FrozenSet, List, NamedTuple, Sequence

KEEP = "keep"
REMOVE = "remove"
FUTURE_TOLERANCE = timedelta(minutes=5)
# What a set can hold that retention counts separately, and how reasons name it.
KIND_NAMES = {"db": "a database dump", "media": "media", "other": "neither a database dump nor media"}


class SetFacts(NamedTuple):
    set_id: str
    time: datetime
    complete: bool
    damaged: bool = False
    known_bad: bool = False
    kinds: FrozenSet[str] = frozenset({"db"})
    protected: bool = False
    problem: str = ""


class Decision(NamedTuple):
    set_id: str
    action: str
    reason: str


def is_future(moment: datetime, now: datetime) -> bool:
    """Dated later than now beyond the clock tolerance."""
    return moment - now > FUTURE_TOLERANCE


def retention_kinds(kinds: FrozenSet[str]) -> FrozenSet[str]:
    """The groups a set counts in: db and/or media (globals ride with the dump)."""
    counted = frozenset(kinds) & {"db", "media"}
    return counted or frozenset({"other"})


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f} days"


def _keep_reasons(counted: Sequence[SetFacts], keep_last: int) -> Dict[str, str]:
    """Why each complete set must stay whatever its age; sets absent from the result may go."""
    reasons: Dict[str, str] = {}
    for kind in ("db", "media", "other"):
        group = [facts for facts in counted if kind in retention_kinds(facts.kinds)]
        if not group:
            continue
        what = KIND_NAMES[kind]
        reasons.setdefault(group[0].set_id, f"newest complete set holding {what} (never deleted)")
        for facts in group[:keep_last]:
            reasons.setdefault(facts.set_id, f"one of the newest {keep_last} complete sets holding {what}")
        not_bad = next((facts for facts in group if not facts.known_bad), None)
        if not_bad is not None:
            reasons.setdefault(not_bad.set_id, f"newest complete set holding {what} that has not failed verification")
    return reasons


def plan(sets: Sequence[SetFacts], now: datetime, keep_last: int, retention_days: int, debris_grace_hours: float) -> List[Decision]:
    """One decision per set, newest first."""
    max_age = timedelta(days=retention_days)
    grace = timedelta(hours=debris_grace_hours)
    ordered = sorted(sets, key=lambda facts: (facts.time, facts.set_id), reverse=True)
    counted = [facts for facts in ordered if facts.complete and not facts.damaged and not is_future(facts.time, now)]
    must_keep = _keep_reasons(counted, keep_last)
    decisions = []
    for facts in ordered:
        age = now - facts.time
        if facts.protected:
            decisions.append(Decision(facts.set_id, KEEP, "written by this run (a run never removes its own set)"))
        elif facts.damaged:
            detail = f" ({facts.problem})" if facts.problem else ""
            decisions.append(Decision(facts.set_id, KEEP, f"damaged{detail}; never counted as a backup, left for a person to inspect"))
        elif not facts.complete:
            if age > grace:
                decisions.append(Decision(facts.set_id, REMOVE, f"incomplete (no manifest) for more than {debris_grace_hours:g} hours: debris of a failed or interrupted run"))
            else:
                decisions.append(Decision(facts.set_id, KEEP, f"incomplete, but within the {debris_grace_hours:g}-hour grace period"))
        elif is_future(facts.time, now):
            decisions.append(Decision(facts.set_id, KEEP, f"dated {_days(-age)} in the future: the clock was wrong when it was taken, or is wrong now; "
                                                          "never counted as a backup, left for a person to inspect"))
        elif facts.set_id in must_keep:
            decisions.append(Decision(facts.set_id, KEEP, must_keep[facts.set_id]))
        elif age > max_age:
            decisions.append(Decision(facts.set_id, REMOVE, f"older than {retention_days} days ({_days(age)}) and not among the newest {keep_last} of its kind"))
        else:
            decisions.append(Decision(facts.set_id, KEEP, f"younger than {retention_days} days ({_days(age)})"))
    return decisions
