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
8. A pinned set (a pin file beside it: ``pgdrill-backup pin``) is never removed, by any rule.
9. Without tiers (the seed's rule, the default): other complete sets older than ``retention_days``
   are removed; younger ones are kept.
10. With tiers (any of keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within set): a set
   is kept when any rule keeps it (a union of keep_last, keep_within, the tiers, the floors of 7 and
   the pins); ``retention_days`` is not a rule then (keep_within is the tiers' "keep everything
   younger"). Each tier keeps, per kind, the newest set of each of its newest N calendar buckets
   (day, ISO week from Monday to Sunday, month, year, in the policy's time zone) that hold a set:
   buckets without sets do not count. A tier that cannot fill its N buckets also keeps the oldest
   set. Sets that failed verification never fill a tier. Every rule that keeps a set is named.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable, Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

KEEP = "keep"
REMOVE = "remove"
FUTURE_TOLERANCE = timedelta(minutes=5)
# What a set can hold that retention counts separately, and how reasons name it.
KIND_NAMES = {"db": "a database dump", "media": "media", "other": "neither a database dump nor media"}
# How tier reasons name a kind: database dumps are the common case and go unnamed.
KIND_LABELS = {"db": "", "media": " media", "other": " other"}
TIERS = ("daily", "weekly", "monthly", "yearly")
TIER_UNITS = {"daily": "day", "weekly": "week", "monthly": "month", "yearly": "year"}


class SetFacts(NamedTuple):
    set_id: str
    time: datetime
    complete: bool
    damaged: bool = False
    known_bad: bool = False
    kinds: FrozenSet[str] = frozenset({"db"})
    protected: bool = False
    problem: str = ""
    pinned: bool = False
    pin_reason: str = ""


class Decision(NamedTuple):
    set_id: str
    action: str
    reason: str  # every reason in one line, for people and for callers that read one string
    reasons: Tuple[str, ...] = ()  # each rule that keeps the set (a kept set), or why it goes


class Policy(NamedTuple):
    """The retention rules of one series, local or remote (config.retention_policy builds it)."""

    keep_last: int = 14
    retention_days: int = 14
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: float = 0.0  # seconds; 0 is off
    timezone: str = "UTC"  # IANA name: where calendar buckets begin and end
    debris_grace_hours: float = 24.0

    @property
    def tiered(self) -> bool:
        """Any tier set: the union of rules replaces keep-last plus max-age."""
        return any(self.tier_counts().values()) or self.keep_within > 0

    def tier_counts(self) -> Dict[str, int]:
        return {"daily": self.keep_daily, "weekly": self.keep_weekly, "monthly": self.keep_monthly, "yearly": self.keep_yearly}

    def describe(self) -> str:
        """One line for prune's header and the module's diff."""
        if not self.tiered:
            return f"keep_last {self.keep_last}, retention_days {self.retention_days}"
        rules = [f"keep_last {self.keep_last}"] + [f"{name} {count}" for name, count in self.tier_counts().items() if count]
        if self.keep_within:
            rules.append(f"within {duration_text(self.keep_within)}")
        return ", ".join(rules) + f"; calendar of {self.timezone}"


def duration_text(seconds: float) -> str:
    """36h, 14d, 2w: the largest unit that divides the duration; 0 for none."""
    if not seconds:
        return "0"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def zone(name: str) -> tzinfo:
    """The time zone of a policy. UTC needs no tzdata; any other name does (ValueError when the
    system does not know it: config load checks it first)."""
    if name.upper() in ("UTC", "ETC/UTC"):
        return timezone.utc
    from zoneinfo import ZoneInfo  # Python 3.9+; the zones come from the system's tzdata

    try:
        return ZoneInfo(name)
    except Exception as exc:  # ZoneInfoNotFoundError, or ValueError for a name like "../x"
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_future(moment: datetime, now: datetime) -> bool:
    """Dated later than now beyond the clock tolerance."""
    return moment - now > FUTURE_TOLERANCE


def retention_kinds(kinds: FrozenSet[str]) -> FrozenSet[str]:
    """The groups a set counts in: db and/or media (globals ride with the dump)."""
    counted = frozenset(kinds) & {"db", "media"}
    return counted or frozenset({"other"})


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f} days"


def _bucket_functions(tz: tzinfo) -> Dict[str, Callable[[datetime], str]]:
    """Each tier's calendar bucket of a moment, as a label: the local date, ISO week, month, year."""

    def day(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d")

    def week(moment: datetime) -> str:
        year, number, _ = moment.astimezone(tz).isocalendar()
        return f"{year}-W{number:02d}"

    def month(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%Y-%m")

    def year(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%Y")

    return {"daily": day, "weekly": week, "monthly": month, "yearly": year}


def tier_picks(candidates: Sequence[SetFacts], count: int, bucket: Callable[[datetime], str]) -> List[Tuple[SetFacts, str]]:
    """One tier over ``candidates`` (newest first): the newest set of each of the newest ``count``
    buckets that hold a set, each with its bucket's label; when fewer buckets hold sets than
    ``count``, the oldest candidate too (labelled ``oldest``). Pure."""
    picks: List[Tuple[SetFacts, str]] = []
    # A set, not the last label: where a zone once fell back across midnight, a day came twice.
    seen = set()
    for facts in candidates:
        label = bucket(facts.time)
        if label in seen:
            continue
        seen.add(label)
        if len(picks) == count:
            return picks
        picks.append((facts, label))
    if count and candidates and len(picks) < count and candidates[-1] is not picks[-1][0]:
        picks.append((candidates[-1], "oldest"))
    return picks


def _add(reasons: Dict[str, List[str]], set_id: str, reason: str) -> None:
    found = reasons.setdefault(set_id, [])
    if reason not in found:
        found.append(reason)


def _keep_reasons(counted: Sequence[SetFacts], policy: Policy, now: datetime) -> Dict[str, List[str]]:
    """Every rule that keeps each complete set whatever its age; sets absent from the result may go."""
    reasons: Dict[str, List[str]] = {}
    buckets = _bucket_functions(zone(policy.timezone)) if policy.tiered else {}
    for kind in ("db", "media", "other"):
        group = [facts for facts in counted if kind in retention_kinds(facts.kinds)]
        if not group:
            continue
        what = KIND_NAMES[kind]
        newest = group[0]
        not_bad = next((facts for facts in group if not facts.known_bad), None)
        if not_bad is newest:
            _add(reasons, newest.set_id, f"newest complete set holding {what} (never deleted)")
        else:
            _add(reasons, newest.set_id, f"newest complete set holding {what} (never deleted, although it failed verification)")
            if not_bad is not None:
                _add(reasons, not_bad.set_id, f"newest complete set holding {what} that has not failed verification")
        for facts in group[: policy.keep_last]:
            _add(reasons, facts.set_id, f"one of the newest {policy.keep_last} complete sets holding {what}")
        if not policy.tiered:
            continue
        if policy.keep_within:
            limit = timedelta(seconds=policy.keep_within)
            for facts in group:
                if now - facts.time <= limit:
                    _add(reasons, facts.set_id, f"within {duration_text(policy.keep_within)}")
        # A set that failed verification never fills a tier: it would stand in for a good one.
        candidates = [facts for facts in group if not facts.known_bad]
        for tier, count in policy.tier_counts().items():
            picks = tier_picks(candidates, count, buckets[tier])
            buckets_filled = len([label for _, label in picks if label != "oldest"])
            for facts, label in picks:
                if label == "oldest":
                    label = f"oldest set: {buckets_filled} of {count} {TIER_UNITS[tier]}s hold sets"
                _add(reasons, facts.set_id, f"{tier}{KIND_LABELS[kind]} ({label})")
    return reasons


def _removal_reason(facts: SetFacts, age: timedelta, policy: Policy) -> str:
    if not policy.tiered:
        return f"older than {policy.retention_days} days ({_days(age)}) and not among the newest {policy.keep_last} of its kind"
    why = [f"not among the newest {policy.keep_last} of its kind"] if policy.keep_last else []
    if policy.keep_within:
        why.append(f"older than {duration_text(policy.keep_within)} ({_days(age)})")
    tiers = [f"{tier} {count}" for tier, count in policy.tier_counts().items() if count]
    if facts.known_bad:
        why.append("failed verification, so it fills no tier")
    elif tiers:
        why.append("not kept by any tier (" + ", ".join(tiers) + ")")
    return "; ".join(why)


def _legacy_policy(keep_last, retention_days, debris_grace_hours) -> Policy:
    return Policy(keep_last=keep_last, retention_days=retention_days, debris_grace_hours=debris_grace_hours)


def plan(
    sets: Sequence[SetFacts],
    now: datetime,
    policy: Optional[Policy] = None,
    retention_days: Optional[int] = None,
    debris_grace_hours: Optional[float] = None,
    keep_last: Optional[int] = None,
) -> List[Decision]:
    """One decision per set, newest first. Kept sets carry every rule that keeps them.

    ``plan(sets, now, policy)``; the seed's ``plan(sets, now, keep_last, retention_days,
    debris_grace_hours)`` still works and means ``Policy(keep_last, retention_days)``."""
    if not isinstance(policy, Policy):
        policy = _legacy_policy(policy if keep_last is None else keep_last, retention_days, debris_grace_hours)
    max_age = timedelta(days=policy.retention_days)
    grace_hours = policy.debris_grace_hours
    grace = timedelta(hours=grace_hours)
    ordered = sorted(sets, key=lambda facts: (facts.time, facts.set_id), reverse=True)
    counted = [facts for facts in ordered if facts.complete and not facts.damaged and not is_future(facts.time, now)]
    must_keep = _keep_reasons(counted, policy, now)
    decisions = []
    for facts in ordered:
        age = now - facts.time
        reasons: List[str] = []
        if facts.protected:
            reasons.append("written by this run (a run never removes its own set)")
        removal = ""
        if facts.damaged:
            detail = f" ({facts.problem})" if facts.problem else ""
            reasons.append(f"damaged{detail}; never counted as a backup, left for a person to inspect")
        elif not facts.complete:
            if age > grace:
                removal = f"incomplete (no manifest) for more than {grace_hours:g} hours: debris of a failed or interrupted run"
            else:
                reasons.append(f"incomplete, but within the {grace_hours:g}-hour grace period")
        elif is_future(facts.time, now):
            reasons.append(
                f"dated {_days(-age)} in the future: the clock was wrong when it was taken, or is wrong now; "
                "never counted as a backup, left for a person to inspect"
            )
        else:
            reasons.extend(reason for reason in must_keep.get(facts.set_id, []) if reason not in reasons)
            if not policy.tiered and age <= max_age:
                reasons.append(f"younger than {policy.retention_days} days ({_days(age)})")
            if not reasons:
                removal = _removal_reason(facts, age, policy)
        if facts.pinned:
            reasons.append(f'pinned: "{facts.pin_reason}"' if facts.pin_reason else "pinned")
        if reasons:
            decisions.append(Decision(facts.set_id, KEEP, ", ".join(reasons), tuple(reasons)))
        else:
            decisions.append(Decision(facts.set_id, REMOVE, removal, (removal,)))
    return decisions
