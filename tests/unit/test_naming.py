from datetime import datetime, timezone

import pytest
from hypothesis import example, given, strategies as st

from pgdrill.naming import (
    KIND_EXTENSIONS,
    dump_extension,
    file_name,
    format_stamp,
    group_by_set,
    parse_file_name,
    parse_temp_name,
    temp_prefix,
    validate_prefix,
)


def test_seed_file_name_is_reproduced():
    stamp = format_stamp(datetime(2026, 11, 26, 2, 15, 0, tzinfo=timezone.utc))
    assert file_name("ez360pm", "db", stamp, "dump") == "ez360pm_db_20261126_021500_utc.dump"


def test_compression_suffix_only_for_the_zstd_pipe():
    assert dump_extension("zstd", piped=True) == "dump.zst"
    assert dump_extension("zstd", piped=False) == "dump"
    assert dump_extension("gzip", piped=False) == "dump"


@pytest.mark.parametrize(
    "name",
    [
        "ez360pm_db_20261126_021500_utc.dump",
        "my_app_db_20261126_021500_utc.dump.zst",
        "shop.v2_media_20261126_021500_utc.tar.zst",
        "x_globals_20261126_021500_utc.sql",
        "x_manifest_20261126_021500_utc.json",
    ],
)
def test_parse_round_trips(name):
    parsed = parse_file_name(name)
    assert parsed is not None and parsed.name == name


@pytest.mark.parametrize(
    "name",
    [
        "ez360pm_db_20261126_021500_utc.dump.bak",  # extension not ours
        "ez360pm_db_20261126_021500.dump",  # no _utc
        "ez360pm_db_2026112_021500_utc.dump",  # short date
        ".ez360pm_db_20261126_021500_utc.dump",  # hidden
        "ez360pm_other_20261126_021500_utc.dump",  # unknown kind
        "notes.txt",
    ],
)
def test_foreign_names_are_not_ours(name):
    assert parse_file_name(name) is None


def test_prefix_with_underscores_and_kind_words_is_unambiguous():
    parsed = parse_file_name("a_db_db_20261126_021500_utc.dump")
    assert (parsed.prefix, parsed.kind) == ("a_db", "db")


def test_temp_names_map_to_their_final_name_and_never_parse_as_final():
    final = "ez360pm_db_20261126_021500_utc.dump.zst"
    temp = temp_prefix(final) + "abc123"
    assert parse_file_name(temp) is None
    assert parse_temp_name(temp).name == final


def test_grouping_keeps_only_the_prefix_asked_for():
    names = ["a_db_20260101_000000_utc.dump", "a_manifest_20260101_000000_utc.json", "ab_db_20260101_000000_utc.dump", "README"]
    groups = group_by_set(names, "a")
    assert list(groups) == ["20260101_000000"] and len(groups["20260101_000000"]) == 2


@pytest.mark.parametrize("prefix,ok", [("ez360pm", True), ("my-app.v2", True), ("", False), ("-x", False), ("a/b", False), ("a b", False)])
def test_prefix_validation(prefix, ok):
    assert (validate_prefix(prefix) is None) == ok


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True),
    st.sampled_from(["db", "globals", "media", "manifest"]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(timezone.utc)),
)
@example("ez360pm", "db", datetime(2026, 11, 26, 2, 15, tzinfo=timezone.utc))
@example("my-app.v2", "manifest", datetime(2000, 1, 1, tzinfo=timezone.utc))
@example("a_db_b", "globals", datetime(2099, 1, 1, tzinfo=timezone.utc))
@example("shop_media", "media", datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone.utc))
def test_any_valid_prefix_round_trips(prefix, kind, moment):
    name = file_name(prefix, kind, format_stamp(moment), KIND_EXTENSIONS[kind][0])
    parsed = parse_file_name(name)
    assert parsed.prefix == prefix and parsed.kind == kind


def test_other_files_with_valid_looking_names_are_not_ours():
    assert parse_file_name("app_db_20261126_021500_utc.sql") is None  # a dump is never .sql
    assert parse_file_name("app_globals_20261126_021500_utc.dump") is None
    assert parse_file_name("app_media_20261126_021500_utc.json") is None
    assert parse_file_name("app_db_20261399_021500_utc.dump") is None  # month 13
    assert parse_file_name("app_db_20261126_256100_utc.dump") is None
    assert parse_file_name("app_db_20261126_021500_utc.dump").kind == "db"


def test_prefix_of_set_ids_and_file_names():
    from pgdrill.naming import prefix_of, set_id_of_manifest

    assert prefix_of("app_db_20261126_021500_utc") == "app_db"
    assert prefix_of("app_db_db_20261126_021500_utc.dump.zst") == "app_db"
    assert prefix_of("20261126_021500") is None
    assert set_id_of_manifest("app_manifest_20261126_021500_utc.json") == "app_20261126_021500_utc"
    assert set_id_of_manifest("app_db_20261126_021500_utc.dump") is None


def test_names_are_matched_whole_a_trailing_newline_is_not_a_match():
    """Issue 18, R9: "$" accepts a trailing newline; names are matched whole everywhere."""
    from pgdrill.naming import parse_set_id, parse_temp_name, validate_prefix
    from pgdrill.errors import PgdrillError
    from pgdrill.storage import parse_remote

    for name in ("app_db_20261126_021500_utc.dump", "app_manifest_20261126_021500_utc.json"):
        assert parse_file_name(name) is not None
        for tail in ("\n", "\r\n", " ", "\n\n"):
            assert parse_file_name(name + tail) is None, repr(name + tail)
    assert parse_temp_name(".app_db_20261126_021500_utc.dump.part-abc") is not None
    assert parse_temp_name(".app_db_20261126_021500_utc.dump.part-abc\n") is None
    assert parse_set_id("app_20261126_021500_utc") and parse_set_id("app_20261126_021500_utc\n") is None
    assert validate_prefix("app") is None and validate_prefix("app\n") is not None
    with pytest.raises(PgdrillError):
        parse_remote("rclone:nas\n:backups")
