"""Small pure decisions: compression choice, pipeline exit rules, version checks, error texts."""

import signal

import pytest

from pgdrill.config import Connection
from pgdrill.db import classify_connect_error, compare_counts
from pgdrill.pgtools import choose_compression, client_too_old, parse_client_version
from pgdrill.pipeline import judge


def test_zstd_native_when_pg_dump_has_it():
    plan = choose_compression("zstd", 3, native_zstd=True, zstd_binary=True)
    assert (plan.method, plan.piped, plan.pg_dump_args()) == ("zstd", False, ["--compress=zstd:3"])


def test_zstd_pipe_when_only_the_program_exists():
    plan = choose_compression("zstd", 3, native_zstd=False, zstd_binary=True)
    assert plan.piped and plan.pg_dump_args() == ["--compress=0"]
    assert plan.compressor("/usr/bin/zstd") == ["/usr/bin/zstd", "-q", "-T0", "-3", "-c"]


def test_gzip_fallback_says_why():
    plan = choose_compression("zstd", 3, native_zstd=False, zstd_binary=False)
    assert plan.method == "gzip" and not plan.piped and "install zstd" in plan.note.lower()


def test_explicit_methods():
    assert choose_compression("gzip", 9, True, True).pg_dump_args() == ["--compress=9"]
    assert choose_compression("none", 0, True, True).pg_dump_args() == ["--compress=0"]


def test_pipeline_rule_every_exit_code_counts():
    assert judge([0, 0], head_read=False) == []
    assert judge([1, 0], head_read=False) == [0]  # a failed pg_dump is not hidden by a happy zstd
    assert judge([0, 1], head_read=False) == [1]


def test_head_read_forgives_sigpipe_only_when_the_reader_succeeded():
    assert judge([-signal.SIGPIPE, 0], head_read=True) == []
    assert judge([-signal.SIGPIPE, 1], head_read=True) == [0, 1]
    assert judge([1, 0], head_read=True) == [0]
    assert judge([-signal.SIGPIPE, 0], head_read=False) == [0]


def test_version_parsing_and_refusal():
    assert parse_client_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == (15, "15.18")
    assert parse_client_version("pg_dump (PostgreSQL) 9.6.24") == (9, "9.6")
    assert client_too_old(15, 180006) and not client_too_old(18, 150018) and not client_too_old(15, 150018)
    assert client_too_old(9, 100005)


@pytest.mark.parametrize(
    "text,expected",
    [
        ('FATAL:  password authentication failed for user "app"', "authentication failed"),
        ("fe_sendauth: no password supplied", "no password"),
        ('FATAL:  database "nope" does not exist', "database 'nope' does not exist"),
        ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "cannot reach"),
    ],
)
def test_connection_errors_name_problem_and_fix(text, expected):
    error = classify_connect_error(text, "database 'x' on h")
    assert expected in error.problem and error.fix


def test_connection_repr_never_shows_the_password():
    conn = Connection(host="h", password="s3cret-value")
    assert "s3cret-value" not in repr(conn) and "s3cret-value" not in conn.describe()
    assert conn.libpq_env()["PGPASSWORD"] == "s3cret-value"


def test_count_comparison():
    assert compare_counts({"a": 1, "b": 2}, {"a": 1, "b": 2}) == []
    assert compare_counts({"a": 1}, {"a": 2, "c": 0}) == [("a", 1, 2), ("c", None, 0)]


def test_closest_client_at_or_above_the_server_is_picked():
    from pgdrill.pgtools import cross_version_note, pick_bindir

    installed = {13: "/c13", 15: "/c15", 18: "/c18"}
    assert pick_bindir(15, installed) == "/c15"
    assert pick_bindir(14, installed) == "/c15"
    assert pick_bindir(16, installed) == "/c18"
    assert pick_bindir(19, installed) is None
    assert cross_version_note(18, 15) and not cross_version_note(18, 17) and not cross_version_note(16, 15)


def test_stdbuf_only_for_the_zstd_pipe_and_errors_name_the_real_program():
    from pgdrill.pipeline import program_name

    piped = choose_compression("zstd", 3, native_zstd=False, zstd_binary=True)
    native = choose_compression("gzip", 6, native_zstd=False, zstd_binary=True)
    assert piped.pg_dump_prefix("/usr/bin/stdbuf") == ["/usr/bin/stdbuf", "-o1M"]
    assert piped.pg_dump_prefix(None) == [] and native.pg_dump_prefix("/usr/bin/stdbuf") == []
    assert program_name(["/usr/bin/stdbuf", "-o1M", "/usr/bin/pg_dump", "-Fc"]) == "pg_dump"
    assert program_name(["/usr/bin/zstd", "-q"]) == "zstd"


def test_smoke_check_specs_and_judgement():
    from pgdrill.drill import check_spec_problem, judge_rows, log_line

    assert check_spec_problem({"name": "login", "sql": "SELECT 1", "expect": "rows"}) is None
    assert check_spec_problem({"name": "migrate", "command": ["python3", "manage.py", "migrate"]}) is None
    assert "exactly one" in check_spec_problem({"name": "x", "sql": "SELECT 1", "command": ["true"]})
    assert "argument list" in check_spec_problem({"name": "x", "command": "python manage.py check"})
    assert "needs 'value'" in check_spec_problem({"name": "x", "sql": "SELECT 1", "expect": "value"})
    assert judge_rows({"expect": "rows"}, [(1,)])[0] and not judge_rows({"expect": "rows"}, [])[0]
    assert judge_rows({"expect": "none"}, [])[0] and not judge_rows({"expect": "none"}, [(1,)])[0]
    assert judge_rows({"expect": "value", "value": 3}, [(3,)])[0] and not judge_rows({"expect": "value", "value": 3}, [(4,)])[0]
    line = log_line(
        {
            "finished_at": "2026-11-26T07:30:00Z",
            "database": "ez360pm",
            "source_host": "db1",
            "set": "ez360pm_20261126_021500_utc",
            "timings": {"restore": 9.74},
            "checks": [{"ok": True}, {"ok": False}],
            "outcome": "failed",
            "failed_step": "smoke checks",
        }
    )
    assert line == "- 2026-11-26 07:30 UTC · ez360pm from db1 · set ez360pm_20261126_021500_utc · restore 9.7 s · 1/2 checks ok · FAILED at smoke checks"


def test_existing_directory_rules():
    import os
    import stat as st

    from pgdrill.fsio import existing_dir_problem

    def info(mode, uid):
        return os.stat_result((mode, 0, 0, 2, uid, 0, 0, 0, 0, 0))

    assert existing_dir_problem(info(st.S_IFDIR | 0o700, 1000), 1000) is None
    assert existing_dir_problem(info(st.S_IFDIR | 0o755, 1000), 1000) is None
    assert "every user" in existing_dir_problem(info(st.S_IFDIR | 0o1777, 0), 0)
    assert "owned by uid 1001" in existing_dir_problem(info(st.S_IFDIR | 0o700, 1001), 1000)
    assert existing_dir_problem(info(st.S_IFDIR | 0o700, 1001), 0) is None  # root may work in the backup user's directory
    assert "not a directory" in existing_dir_problem(info(st.S_IFREG | 0o600, 1000), 1000)


def test_backup_decisions():
    from pgdrill.backup import conninfo_value, is_lock_timeout
    from pgdrill.backup_plan import media_command, media_compression
    from pgdrill.errors import PgdrillError

    assert conninfo_value("dbname", "a=b") == "dbname='a=b'"
    assert conninfo_value("dbname", "o'k\\x") == "dbname='o\\'k\\\\x'"
    assert media_compression("zstd", None) == ("gzip", "zstd is not installed; the media archive uses gzip")
    assert media_compression("zstd", "/usr/bin/zstd") == ("zstd", None)
    assert media_command("none", 0, None) == [] and media_command("gzip", 12, None) == [["gzip", "-c", "-9"]]
    assert is_lock_timeout(PgdrillError("pg_dump failed", stderr="ERROR:  canceling statement due to lock timeout"))
    assert not is_lock_timeout(PgdrillError("pg_dump failed", stderr="FATAL:  database does not exist"))
