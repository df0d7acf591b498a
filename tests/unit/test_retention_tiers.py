"""Grandfather-father-son retention, keep_within and pins (issue 13): golden cases worked out by
hand, then properties over generated schedules, time zones and clocks."""

import random
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from pgdrill.retention import KEEP, REMOVE, Policy, SetFacts, is_future, plan, retention_kinds

UTC = timezone.utc


def daily_sets(first, last, hour=2, minute=15):
    """One set a day at hour:minute UTC, from first to last (dates), named by their date."""
    out, day = [], first
    while day <= last:
        out.append(SetFacts(day.strftime("%Y-%m-%d"), datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC), True))
        day += timedelta(days=1)
    return out


def kept(decisions):
    return sorted((d.set_id for d in decisions if d.action == KEEP), reverse=True)


def by_id(decisions):
    return {d.set_id: d for d in decisions}


# A year of daily backups, 2025-11-27 to 2026-11-26 (a Thursday), at 02:15 UTC; now is noon after
# the last one. Worked out with a calendar, not with the code:
#  daily 7:    Nov 26, 25, 24, 23, 22, 21, 20
#  weekly 4:   the newest set of ISO weeks 48 (Mon Nov 23 - Sun Nov 29: Nov 26), 47 (Sun Nov 22),
#              46 (Sun Nov 15), 45 (Sun Nov 8)
#  monthly 12: Nov 26 2026, then the last day of Oct, Sep, Aug, Jul, Jun, May, Apr, Mar, Feb (28:
#              2026 is no leap year), Jan 2026 and Dec 2025
#  yearly 2:   Nov 26 2026 and Dec 31 2025
YEAR_NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
YEAR = daily_sets(datetime(2025, 11, 27), datetime(2026, 11, 26))
GOLDEN_7_4_12_2 = [
    "2026-11-26",
    "2026-11-25",
    "2026-11-24",
    "2026-11-23",
    "2026-11-22",
    "2026-11-21",
    "2026-11-20",
    "2026-11-15",
    "2026-11-08",
    "2026-10-31",
    "2026-09-30",
    "2026-08-31",
    "2026-07-31",
    "2026-06-30",
    "2026-05-31",
    "2026-04-30",
    "2026-03-31",
    "2026-02-28",
    "2026-01-31",
    "2025-12-31",
]


def test_a_year_of_daily_backups_with_7_4_12_2():
    assert len(YEAR) == 365
    decisions = plan(YEAR, YEAR_NOW, Policy(keep_last=0, keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=2))
    assert kept(decisions) == GOLDEN_7_4_12_2
    reasons = by_id(decisions)
    assert reasons["2026-11-26"].reasons == (
        "newest complete set holding a database dump (never deleted)",
        "daily (2026-11-26)",
        "weekly (2026-W48)",
        "monthly (2026-11)",
        "yearly (2026)",
    )
    assert reasons["2026-11-22"].reasons == ("daily (2026-11-22)", "weekly (2026-W47)")
    assert reasons["2026-11-15"].reasons == ("weekly (2026-W46)",)
    assert reasons["2026-02-28"].reasons == ("monthly (2026-02)",)
    assert reasons["2025-12-31"].reasons == ("monthly (2025-12)", "yearly (2025)")
    assert reasons["2026-11-26"].reason == ", ".join(reasons["2026-11-26"].reasons)
    assert reasons["2026-11-19"].action == REMOVE and "not kept by any tier (daily 7, weekly 4, monthly 12, yearly 2)" in reasons["2026-11-19"].reason


def test_a_pinned_set_names_its_pin_after_the_rules_that_keep_it_too():
    year = [s._replace(pinned=True, pin_reason="audit") if s.set_id in ("2026-02-28", "2026-02-27") else s for s in YEAR]
    decisions = plan(year, YEAR_NOW, Policy(keep_last=0, keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=2))
    assert kept(decisions) == sorted(GOLDEN_7_4_12_2 + ["2026-02-27"], reverse=True)
    assert by_id(decisions)["2026-02-28"].reason == 'monthly (2026-02), pinned: "audit"'
    assert by_id(decisions)["2026-02-27"].reasons == ('pinned: "audit"',)


def test_the_same_year_in_any_order_and_in_berlin_keeps_the_same_sets():
    # 02:15 UTC is 03:15 or 04:15 in Berlin: the same calendar day, so the same sets.
    shuffled = list(YEAR)
    random.Random(13).shuffle(shuffled)
    policy = Policy(keep_last=0, keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=2, timezone="Europe/Berlin")
    assert kept(plan(shuffled, YEAR_NOW, policy)) == GOLDEN_7_4_12_2


def test_an_unfilled_tier_keeps_the_oldest_set_too():
    decisions = plan(YEAR, YEAR_NOW, Policy(keep_last=0, keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=3))
    assert kept(decisions) == GOLDEN_7_4_12_2 + ["2025-11-27"]
    assert by_id(decisions)["2025-11-27"].reasons == ("yearly (oldest set: 2 of 3 years hold sets)",)


def test_keep_last_and_keep_within_join_the_union():
    decisions = plan(YEAR, YEAR_NOW, Policy(keep_last=3, keep_within=10 * 86400, keep_monthly=2))
    # within 10 days of noon Nov 26: Nov 17 02:15 onwards (Nov 16 02:15 is 10.4 days old).
    assert kept(decisions) == [f"2026-11-{day:02d}" for day in range(26, 16, -1)] + ["2026-10-31"]
    assert by_id(decisions)["2026-11-24"].reasons == ("one of the newest 3 complete sets holding a database dump", "within 10d")
    assert by_id(decisions)["2026-11-17"].reasons == ("within 10d",)


def test_without_tiers_the_seeds_rule_is_unchanged():
    decisions = plan(YEAR, YEAR_NOW, Policy(keep_last=3, retention_days=5))
    assert kept(decisions) == [f"2026-11-{day:02d}" for day in range(26, 21, -1)]  # Nov 21 02:15 is 5.4 days old: gone


def test_days_without_backups_do_not_count():
    # Backups stopped for three weeks: daily 7 keeps the 7 newest days that have sets, reaching back.
    sets = daily_sets(datetime(2026, 10, 1), datetime(2026, 10, 31)) + daily_sets(datetime(2026, 11, 22), datetime(2026, 11, 24))
    decisions = plan(sets, YEAR_NOW, Policy(keep_last=0, keep_daily=7))
    assert kept(decisions) == ["2026-11-24", "2026-11-23", "2026-11-22", "2026-10-31", "2026-10-30", "2026-10-29", "2026-10-28"]


def test_hourly_backups_never_block_the_daily_tier():
    sets = [SetFacts(f"h{hour:03d}", datetime(2026, 11, 20, 0, 30, tzinfo=UTC) + timedelta(hours=hour), True) for hour in range(24 * 6)]
    decisions = plan(sets, datetime(2026, 11, 26, 1, 0, tzinfo=UTC), Policy(keep_last=2, keep_daily=4))
    # The last set of each of the 4 newest days (Nov 25, 24, 23, 22: 23:30 each), and the newest 2.
    assert kept(decisions) == ["h143", "h142", "h119", "h095", "h071"]


def test_the_time_zone_decides_where_a_day_and_a_week_end():
    # Sunday Nov 22 22:30 UTC and 23:10 UTC: both Sunday in UTC and in New York, but 23:30 Sunday
    # and 00:10 Monday (another day, another ISO week) in Berlin; and a set a week before.
    sets = [
        SetFacts("late", datetime(2026, 11, 22, 23, 10, tzinfo=UTC), True),
        SetFacts("early", datetime(2026, 11, 22, 22, 30, tzinfo=UTC), True),
        SetFacts("before", datetime(2026, 11, 15, 12, 0, tzinfo=UTC), True),
    ]
    for name, expected in (("UTC", ["late", "before"]), ("America/New_York", ["late", "before"]), ("Europe/Berlin", ["late", "early"])):
        for tier in ("keep_daily", "keep_weekly"):
            decisions = plan(sets, YEAR_NOW, Policy(keep_last=0, timezone=name, **{tier: 2}))
            assert kept(decisions) == expected, (name, tier)
    berlin = by_id(plan(sets, YEAR_NOW, Policy(keep_last=0, keep_daily=2, keep_weekly=2, timezone="Europe/Berlin")))
    assert berlin["late"].reasons[1:] == ("daily (2026-11-23)", "weekly (2026-W48)")
    assert berlin["early"].reasons == ("daily (2026-11-22)", "weekly (2026-W47)")


def test_a_dst_change_moves_no_day_boundary():
    # New York springs forward on Sunday 2026-03-08 (02:00 EST -> 03:00 EDT). 23:30 local each
    # evening, then 00:30 local on Monday: three local days. A fixed UTC-5 would see two.
    sets = [
        SetFacts("sat", datetime(2026, 3, 8, 4, 30, tzinfo=UTC), True),  # Sat Mar 7 23:30 EST
        SetFacts("sun", datetime(2026, 3, 9, 3, 30, tzinfo=UTC), True),  # Sun Mar 8 23:30 EDT
        SetFacts("mon", datetime(2026, 3, 9, 4, 30, tzinfo=UTC), True),
    ]  # Mon Mar 9 00:30 EDT
    decisions = by_id(plan(sets, datetime(2026, 3, 10, tzinfo=UTC), Policy(keep_last=0, keep_daily=3, timezone="America/New_York")))
    assert [decisions[name].reasons[-1] for name in ("mon", "sun", "sat")] == ["daily (2026-03-09)", "daily (2026-03-08)", "daily (2026-03-07)"]
    # Lord Howe Island moves its clocks by half an hour (UTC+11 in summer, +10:30 in winter; back
    # on Sunday 2026-04-05 at 02:00 local): 13:15 UTC on Apr 4 is 00:15 Apr 5 local, 13:45 UTC on
    # Apr 5 is 00:15 Apr 6 local.
    sets = [SetFacts("a", datetime(2026, 4, 4, 13, 15, tzinfo=UTC), True), SetFacts("b", datetime(2026, 4, 5, 13, 45, tzinfo=UTC), True)]
    decisions = by_id(plan(sets, datetime(2026, 4, 7, tzinfo=UTC), Policy(keep_last=0, keep_daily=2, timezone="Australia/Lord_Howe")))
    assert decisions["a"].reasons == ("daily (2026-04-05)",) and decisions["b"].reasons[-1] == "daily (2026-04-06)"


# Months and years end where retention_timezone says, far from UTC too: Kiritimati is UTC+14 and
# Pago Pago UTC-11 all year (no DST), so one UTC day holds the end of a month or year there.
FAR_ZONES_NOW = datetime(2027, 1, 20, tzinfo=UTC)
NEW_YEAR_SETS = [
    SetFacts("pago-new", datetime(2027, 1, 1, 11, 30, tzinfo=UTC), True),  # Fri 2027-01-01 00:30 in Pago Pago, 2027-01-02 01:30 in Kiritimati
    SetFacts("pago-old", datetime(2027, 1, 1, 10, 30, tzinfo=UTC), True),  # Thu 2026-12-31 23:30 in Pago Pago, 2027-01-02 00:30 in Kiritimati
    SetFacts("kiri-new", datetime(2026, 12, 31, 10, 30, tzinfo=UTC), True),  # 2027-01-01 00:30 in Kiritimati, 2026-12-30 23:30 in Pago Pago
    SetFacts("kiri-old", datetime(2026, 12, 31, 9, 30, tzinfo=UTC), True),  # 2026-12-31 23:30 in Kiritimati
    SetFacts("november", datetime(2026, 11, 15, 12, 0, tzinfo=UTC), True),
]


@pytest.mark.parametrize(
    "zone_name,monthly,yearly",
    [
        # UTC: pago-* are January 2027, kiri-* December 2026.
        ("UTC", {"pago-new": "2027-01", "kiri-new": "2026-12"}, {"pago-new": "2027", "kiri-new": "2026"}),
        # Kiritimati (+14): every set of Dec 31 10:00 UTC on is in 2027; kiri-old is the last of 2026.
        ("Pacific/Kiritimati", {"pago-new": "2027-01", "kiri-old": "2026-12"}, {"pago-new": "2027", "kiri-old": "2026"}),
        # Pago Pago (-11): pago-old is still 2026-12-31 there, so it is the last set of December and of 2026.
        ("Pacific/Pago_Pago", {"pago-new": "2027-01", "pago-old": "2026-12"}, {"pago-new": "2027", "pago-old": "2026"}),
    ],
)
def test_monthly_and_yearly_buckets_end_at_midnight_in_the_retention_timezone(zone_name, monthly, yearly):
    for tier, expected in (("monthly", monthly), ("yearly", yearly)):
        decisions = plan(NEW_YEAR_SETS, FAR_ZONES_NOW, Policy(keep_last=0, timezone=zone_name, **{f"keep_{tier}": 2}))
        assert kept(decisions) == sorted(expected, reverse=True), (zone_name, tier)
        for set_id, label in expected.items():
            assert f"{tier} ({label})" in by_id(decisions)[set_id].reasons, (zone_name, tier, by_id(decisions)[set_id].reasons)


@pytest.mark.parametrize(
    "zone_name,expected",
    [
        ("UTC", {"b": "monthly (2026-06)", "a": "monthly (2026-05)"}),
        ("Pacific/Kiritimati", {"b": "monthly (2026-06)", "april": "monthly (2026-04)"}),  # a is June 1 00:15 there
        ("Pacific/Pago_Pago", {"b": "monthly (2026-05)", "april": "monthly (2026-04)"}),  # b is May 31 23:45 there
    ],
)
def test_a_month_boundary_far_from_utc(zone_name, expected):
    sets = [
        SetFacts("b", datetime(2026, 6, 1, 10, 45, tzinfo=UTC), True),
        SetFacts("a", datetime(2026, 5, 31, 10, 15, tzinfo=UTC), True),
        SetFacts("april", datetime(2026, 4, 15, 12, 0, tzinfo=UTC), True),
    ]
    decisions = by_id(plan(sets, datetime(2026, 6, 10, tzinfo=UTC), Policy(keep_last=0, keep_monthly=2, timezone=zone_name)))
    assert kept(decisions.values()) == sorted(expected, reverse=True), zone_name
    assert {set_id: decisions[set_id].reasons[-1] for set_id in expected} == expected, zone_name


def test_failed_sets_never_fill_a_tier_and_pins_always_stay():
    sets = daily_sets(datetime(2026, 11, 20), datetime(2026, 11, 26))
    sets = [s._replace(known_bad=s.set_id in ("2026-11-25", "2026-11-24")) for s in sets]
    sets = [s._replace(pinned=True, pin_reason="before migration 0042") if s.set_id == "2026-11-20" else s for s in sets]
    decisions = by_id(plan(sets, YEAR_NOW, Policy(keep_last=0, keep_daily=2)))
    assert kept(decisions.values()) == ["2026-11-26", "2026-11-23", "2026-11-20"]
    assert decisions["2026-11-23"].reasons == ("daily (2026-11-23)",)
    assert decisions["2026-11-20"].reasons == ('pinned: "before migration 0042"',)
    assert "failed verification, so it fills no tier" in decisions["2026-11-25"].reason


def test_a_pinned_set_stays_whatever_else_it_is():
    old = datetime(2020, 1, 1, tzinfo=UTC)
    sets = [
        SetFacts("debris", old, False, pinned=True, pin_reason="audit"),
        SetFacts("plain", old, True, pinned=True, pin_reason="hold"),
        SetFacts("new", YEAR_NOW, True),
    ]
    for policy in (Policy(keep_last=0, retention_days=0, debris_grace_hours=0), Policy(keep_last=0, keep_daily=1)):
        assert kept(plan(sets, YEAR_NOW, policy)) == ["plain", "new", "debris"]


def test_media_and_dumps_fill_their_tiers_apart():
    sets = [
        SetFacts("media", datetime(2026, 11, 26, 3, 0, tzinfo=UTC), True, kinds=frozenset({"media"})),
        SetFacts("db", datetime(2026, 11, 26, 2, 0, tzinfo=UTC), True, kinds=frozenset({"db", "globals"})),
        SetFacts("db-older", datetime(2026, 11, 25, 2, 0, tzinfo=UTC), True),
    ]
    decisions = by_id(plan(sets, YEAR_NOW, Policy(keep_last=0, keep_daily=1)))
    assert "daily media (2026-11-26)" in decisions["media"].reasons and "daily (2026-11-26)" in decisions["db"].reasons
    assert decisions["db-older"].action == REMOVE


def test_the_seeds_call_still_works():
    legacy = plan(YEAR, YEAR_NOW, 3, 5, 24)
    assert [d.action for d in legacy] == [d.action for d in plan(YEAR, YEAR_NOW, Policy(keep_last=3, retention_days=5))]


# --- properties ---------------------------------------------------------------------------------
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "America/St_Johns"]
TIER_RE = re.compile(r"^(daily|weekly|monthly|yearly)( media| other)? \((.+)\)$")
KIND_OF_LABEL = {None: "db", " media": "media", " other": "other"}
KIND_CHOICES = [frozenset({"db", "globals"}), frozenset({"db"}), frozenset({"media"}), frozenset({"db", "media"}), frozenset({"globals"})]

gaps = st.one_of(
    st.integers(1, 240).map(lambda minutes: timedelta(minutes=minutes)),  # several a day
    st.integers(1, 72).map(lambda hours: timedelta(hours=hours)),
    st.integers(1, 12).map(lambda days: timedelta(days=days, minutes=7)),  # sparse
    st.integers(28, 200).map(lambda days: timedelta(days=days)),  # gaps of months
)
set_flags = st.tuples(st.sampled_from(KIND_CHOICES), st.integers(0, 9), st.booleans(), st.booleans())


# DST changes (UTC): Berlin 2026-03-29 01:00 and 2026-10-25 01:00, New York 2026-03-08 07:00 and
# 2026-11-01 06:00, Lord Howe (half an hour) 2026-04-04 15:00 and 2026-10-03 15:30.
DST_CHANGES = [
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
]


@st.composite
def schedules(draw):
    if draw(st.booleans()):
        start = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 2 * 365 * 24 * 60)))
    else:  # a day or two before a DST change, so that sets fall on both sides of it
        start = draw(st.sampled_from(DST_CHANGES)) - timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    steps = draw(st.lists(st.tuples(gaps, set_flags), min_size=0, max_size=60))
    sets, moment = [], start
    for i, (gap, (kinds, state, bad, pinned)) in enumerate(steps):
        moment += gap
        complete = state != 0
        damaged = state == 1
        sets.append(
            SetFacts(
                f"s{i:02d}",
                moment,
                complete and not damaged,
                damaged=damaged,
                known_bad=bad and state > 2,
                kinds=kinds,
                pinned=pinned and state in (0, 3),
                pin_reason="hold" if pinned and state in (0, 3) else "",
            )
        )
    last = sets[-1].time if sets else start
    # The clock: right after the last set, much later, or behind it (sets from the future).
    now = last + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 400 * 24 * 60)))
    return sets, now


policies = st.builds(
    Policy,
    keep_last=st.integers(0, 4),
    retention_days=st.integers(0, 60),
    keep_daily=st.integers(0, 8),
    keep_weekly=st.integers(0, 5),
    keep_monthly=st.integers(0, 13),
    keep_yearly=st.integers(0, 3),
    keep_within=st.sampled_from([0.0, 0.0, 36 * 3600.0, 14 * 86400.0]),
    timezone=st.sampled_from(ZONES),
    debris_grace_hours=st.sampled_from([0.0, 24.0]),
)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fixed cases every property test runs first, whatever Hypothesis draws (tests/conftest.py also fixes
# its seed): the golden year, the new year far from UTC, nothing at all, and a mix of every state.
GOLDEN_POLICY = Policy(keep_last=0, keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=2)
FAR_POLICY = Policy(keep_last=1, keep_monthly=2, keep_yearly=2, timezone="Pacific/Kiritimati")
MIXED = (
    [
        SetFacts("m0", datetime(2026, 3, 7, 23, 0, tzinfo=UTC), True, kinds=frozenset({"db", "globals"})),
        SetFacts("m1", datetime(2026, 3, 8, 6, 30, tzinfo=UTC), False, damaged=True),
        SetFacts("m2", datetime(2026, 3, 8, 7, 30, tzinfo=UTC), True, known_bad=True),
        SetFacts("m3", datetime(2026, 3, 9, 12, 0, tzinfo=UTC), True, kinds=frozenset({"media"}), pinned=True, pin_reason="hold"),
        SetFacts("m4", datetime(2026, 6, 1, 2, 15, tzinfo=UTC), True, kinds=frozenset({"db", "media"})),
        SetFacts("m5", datetime(2026, 6, 2, 2, 15, tzinfo=UTC), True, kinds=frozenset({"globals"})),
        SetFacts("m6", datetime(2026, 6, 10, 2, 15, tzinfo=UTC), True),  # from the future
    ],
    datetime(2026, 6, 5, tzinfo=UTC),
)
MIXED_POLICY = Policy(keep_last=1, keep_daily=2, keep_weekly=1, keep_monthly=2, keep_yearly=1, keep_within=36 * 3600.0, timezone="America/New_York")


def fixed_examples(test):
    """The fixed cases above, for a property test taking (schedule, policy)."""
    for schedule, policy in (
        ((YEAR, YEAR_NOW), GOLDEN_POLICY),
        ((NEW_YEAR_SETS, FAR_ZONES_NOW), FAR_POLICY),
        (([], YEAR_NOW), Policy()),
        (MIXED, MIXED_POLICY),
    ):
        test = example(schedule, policy)(test)
    return test


def counted_of(sets, now):
    return sorted((s for s in sets if s.complete and not s.damaged and not is_future(s.time, now)), key=lambda s: (s.time, s.set_id), reverse=True)


def bucket(tier, moment, zone_name):
    local = moment.astimezone(UTC if zone_name == "UTC" else ZoneInfo(zone_name))
    if tier == "daily":
        return local.date().isoformat()
    if tier == "weekly":
        iso = local.isocalendar()
        return f"{iso[0]}-W{iso[1]:02d}"
    return f"{local.year}-{local.month:02d}" if tier == "monthly" else str(local.year)


@PROPERTY
@given(schedules(), policies)
@fixed_examples
def test_floors_and_pins_always_hold(schedule, policy):
    sets, now = schedule
    result = {d.set_id: d for d in plan(sets, now, policy)}
    assert set(result) == {s.set_id for s in sets}
    assert all(d.reason and d.reasons for d in result.values())
    for s in sets:
        if s.pinned or s.damaged or s.protected or (s.complete and is_future(s.time, now)):
            assert result[s.set_id].action == KEEP
        if s.pinned:
            assert 'pinned: "hold"' in result[s.set_id].reasons
    counted = counted_of(sets, now)
    for kind in ("db", "media", "other"):
        group = [s for s in counted if kind in retention_kinds(s.kinds)]
        if group:
            assert result[group[0].set_id].action == KEEP
            good = [s for s in group if not s.known_bad]
            if good:
                assert result[good[0].set_id].action == KEEP
            for s in group[: policy.keep_last]:
                assert result[s.set_id].action == KEEP


@PROPERTY
@given(schedules(), policies)
@fixed_examples
def test_each_tier_keeps_the_newest_set_of_at_most_its_count_of_buckets(schedule, policy):
    sets, now = schedule
    decisions = plan(sets, now, policy)
    by_set = {s.set_id: s for s in sets}
    picks = {}
    for decision in decisions:
        for reason in decision.reasons:
            match = TIER_RE.match(reason)
            if match:
                picks.setdefault((match[1], KIND_OF_LABEL[match[2]]), []).append((match[3], by_set[decision.set_id]))
    assert bool(picks) <= policy.tiered
    counted = counted_of(sets, now)
    for tier, count in policy.tier_counts().items():
        for kind in ("db", "media", "other"):
            chosen = picks.get((tier, kind), [])
            candidates = [s for s in counted if kind in retention_kinds(s.kinds) and not s.known_bad]
            newest_by_bucket = {}
            for s in candidates:
                newest_by_bucket.setdefault(bucket(tier, s.time, policy.timezone), s)
            # The buckets it keeps are its newest `count` buckets that hold sets, each by its newest set.
            wanted = dict(list(newest_by_bucket.items())[:count])
            by_bucket = {label: s for label, s in chosen if not label.startswith("oldest")}
            assert len(by_bucket) == len([label for label, _ in chosen if not label.startswith("oldest")]) <= count
            assert {label: s.set_id for label, s in by_bucket.items()} == {label: s.set_id for label, s in wanted.items()}
            # And the oldest set as well, only when it could not fill its count.
            oldest = [s for label, s in chosen if label.startswith("oldest")]
            if count and candidates and len(newest_by_bucket) < count and candidates[-1].set_id not in {s.set_id for s in wanted.values()}:
                assert [s.set_id for s in oldest] == [candidates[-1].set_id]
            else:
                assert oldest == []
            assert not any(s.known_bad for _, s in chosen)  # failed sets never fill a tier
    if policy.tiered:
        for decision in decisions:
            s = by_set[decision.set_id]
            if decision.action == REMOVE and s.complete:
                assert not policy.keep_within or now - s.time > timedelta(seconds=policy.keep_within)


@PROPERTY
@given(schedules(), policies, st.randoms(use_true_random=False))
@example((YEAR, YEAR_NOW), GOLDEN_POLICY, random.Random(13))
@example(MIXED, MIXED_POLICY, random.Random(7))
@example((NEW_YEAR_SETS, FAR_ZONES_NOW), FAR_POLICY, random.Random(1))
def test_the_order_sets_are_listed_in_changes_nothing(schedule, policy, rnd):
    sets, now = schedule
    shuffled = list(sets)
    rnd.shuffle(shuffled)
    assert plan(shuffled, now, policy) == plan(sets, now, policy)


@PROPERTY
@given(schedules(), policies)
@fixed_examples
def test_applying_the_plan_twice_removes_nothing_more(schedule, policy):
    sets, now = schedule
    first = plan(sets, now, policy)
    removed = {d.set_id for d in first if d.action == REMOVE}
    left = [s for s in sets if s.set_id not in removed]
    second = plan(left, now, policy)
    assert [d.set_id for d in second if d.action == REMOVE] == []
    assert {d.set_id: d.reasons for d in second} == {d.set_id: d.reasons for d in first if d.set_id not in removed}


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_the_systems_tzdata_knows_the_zones_the_tests_use(name):
    assert ZoneInfo(name).utcoffset(datetime(2026, 1, 1)) is not None
