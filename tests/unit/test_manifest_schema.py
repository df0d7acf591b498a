"""The manifest's schema (issue 18, D6 and T1): every field any code reads has the type that code
expects, or the set is damaged with the field named; impossible dates are damage too. Pure."""

import pytest

from pgdrill import manifest

PREFIX, STAMP = "app", "20261120_021500"


def _document(**changes):
    document = {
        "format": manifest.FORMAT,
        "format_version": manifest.FORMAT_VERSION,
        "prefix": PREFIX,
        "stamp": STAMP,
        "started_at": "2026-11-20T02:15:00.000Z",
        "files": [{"name": f"{PREFIX}_db_{STAMP}_utc.dump", "kind": "db", "size": 5, "sha256": "0" * 64}],
    }
    document.update(changes)
    return document


def test_a_manifest_of_pgdrill_0_1_with_its_null_and_absent_fields_is_trusted():
    assert manifest.problems(_document(), PREFIX, STAMP) == []
    assert manifest.problems(_document(fingerprint=None, row_counts=None, client={}, database={"name": "app"}), PREFIX, STAMP) == []


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"fingerprint": "abc"}, "field fingerprint: expected an object"),
        ({"row_counts": {"public.a": "abc"}}, "field row_counts['public.a']: expected a whole number of at least 0"),
        ({"row_counts": {"public.a": -1}}, "field row_counts['public.a']: expected a whole number of at least 0"),
        ({"row_counts": {"public.a": True}}, "field row_counts['public.a']: expected a whole number of at least 0"),
        ({"client": {"pg_dump_major": "x"}}, "field client.pg_dump_major: expected a whole number of at least 0"),
        ({"database": {"server_version_num": 1.5}}, "field database.server_version_num: expected a whole number of at least 0"),
        ({"fingerprint": {"objects": {"table a": {"acl": [1]}}}}, "field fingerprint.objects['table a'].acl[0]: expected a string"),
        ({"fingerprint": {"objects": {"table a": None}}}, "field fingerprint.objects['table a']: expected an object"),
        ({"fingerprint": {"large_objects": {"owners": {"app": "2"}}}}, "field fingerprint.large_objects.owners['app']: expected a whole number of at least 0"),
        ({"encryption": {"recipients": "age1x"}}, "field encryption.recipients: expected a list of strings"),
        ({"duration_seconds": "1.0"}, "field duration_seconds: expected a number"),
        ({"options": []}, "field options: expected an object"),
        ({"started_at": "0001-01-01T00:00:00Z"}, "field started_at: expected a time with its zone between the years 2000 and 9000"),
        ({"started_at": "9999-12-31T23:59:59+00:00"}, "field started_at: expected a time"),
        ({"started_at": "2026-11-20T02:15:00"}, "field started_at: expected a time"),
        ({"started_at": 1763604900}, "field started_at: expected a time"),
        ({"finished_at": "0001-01-01T00:00:00+05:00"}, "field finished_at: expected a time"),
    ],
)
def test_a_field_of_the_wrong_type_or_an_impossible_date_is_named_with_what_was_expected(changes, problem):
    found = manifest.problems(_document(**changes), PREFIX, STAMP)
    assert any(item.startswith(problem) for item in found), found


def test_the_earliest_and_latest_plausible_times_are_accepted():
    assert manifest.plausible_time("2000-01-01T00:00:00Z") and manifest.plausible_time("9000-01-01T00:00:00Z")
    assert not manifest.plausible_time("1999-12-31T23:59:59Z") and not manifest.plausible_time("9000-01-01T00:00:01Z")
