"""Which backup sets to keep and which to delete. Pure: no I/O, no clock.

The rules, in order:
1. Sets are ordered by the time in their manifest (never by mtime or name).
2. The newest ``keep_last`` complete sets are kept, whatever their age.
3. The newest complete set is kept even with keep_last 0, and so is the newest complete set not
   known to be bad (a failed verification), so a good backup always remains.
4. Other complete sets older than ``retention_days`` are removed; younger ones are kept.
5. A set whose manifest cannot be trusted is kept and reported: a person should look at it.
6. A set with no manifest is debris from a failed or interrupted run: it never counts as a
   backup, and is removed once its newest file is older than the grace period.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import List, NamedTuple, Sequence

KEEP = "keep"
REMOVE = "remove"


class SetFacts(NamedTuple):
    set_id: str
    time: datetime
    complete: bool
    damaged: bool = False
    known_bad: bool = False


class Decision(NamedTuple):
    set_id: str
    action: str
    reason: str


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f} days"


def plan(sets: Sequence[SetFacts], now: datetime, keep_last: int, retention_days: int, debris_grace_hours: float) -> List[Decision]:
    """One decision per set, newest first."""
    max_age = timedelta(days=retention_days)
    grace = timedelta(hours=debris_grace_hours)
    ordered = sorted(sets, key=lambda facts: (facts.time, facts.set_id), reverse=True)
    complete = [facts for facts in ordered if facts.complete]
    newest = complete[0].set_id if complete else None
    newest_not_bad = next((facts.set_id for facts in complete if not facts.known_bad), None)
    rank = {facts.set_id: index for index, facts in enumerate(complete)}
    decisions = []
    for facts in ordered:
        age = now - facts.time
        if facts.damaged:
            decisions.append(Decision(facts.set_id, KEEP, "manifest cannot be trusted; left for a person to inspect"))
        elif not facts.complete:
            if age > grace:
                decisions.append(Decision(facts.set_id, REMOVE, f"incomplete (no manifest) for more than {debris_grace_hours:g} hours: debris of a failed or interrupted run"))
            else:
                decisions.append(Decision(facts.set_id, KEEP, f"incomplete, but within the {debris_grace_hours:g}-hour grace period"))
        elif facts.set_id == newest:
            decisions.append(Decision(facts.set_id, KEEP, "newest complete set (never deleted)"))
        elif rank[facts.set_id] < keep_last:
            decisions.append(Decision(facts.set_id, KEEP, f"one of the newest {keep_last} complete sets"))
        elif facts.set_id == newest_not_bad:
            decisions.append(Decision(facts.set_id, KEEP, "newest complete set that has not failed verification"))
        elif age > max_age:
            decisions.append(Decision(facts.set_id, REMOVE, f"older than {retention_days} days ({_days(age)}) and not among the newest {keep_last}"))
        else:
            decisions.append(Decision(facts.set_id, KEEP, f"younger than {retention_days} days ({_days(age)})"))
    return decisions
