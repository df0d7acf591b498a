"""The comparison between a backup's fingerprint and a restored database's: pure rules."""

from pgdrill.drill import compose_record, log_line, outcome_notes
from pgdrill.fingerprint import Scope, compare, default_acl, relation_name, summary


def fp():
    return {
        "database": {"encoding": "UTF8", "collate": "C.UTF-8", "ctype": "C.UTF-8", "owner": "app_owner"},
        "large_objects": {"count": 2, "owners": {"app_owner": 2}, "bytes": 100},
        "objects": {
            "schema app": {"owner": "app_owner", "acl": ["app_owner=UC/app_owner", "reader=U/app_owner"]},
            "table app.invoices": {"schema": "app", "owner": "app_owner", "acl": ["app_owner=arwdDxt/app_owner", "reader=r/app_owner"], "rls": True},
            "table app.invoices_2025": {"schema": "app", "owner": "app_owner", "partition_of": "app.invoices"},
            "index app.invoices_pkey": {"schema": "app", "table": "app.invoices"},
            "sequence app.numbers": {"schema": "app", "owner": "app_owner", "last_value": 1234, "increment": 1},
            "extension citext": {"version": "1.6", "in_schema": "public"},
            'table "a.b".c': {"schema": '"a.b"', "owner": "postgres"},
            "default privileges of app_owner in schema app on tables": {"schema": "app", "for_role": "app_owner", "acl": ["reader=r/app_owner"]},
        },
    }


def restored(**changes):
    import copy

    out = copy.deepcopy(fp())
    for key, value in changes.items():
        out["objects"][key] = value
    return out


def test_identical_fingerprints_compare_clean():
    assert compare(fp(), fp()) == ([], [])


def test_a_lost_grant_is_named_with_expected_and_found():
    actual = restored(**{"table app.invoices": {"schema": "app", "owner": "app_owner", "acl": ["app_owner=arwdDxt/app_owner"], "rls": True}})
    differences, notes = compare(fp(), actual)
    assert notes == [] and len(differences) == 1
    difference = differences[0]
    assert difference.object == "table app.invoices" and difference.what == "acl differs"
    assert difference.expected == ["app_owner=arwdDxt/app_owner", "reader=r/app_owner"] and difference.found == ["app_owner=arwdDxt/app_owner"]
    assert "reader=r/app_owner" in difference.describe()


def test_missing_and_extra_objects_and_lost_rls():
    actual = restored(
        **{
            "table app.invoices": {"schema": "app", "owner": "app_owner", "acl": ["app_owner=arwdDxt/app_owner", "reader=r/app_owner"]},
            "table app.stray": {"schema": "app", "owner": "x"},
        }
    )
    del actual["objects"]["index app.invoices_pkey"]
    found = {(d.object, d.what) for d in compare(fp(), actual)[0]}
    assert found == {("index app.invoices_pkey", "missing from the restore"), ("table app.stray", "not in the backup"), ("table app.invoices", "rls differs")}


def test_owners_not_restored_are_not_compared_and_acls_are_read_owner_neutral():
    """Restored by postgres with --no-owner: every object is postgres's, and so is every grant."""
    actual = restored(
        **{
            "schema app": {"owner": "postgres", "acl": ["postgres=UC/postgres", "reader=U/postgres"]},
            "table app.invoices": {"schema": "app", "owner": "postgres", "acl": ["postgres=arwdDxt/postgres", "reader=r/postgres"], "rls": True},
            "table app.invoices_2025": {"schema": "app", "owner": "postgres", "partition_of": "app.invoices"},
            "sequence app.numbers": {"schema": "app", "owner": "postgres", "last_value": 1234, "increment": 1},
        }
    )
    actual["database"]["owner"] = "postgres"
    actual["large_objects"]["owners"] = {"postgres": 2}
    assert compare(fp(), actual, owners=False) == ([], [])
    assert {d.what for d in compare(fp(), actual)[0]} == {"owner differs", "acl differs", "owners differs"}


def test_privileges_not_restored_leave_out_acls_and_default_privileges():
    actual = restored(**{"table app.invoices": {"schema": "app", "owner": "app_owner", "rls": True}, "schema app": {"owner": "app_owner"}})
    del actual["objects"]["default privileges of app_owner in schema app on tables"]
    assert compare(fp(), actual, privileges=False) == ([], [])
    assert len(compare(fp(), actual)[0]) == 3


def test_a_sequence_may_be_ahead_never_behind():
    ahead = restored(**{"sequence app.numbers": {"schema": "app", "owner": "app_owner", "last_value": 1240, "increment": 1}})
    behind = restored(**{"sequence app.numbers": {"schema": "app", "owner": "app_owner", "last_value": 1200, "increment": 1}})
    assert compare(fp(), ahead) == ([], [])
    (difference,) = compare(fp(), behind)[0]
    assert difference.what == "sequence is behind the backup" and (difference.expected, difference.found) == (1234, 1200)


def test_an_upgrade_explains_extension_versions_and_new_owner_privileges_only():
    actual = restored(
        **{
            "extension citext": {"version": "1.8", "in_schema": "public"},
            "table app.invoices": {"schema": "app", "owner": "app_owner", "acl": ["app_owner=arwdDxtm/app_owner", "reader=r/app_owner"], "rls": True},
        }
    )
    assert len(compare(fp(), actual)[0]) == 2  # same major: both are differences
    differences, notes = compare(fp(), actual, majors=(15, 18))
    assert differences == [] and {n.object for n in notes} == {"extension citext", "table app.invoices"}
    # a GRANT lost in an upgrade is still a difference
    lost = restored(**{"table app.invoices": {"schema": "app", "owner": "app_owner", "acl": ["app_owner=arwdDxtm/app_owner"], "rls": True}})
    assert [d.object for d in compare(fp(), lost, majors=(15, 18))[0]] == ["table app.invoices"]
    assert compare(fp(), actual, majors=(17, 18))[0][0].object == "table app.invoices"  # 17 already had MAINTAIN


def test_a_partial_restore_compares_what_was_asked_for_with_its_partitions():
    actual = {
        "database": {},
        "large_objects": {},
        "objects": {
            key: entry for key, entry in fp()["objects"].items() if key in ("table app.invoices", "table app.invoices_2025", "index app.invoices_pkey")
        },
    }
    scope = Scope(tables=frozenset({"app.invoices"})).with_partitions(fp())
    assert scope.tables == {"app.invoices", "app.invoices_2025"}
    assert compare(fp(), actual, scope=scope) == ([], [])
    assert summary(fp(), [], [], scope)["objects"] == 3
    assert [d.object for d in compare(fp(), actual, scope=Scope(schemas=frozenset({"app"})))[0]] == [
        "default privileges of app_owner in schema app on tables",
        "sequence app.numbers",
    ]


def test_relation_names_keep_quoted_dots():
    assert relation_name('table "a.b".c') == '"a.b".c' and relation_name("materialized view app.revenue") == "app.revenue"
    assert relation_name("partitioned table app.invoices") == "app.invoices" and relation_name("schema app") is None


def test_database_and_large_objects_compare_on_whole_restores():
    actual = restored()
    actual["large_objects"] = {"count": 1, "owners": {"app_owner": 1}, "bytes": 50}
    actual["database"]["collate"] = "en_US.UTF-8"
    found = {(d.object, d.what) for d in compare(fp(), actual)[0]}
    assert found == {
        ("database", "collate differs"),
        ("large objects", "count differs"),
        ("large objects", "bytes differs"),
        ("large objects", "owners differs"),
    }


def test_the_outcome_names_what_was_left_out_and_the_upgrade():
    record = {
        "outcome": "passed",
        "database": "shop",
        "source_host": "db1",
        "set": "shop_20261127_021500_utc",
        "finished_at": "2026-11-27T07:30:00Z",
        "timings": {"restore": 9.7},
        "not_restored": ["ownership", "privileges"],
        "fidelity": {"checked": True, "notes": []},
        "server_majors": {"source": 15, "target": 18, "note": "upgrade rehearsal 15 -> 18"},
        "checks": [{"ok": True}],
    }
    line = log_line(record)
    assert line.startswith("- 2026-11-27 07:30 UTC") and line.endswith("PASSED (ownership and privileges not restored; upgrade rehearsal 15 -> 18)")
    assert outcome_notes(dict(record, not_restored=[], server_majors={}, fidelity={"checked": False})) == ["no fingerprint in the set: row counts only"]
    assert log_line(dict(record, not_restored=[], server_majors={})).endswith("· PASSED")


def test_evidence_from_a_failed_restore_keeps_its_differences_and_commands():
    failed = {
        "failed": True,
        "msg": "differs",
        "fidelity": {
            "checked": True,
            "objects": 9,
            "differences": [{"object": "table app.invoices", "what": "acl differs", "expected": ["a"], "found": []}],
            "notes": [],
            "ok": False,
        },
        "restore": {
            "commands": [{"argv": ["pg_restore", "--exit-on-error"]}],
            "timings": {"total": 1.0},
            "not_restored": [],
            "server_majors": {"source": 15, "target": 15, "note": ""},
            "roles_created": ["app_owner"],
        },
    }
    record = compose_record({"outcome": "failed"}, failed, {}, {"roles_dropped": ["app_owner"]})
    assert record["restore_commands"] == [{"argv": ["pg_restore", "--exit-on-error"]}] and record["roles_dropped"] == ["app_owner"]
    (check,) = record["checks"]
    assert check["name"] == "fingerprint against the backup" and not check["ok"] and "table app.invoices: acl differs" in check["detail"]


def test_an_acl_equal_to_the_owners_default_is_the_default():
    """``grant select on a to app`` by a table's owner app stores {app=arwdDxt/app}, which pg_dump
    does not emit: the restore has no ACL. Both mean acldefault(kind, owner), on both sides."""
    explicit = restored(
        **{
            "table app.invoices_2025": {"schema": "app", "owner": "app_owner", "partition_of": "app.invoices", "acl": ["app_owner=arwdDxt/app_owner"]},
            "sequence app.numbers": {"schema": "app", "owner": "app_owner", "last_value": 1234, "increment": 1, "acl": ["app_owner=rwU/app_owner"]},
            "function app.f()": {"schema": "app", "owner": "app_owner", "acl": ["=X/app_owner", "app_owner=X/app_owner"]},
            "type app.mood": {"schema": "app", "owner": "app_owner", "acl": ["app_owner=U/app_owner", "=U/app_owner"]},
            'table "a.b".c': {"schema": '"a.b"', "owner": "Büro", "acl": ['"Büro"=arwdDxt/"Büro"']},
        }
    )
    nulls = restored(**{"function app.f()": {"schema": "app", "owner": "app_owner"}, "type app.mood": {"schema": "app", "owner": "app_owner"}})
    nulls["objects"]['table "a.b".c'] = {"schema": '"a.b"', "owner": "Büro"}
    for majors in (None, (15, 15), (16, 17)):
        assert compare(explicit, nulls, majors=majors) == ([], []), majors
    for majors in (None, (15, 15), (15, 16)):
        assert compare(nulls, explicit, majors=majors) == ([], []), majors
    assert default_acl("r", "app", 16) == ["app=arwdDxt/app"] and default_acl("r", "app", 17) == ["app=arwdDxtm/app"]
    # 17 gave owners MAINTAIN: {app=arwdDxt/app} on 17 is less than the default, a real difference
    assert [d.object for d in compare(explicit, nulls, majors=(17, 17))[0]] == ['table "a.b".c', "table app.invoices_2025"]
    # an owner who revoked part of their own privileges is not the default
    revoked = restored(
        **{"sequence app.numbers": {"schema": "app", "owner": "app_owner", "last_value": 1234, "increment": 1, "acl": ["app_owner=r/app_owner"]}}
    )
    assert [d.what for d in compare(revoked, fp())[0]] == ["acl differs"]
    # the default of another role is not the owner's default
    other = restored(**{"sequence app.numbers": {"schema": "app", "owner": "app_owner", "last_value": 1234, "increment": 1, "acl": ["reader=rwU/reader"]}})
    assert [d.what for d in compare(other, fp())[0]] == ["acl differs"]


def test_default_privileges_equal_to_the_default_are_the_default():
    key = "default privileges of app_owner on functions"
    explicit = restored(**{key: {"for_role": "app_owner", "acl": ["=X/app_owner", "app_owner=X/app_owner"]}})
    assert compare(explicit, fp()) == ([], [])  # neither side has an entry that grants anything more


def test_column_privileges_are_compared():
    source = restored(**{"table app.invoices": dict(fp()["objects"]["table app.invoices"], column_acls={"total": ["reader=r/app_owner"]})})
    differences, notes = compare(source, fp(), majors=(15, 15))
    assert notes == [] and [(d.object, d.what) for d in differences] == [("table app.invoices", "column acls differs")]
    assert compare(source, fp(), privileges=False) == ([], [])


def test_an_extension_version_differs_on_the_same_major_or_a_downgrade():
    """Only a restore into a newer major explains another extension version."""
    actual = restored(**{"extension citext": {"version": "1.8", "in_schema": "public"}})
    for majors in ((15, 15), (18, 18), (18, 15), None):
        differences, notes = compare(fp(), actual, majors=majors)
        assert notes == [] and [d.object for d in differences] == ["extension citext"], majors
    assert [n.object for n in compare(fp(), actual, majors=(15, 16))[1]] == ["extension citext"]
