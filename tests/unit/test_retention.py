"""Retention rules, including property tests over generated sets of backups."""

from datetime import datetime, timedelta, timezone

from hypothesis import example, given, settings, strategies as st

from pgdrill.retention import FUTURE_TOLERANCE, KEEP, REMOVE, SetFacts, is_future, plan, retention_kinds

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def facts(name, days_old, complete=True, **kw):
    return SetFacts(name, NOW - timedelta(days=days_old), complete, **kw)


def actions(decisions):
    return {d.set_id: d.action for d in decisions}


def test_seed_defaults_keep_14_and_drop_older_than_14_days():
    sets = [facts(f"s{day:02d}", day) for day in range(30)]
    result = actions(plan(sets, NOW, keep_last=14, retention_days=14, debris_grace_hours=24))
    assert [s for s, a in result.items() if a == KEEP] == [f"s{day:02d}" for day in range(15)]  # 14 newest, plus s14 (exactly 14 days old)
    assert all(result[f"s{day:02d}"] == REMOVE for day in range(15, 30))


def test_keep_last_wins_over_age():
    sets = [facts(f"s{i}", 100 + i) for i in range(5)]
    result = actions(plan(sets, NOW, keep_last=3, retention_days=1, debris_grace_hours=24))
    assert result == {"s0": KEEP, "s1": KEEP, "s2": KEEP, "s3": REMOVE, "s4": REMOVE}


def test_newest_set_survives_keep_last_zero():
    sets = [facts("old", 50), facts("older", 60)]
    result = actions(plan(sets, NOW, keep_last=0, retention_days=1, debris_grace_hours=24))
    assert result == {"old": KEEP, "older": REMOVE}


def test_newest_set_not_known_bad_is_kept_too():
    sets = [facts("bad", 40, known_bad=True), facts("good", 50), facts("older", 60)]
    result = actions(plan(sets, NOW, keep_last=0, retention_days=1, debris_grace_hours=24))
    assert result == {"bad": KEEP, "good": KEEP, "older": REMOVE}


def test_order_comes_from_manifest_time_not_name():
    # "zzz" sorts last by name but is the newest by time.
    sets = [facts("zzz", 1), facts("aaa", 20), facts("mmm", 30)]
    result = actions(plan(sets, NOW, keep_last=1, retention_days=7, debris_grace_hours=24))
    assert result == {"zzz": KEEP, "aaa": REMOVE, "mmm": REMOVE}


def test_incomplete_sets_are_debris_after_grace_and_never_count():
    sets = [facts("fresh-debris", 0.01, complete=False), facts("old-debris", 3, complete=False), facts("good", 5)]
    decisions = plan(sets, NOW, keep_last=1, retention_days=1, debris_grace_hours=24)
    assert actions(decisions) == {"fresh-debris": KEEP, "old-debris": REMOVE, "good": KEEP}


def test_damaged_manifest_is_left_for_a_person():
    sets = [facts("damaged", 400, complete=False, damaged=True), facts("good", 1)]
    assert actions(plan(sets, NOW, keep_last=0, retention_days=1, debris_grace_hours=1)) == {"damaged": KEEP, "good": KEEP}


def test_every_decision_has_a_reason():
    decisions = plan([facts("a", 1), facts("b", 99), facts("c", 99, complete=False)], NOW, 1, 7, 24)
    assert all(d.reason for d in decisions)


def test_media_only_runs_never_push_out_the_last_database_dump():
    # Database backups stopped 20 days ago; media runs went on daily.
    sets = [facts(f"media{day}", day, kinds=frozenset({"media"})) for day in range(5)] + [
        facts("db20", 20, kinds=frozenset({"db", "globals"})),
        facts("db21", 21, kinds=frozenset({"db", "globals"})),
        facts("both30", 30, kinds=frozenset({"db", "media"})),
    ]
    decisions = {d.set_id: d for d in plan(sets, NOW, keep_last=3, retention_days=7, debris_grace_hours=24)}
    assert decisions["db20"].action == KEEP and "database dump" in decisions["db20"].reason
    assert decisions["db21"].action == KEEP and decisions["both30"].action == KEEP  # the newest 3 holding a dump
    assert [decisions[f"media{day}"].action for day in range(5)] == [KEEP] * 5  # younger than 7 days


def test_newest_of_each_kind_survives_keep_last_zero():
    sets = [facts("media", 10, kinds=frozenset({"media"})), facts("db", 50), facts("db-older", 60)]
    result = actions(plan(sets, NOW, keep_last=0, retention_days=1, debris_grace_hours=24))
    assert result == {"media": KEEP, "db": KEEP, "db-older": REMOVE}


def test_a_set_from_the_future_never_counts_and_never_evicts_this_runs_set():
    # A year ahead (a bad NTP day), then the clock came back: keep_last 3, retention 0.
    sets = [facts(f"ahead{i}", -365 + i) for i in range(3)] + [facts("older", 2), facts("just-written", 0, protected=True)]
    decisions = {d.set_id: d for d in plan(sets, NOW, keep_last=3, retention_days=0, debris_grace_hours=24)}
    assert decisions["just-written"].action == KEEP and decisions["older"].action == KEEP  # among the newest 3 real sets
    assert all(decisions[f"ahead{i}"].action == KEEP and "future" in decisions[f"ahead{i}"].reason for i in range(3))


def test_the_just_written_set_is_kept_even_when_an_older_clock_made_it_look_old():
    sets = [facts("newer-by-clock", 1), facts("just-written", 40, protected=True)]
    assert actions(plan(sets, NOW, keep_last=1, retention_days=1, debris_grace_hours=24))["just-written"] == KEEP


def test_future_means_beyond_the_tolerance():
    assert not is_future(NOW + FUTURE_TOLERANCE, NOW) and is_future(NOW + FUTURE_TOLERANCE + timedelta(seconds=1), NOW)


KIND_CHOICES = [frozenset({"db"}), frozenset({"db", "globals"}), frozenset({"media"}), frozenset({"db", "media"})]
set_strategy = st.lists(
    st.tuples(st.floats(min_value=-400, max_value=400), st.booleans(), st.booleans(), st.booleans(), st.sampled_from(KIND_CHOICES), st.booleans()),
    max_size=40,
)


@settings(max_examples=400)
@given(set_strategy, st.integers(0, 20), st.integers(0, 60), st.floats(0, 100))
@example([], 0, 0, 0.0)
@example(
    [
        (0.5, True, False, False, frozenset({"db"}), True),
        (1.5, True, False, True, frozenset({"db"}), False),
        (2.5, False, True, False, frozenset({"db"}), False),
    ],
    0,
    0,
    0.0,
)
@example(
    [
        (-2.0, True, False, False, frozenset({"db", "media"}), False),
        (3.0, True, False, False, frozenset({"media"}), False),
        (200.0, True, False, False, frozenset({"db"}), False),
    ],
    1,
    30,
    24.0,
)
@example([(0.0, False, False, False, frozenset({"db"}), False), (400.0, True, False, True, frozenset({"db", "globals"}), False)], 20, 60, 100.0)
def test_properties_of_any_plan(raw, keep_last, retention_days, grace):
    sets = [
        SetFacts(
            f"s{i}",
            NOW - timedelta(days=age),
            complete,
            damaged=damaged and not complete,
            known_bad=bad and complete,
            kinds=kinds,
            protected=protected and i == 0,
        )
        for i, (age, complete, damaged, bad, kinds, protected) in enumerate(raw)
    ]
    decisions = plan(sets, NOW, keep_last, retention_days, grace)
    result = actions(decisions)
    assert len(decisions) == len(sets) and set(result) == {s.set_id for s in sets}
    assert all(d.reason for d in decisions)
    counted = sorted((s for s in sets if s.complete and not is_future(s.time, NOW)), key=lambda s: (s.time, s.set_id), reverse=True)
    for kind in ("db", "media"):
        group = [s for s in counted if kind in retention_kinds(s.kinds)]
        if group:
            # The newest set of each kind is never deleted, and neither is the newest one not known bad.
            assert result[group[0].set_id] == KEEP
            not_bad = [s for s in group if not s.known_bad]
            if not_bad:
                assert result[not_bad[0].set_id] == KEEP
        # keep_last is honoured per kind.
        for s in group[:keep_last]:
            assert result[s.set_id] == KEEP
    for s in sets:
        if s.protected or is_future(s.time, NOW) or s.damaged:
            # This run's own set, sets from the future and damaged sets are never removed.
            assert result[s.set_id] == KEEP
        if result[s.set_id] == REMOVE:
            # Nothing younger than the limit is removed, debris aside.
            if s.complete:
                assert NOW - s.time > timedelta(days=retention_days)
            else:
                assert NOW - s.time > timedelta(hours=grace)
