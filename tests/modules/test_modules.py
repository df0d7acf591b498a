import json
import os
import stat

import pytest

from helpers import fake_set


def fake_bin(tmp_path, *names):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name in names:
        path = bindir / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    return str(bindir)


def test_info_lists_newest_first_and_is_read_only(run_module, tmp_path):
    fake_set(tmp_path / "b", "shop", "20261120_021500", started="2026-11-20T02:15:00.000Z")
    fake_set(tmp_path / "b", "shop", "20261121_021500", started="2026-11-21T02:15:00.000Z")
    fake_set(tmp_path / "b", "other", "20261122_021500")
    result, failed, commands = run_module("pgdrill_info", {"backup_dir": str(tmp_path / "b"), "prefix": "shop"})
    assert not failed and result["changed"] is False and commands == []
    assert [s["set"] for s in result["sets"]] == ["shop_20261121_021500_utc", "shop_20261120_021500_utc"]
    assert result["newest"]["set"] == "shop_20261121_021500_utc" and result["newest_age_seconds"] > 0
    assert result["complete_count"] == 2


def test_info_on_an_empty_series(run_module, tmp_path):
    result, failed, _ = run_module("pgdrill_info", {"backup_dir": str(tmp_path / "none"), "prefix": "shop"})
    assert not failed and result["newest"] is None and result["newest_age_seconds"] is None


def test_missing_backup_dir_is_a_clear_failure(run_module):
    result, failed, _ = run_module("pgdrill_info", {"prefix": "shop"})
    assert failed and "no backup directory given" in result["msg"] and "backup_dir" in result["msg"]


def test_prune_check_mode_plans_and_deletes_nothing_with_diff(run_module, tmp_path):
    directory = tmp_path / "b"
    fake_set(directory, "shop", "20200101_000000", started="2020-01-01T00:00:00.000Z")
    fake_set(directory, "shop", "20261121_021500", started="2026-11-21T02:15:00.000Z")
    before = sorted(os.listdir(directory))
    result, failed, _ = run_module(
        "pgdrill_prune", {"backup_dir": str(directory), "prefix": "shop", "keep_last": 1, "retention_days": 30, "_ansible_diff": True}, check_mode=True
    )
    assert not failed and result["changed"] is True
    assert [r["set"] for r in result["removed"]] == ["shop_20200101_000000_utc"]
    assert sorted(os.listdir(directory)) == before
    assert "shop_20200101_000000_utc" in result["diff"]["before"] and "shop_20200101_000000_utc" not in result["diff"]["after"]


def test_prune_argument_types_are_enforced(run_module, tmp_path):
    result, failed, _ = run_module("pgdrill_prune", {"backup_dir": str(tmp_path), "keep_last": "many"})
    assert failed and "keep_last" in result["msg"]


@pytest.mark.parametrize("compression,probes,suffix", [("gzip", 0, ".dump"), ("zstd", 1, ".dump.zst")])
def test_dump_check_mode_runs_no_pg_dump_and_names_the_files(run_module, tmp_path, compression, probes, suffix):
    bindir = fake_bin(tmp_path, "pg_dump", "pg_dumpall", "pg_restore")
    result, failed, commands = run_module(
        "pgdrill_dump",
        {"backup_dir": str(tmp_path / "b"), "db": "shop", "pg_bin_dir": bindir, "compression": compression},
        check_mode=True,
        responses={"pg_dump --version": (0, "pg_dump (PostgreSQL) 15.18\n", "")},
    )
    assert not failed and result["changed"] is True
    # At most a version probe (does this pg_dump compress with zstd itself?), never a dump.
    assert [c["argv"] for c in commands] == [[os.path.join(bindir, "pg_dump"), "--version"]] * probes
    names = [f["name"] for f in result["files"]]
    assert names[0].startswith("shop_db_") and names[0].endswith("_utc" + suffix) and names[-1].startswith("shop_manifest_")
    assert not os.path.exists(tmp_path / "b")


def test_dump_rejects_a_bad_choice(run_module, tmp_path):
    result, failed, _ = run_module("pgdrill_dump", {"backup_dir": str(tmp_path), "compression": "lz4"})
    assert failed and "compression" in result["msg"] and "lz4" in result["msg"]


def test_dump_skips_when_a_recent_set_exists(run_module, tmp_path):
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%d_%H%M%S")
    fake_set(tmp_path / "b", "shop", stamp, started=now.isoformat().replace("+00:00", "Z"))
    result, failed, commands = run_module("pgdrill_dump", {"backup_dir": str(tmp_path / "b"), "db": "shop", "skip_if_newer_than": 3600})
    assert not failed and result["changed"] is False and "limit 3600 s" in result["skipped_because"] and commands == []


def test_verify_runs_the_listing_through_run_command_with_the_password_in_env_only(run_module, tmp_path):
    bindir = fake_bin(tmp_path, "pg_restore")
    dump = fake_set(tmp_path / "b", "shop", "20261121_021500")
    result, failed, commands = run_module(
        "pgdrill_verify",
        {"backup_dir": str(tmp_path / "b"), "prefix": "shop", "pg_bin_dir": bindir, "login_password": "pw-in-env-only"},
        responses={"pg_restore": (0, "; comment\n1; 0 0 TABLE public t owner\n", "")},
    )
    assert not failed and result["changed"] is False and result["ok"]
    assert commands[0]["argv"] == [os.path.join(bindir, "pg_restore"), "--list", str(tmp_path / "b" / dump)]
    assert commands[0]["env"]["PGPASSWORD"] == "pw-in-env-only"
    assert all("pw-in-env-only" not in " ".join(c["argv"]) for c in commands)
    assert [c["name"] for c in result["checks"]] == ["manifest", f"checksum {dump}", f"archive {dump}"]
    assert stat.S_IMODE(os.stat(tmp_path / "b" / "shop_verify_20261121_021500_utc.json").st_mode) == 0o600


def test_verify_fails_naming_the_check(run_module, tmp_path):
    bindir = fake_bin(tmp_path, "pg_restore")
    dump = fake_set(tmp_path / "b", "shop", "20261121_021500")
    with open(tmp_path / "b" / dump, "ab") as handle:
        handle.write(b"x")
    result, failed, _ = run_module(
        "pgdrill_verify", {"backup_dir": str(tmp_path / "b"), "prefix": "shop", "pg_bin_dir": bindir}, responses={"pg_restore": (0, "", "")}
    )
    assert failed and result["changed"] is False and result["ok"] is False
    assert f"failed verification: checksum {dump}" in result["msg"]


def test_verify_check_mode_records_nothing(run_module, tmp_path):
    bindir = fake_bin(tmp_path, "pg_restore")
    fake_set(tmp_path / "b", "shop", "20261121_021500")
    result, failed, _ = run_module("pgdrill_verify", {"backup_dir": str(tmp_path / "b"), "prefix": "shop", "pg_bin_dir": bindir}, check_mode=True)
    assert not failed and not [n for n in os.listdir(tmp_path / "b") if "_verify_" in n]


def test_restore_command_building(tmp_path):
    from pgdrill import archives as restore
    from pgdrill.pgtools import PgTools

    bindir = fake_bin(tmp_path, "pg_restore")
    tools = PgTools(bindir)
    seen = []
    from pgdrill import pipeline

    pipeline.use_runner(lambda argv, env, data: seen.append((list(argv), env)) or pipeline.Completed(list(argv), 0, "", ""))
    try:
        result = restore.restore_archive(tools, {"PGPASSWORD": "x"}, "/b/shop_db_20261121_021500_utc.dump", "shop_check", jobs=4, clean=True, no_owner=True)
    finally:
        pipeline.use_runner(pipeline._default_runner)
    assert seen[0][0] == [
        os.path.join(bindir, "pg_restore"),
        "--exit-on-error",
        "--dbname=shop_check",
        "--jobs=4",
        "--clean",
        "--if-exists",
        "--no-owner",
        "/b/shop_db_20261121_021500_utc.dump",
    ]
    assert result["commands"] == [seen[0][0]] and "pg_restore" in result["timings"]


def test_restore_refuses_a_connection_string_as_target(tmp_path):
    import pytest

    from pgdrill.errors import PgdrillError
    from pgdrill.pgtools import PgTools
    from pgdrill.archives import pg_restore_argv

    with pytest.raises(PgdrillError, match="must not look like a connection string"):
        pg_restore_argv(PgTools(fake_bin(tmp_path, "pg_restore")), "/a.dump", "host=evil dbname=x")


def test_restore_refuses_a_connection_string_target_before_connecting_or_creating(run_module, tmp_path):
    fake_set(str(tmp_path / "b"), "shop", "20261120_021500")
    result, failed, commands = run_module(
        "pgdrill_restore", {"backup_dir": str(tmp_path / "b"), "prefix": "shop", "target_db": "x=y", "login_host": "/nonexistent"}
    )
    assert failed and "refusing target database name 'x=y'" in result["msg"] and commands == []


def test_restore_takes_a_partial_restore_and_its_options(run_module, tmp_path):
    result, failed, _ = run_module("pgdrill_restore", {"backup_dir": str(tmp_path / "b"), "prefix": "shop", "tables": "app.invoices"})
    assert failed and "there is no complete backup set" in result["msg"]  # the list was accepted; there is just no set
    result, failed, _ = run_module("pgdrill_restore", {"backup_dir": str(tmp_path / "b"), "prefix": "shop", "scratch": "sometimes"})
    assert failed and "scratch" in result["msg"]


def test_smoke_refuses_a_malformed_check_naming_it(run_module):
    result, failed, _ = run_module("pgdrill_smoke", {"db": "shop_drill", "checks": [{"name": "login", "sql": "SELECT 1", "expect": "maybe"}]})
    assert failed and "check 'login': expect must be one of rows, none, value" in result["msg"]
    result, failed, _ = run_module("pgdrill_smoke", {"db": "shop_drill", "commands": [{"name": "migrate", "command": "manage.py migrate"}]})
    assert failed and "an argument list, no shell" in result["msg"]


def test_smoke_check_mode_runs_and_drops_nothing(run_module):
    result, failed, _ = run_module(
        "pgdrill_smoke", {"db": "shop_drill", "login_host": "/nonexistent", "drop": "always", "checks": [{"name": "login", "sql": "SELECT 1"}]}, check_mode=True
    )
    assert not failed and result["changed"] is True and result["dropped"] is False and "would run 1 commands and checks" in result["msg"]


def test_evidence_is_written_private_and_whole_and_not_in_check_mode(run_module, tmp_path):
    record = {
        "drill_id": "5c0ffee1",
        "database": "shop",
        "source_host": "db1",
        "set": "shop_20261126_021500_utc",
        "started_at": "2026-11-26T07:30:00Z",
        "finished_at": "2026-11-26T07:31:00Z",
        "outcome": "passed",
        "timings": {"restore": 9.7},
    }
    restore = {
        "fidelity": {"checked": True, "objects": 40, "differences": [], "notes": [], "ok": True},
        "not_restored": ["ownership"],
        "row_counts": {"checked": True, "tables": 7, "rows": 70, "mismatches": []},
        "timings": {"total": 9.7},
        "commands": [{"argv": ["pg_restore", "--exit-on-error"]}],
        "server_majors": {"source": 15, "target": 15, "note": ""},
    }
    directory = tmp_path / "evidence"
    result, failed, _ = run_module("pgdrill_evidence", {"record": record, "restore": restore, "directory": str(directory)}, check_mode=True)
    assert not failed and result["changed"] and not directory.exists()
    assert (
        result["log_line"] == "- 2026-11-26 07:31 UTC · drill 5c0ffee1 · shop from db1 · set shop_20261126_021500_utc · restore 9.7 s · 2/2 restore proofs ok, "
        "no smoke checks configured · PASSED (ownership not restored)"
    )
    result, failed, _ = run_module("pgdrill_evidence", {"record": record, "restore": restore, "directory": str(directory)})
    written = json.loads(open(result["path"]).read())
    assert os.path.basename(result["path"]) == "drill_shop_20261126T073000Z_5c0ffee1.json"
    assert written["restore_commands"] == [{"argv": ["pg_restore", "--exit-on-error"]}] and written["not_restored"] == ["ownership"]
    assert [c["name"] for c in written["checks"]] == ["fingerprint against the backup", "row counts against the manifest"]
    assert oct(os.stat(result["path"]).st_mode & 0o777) == "0o600" and oct(os.stat(directory).st_mode & 0o777) == "0o700"


def test_dump_never_skips_for_a_set_from_the_future_and_warns_about_the_clock(run_module, tmp_path, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from ansible.module_utils import basic

    warnings = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: warnings.append(text))
    ahead = datetime.now(timezone.utc) + timedelta(days=365)
    fake_set(tmp_path / "b", "shop", ahead.strftime("%Y%m%d_%H%M%S"), started=ahead.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    bindir = fake_bin(tmp_path, "pg_dump", "pg_dumpall", "pg_restore")
    result, failed, _ = run_module(
        "pgdrill_dump",
        {"backup_dir": str(tmp_path / "b"), "db": "shop", "pg_bin_dir": bindir, "skip_if_newer_than": 86400},
        check_mode=True,
        responses={"pg_dump --version": (0, "pg_dump (PostgreSQL) 15.18\n", "")},
    )
    assert not failed and result["changed"] is True and "skipped_because" not in result
    assert any("clock" in text for text in warnings)


def _daily(directory, prefix, days):
    for day in days:
        fake_set(directory, prefix, f"202611{day:02d}_021500", started=f"2026-11-{day:02d}T02:15:00.000Z")


def test_prune_with_tiers_names_every_rule_and_diffs_why(run_module, tmp_path):
    directory = tmp_path / "b"
    _daily(directory, "shop", [1, 2, 3, 9, 10])
    args = {
        "backup_dir": str(directory),
        "prefix": "shop",
        "keep_last": 0,
        "keep_daily": 2,
        "keep_weekly": 2,
        "retention_timezone": "Europe/Berlin",
        "_ansible_diff": True,
    }
    result, failed, _ = run_module("pgdrill_prune", args, check_mode=True)
    assert not failed and result["changed"] is True
    assert [r["set"] for r in result["removed"]] == ["shop_20261102_021500_utc", "shop_20261101_021500_utc"]
    # Nov 3 2026 is a Tuesday of ISO week 45; Nov 9 and 10 are in week 46.
    assert [(k["set"], k["reasons"]) for k in result["kept"]] == [
        ("shop_20261110_021500_utc", ["newest complete set holding a database dump (never deleted)", "daily (2026-11-10)", "weekly (2026-W46)"]),
        ("shop_20261109_021500_utc", ["daily (2026-11-09)"]),
        ("shop_20261103_021500_utc", ["weekly (2026-W45)"]),
    ]
    assert result["policy"] == "keep_last 0, daily 2, weekly 2; calendar of Europe/Berlin"
    assert "shop_20261103_021500_utc  # kept: weekly (2026-W45)\n" in result["diff"]["after"]
    assert "shop_20261102_021500_utc  # removed: not kept by any tier (daily 2, weekly 2)\n" in result["diff"]["before"]
    assert "shop_20261102" not in result["diff"]["after"] and len(os.listdir(directory)) == 10  # check mode deleted nothing
    result, failed, _ = run_module("pgdrill_prune", args)
    assert not failed and sorted(name for name in os.listdir(directory) if not name.startswith(".")) == sorted(
        f"shop_{kind}_202611{day}_021500_utc.{ext}" for day in ("03", "09", "10") for kind, ext in (("db", "dump"), ("manifest", "json"))
    )
    result, failed, _ = run_module("pgdrill_prune", args)
    assert not failed and result["changed"] is False


def test_prune_refuses_an_unknown_time_zone_naming_the_option(run_module, tmp_path):
    result, failed, _ = run_module("pgdrill_prune", {"backup_dir": str(tmp_path), "prefix": "shop", "retention_timezone": "Europe/Atlantis"})
    assert failed and "retention_timezone" in result["msg"] and "Europe/Atlantis" in result["msg"]
    result, failed, _ = run_module("pgdrill_prune", {"backup_dir": str(tmp_path), "prefix": "shop", "keep_within": "36m"})
    assert failed and "keep_within" in result["msg"]


def test_pin_module_check_apply_idempotent_refuse_unpin(run_module, tmp_path):
    directory = tmp_path / "b"
    _daily(directory, "shop", [1, 2])
    base = {"backup_dir": str(directory), "prefix": "shop", "set": "shop_20261101_021500_utc", "reason": "before migration 0042", "_ansible_diff": True}
    pin_file = directory / "shop_pin_20261101_021500_utc.json"
    result, failed, _ = run_module("pgdrill_pin", base, check_mode=True)
    assert not failed and result["changed"] is True and not pin_file.exists()
    assert result["diff"]["before"] == "not pinned\n" and result["diff"]["after"].startswith('pinned: "before migration 0042"')
    result, failed, _ = run_module("pgdrill_pin", base)
    assert not failed and result["changed"] is True and pin_file.exists() and stat.S_IMODE(pin_file.stat().st_mode) == 0o600
    record = json.loads(pin_file.read_text())
    assert record["set"] == "shop_20261101_021500_utc" and record["reason"] == "before migration 0042" and "@" in record["by"]
    assert record["pinned_at"].endswith("Z")
    result, failed, _ = run_module("pgdrill_pin", base)
    assert not failed and result["changed"] is False
    result, failed, _ = run_module("pgdrill_pin", dict(base, reason="audit"))
    assert failed and "already pinned" in result["msg"] and record["by"] in result["msg"] and "unpin" in result["msg"]
    # A prune that would remove it by every rule keeps it, and its pin.
    result, failed, _ = run_module("pgdrill_prune", {"backup_dir": str(directory), "prefix": "shop", "keep_last": 0, "retention_days": 0})
    assert not failed and [k["set"] for k in result["kept"]] == ["shop_20261102_021500_utc", "shop_20261101_021500_utc"] and pin_file.exists()
    assert result["kept"][1]["reasons"] == ['pinned: "before migration 0042"']
    result, failed, _ = run_module("pgdrill_info", {"backup_dir": str(directory), "prefix": "shop"})
    assert [(s["set"], s["pinned"]) for s in result["sets"]] == [("shop_20261102_021500_utc", False), ("shop_20261101_021500_utc", True)]
    assert result["sets"][1]["pin"]["reason"] == "before migration 0042"
    absent = {key: value for key, value in base.items() if key != "reason"}
    result, failed, _ = run_module("pgdrill_pin", dict(absent, state="absent"), check_mode=True)
    assert not failed and result["changed"] is True and pin_file.exists()
    result, failed, _ = run_module("pgdrill_pin", dict(absent, state="absent"))
    assert not failed and result["changed"] is True and not pin_file.exists()
    result, failed, _ = run_module("pgdrill_pin", dict(absent, state="absent"))
    assert not failed and result["changed"] is False


def test_pin_module_refuses_missing_and_incomplete_sets_and_needs_a_reason(run_module, tmp_path):
    directory = tmp_path / "b"
    _daily(directory, "shop", [1])
    os.unlink(directory / "shop_manifest_20261101_021500_utc.json")
    base = {"backup_dir": str(directory), "prefix": "shop", "reason": "audit"}
    result, failed, _ = run_module("pgdrill_pin", dict(base, set="shop_20261101_021500_utc"))
    assert failed and "not a complete backup set" in result["msg"]
    result, failed, _ = run_module("pgdrill_pin", dict(base, set="shop_20261102_021500_utc"))
    assert failed and "no backup set named" in result["msg"]
    result, failed, _ = run_module("pgdrill_pin", {"backup_dir": str(directory), "prefix": "shop", "set": "shop_20261101_021500_utc"})
    assert failed and "reason" in result["msg"]
    assert [name for name in os.listdir(directory) if not name.startswith(".")] == ["shop_db_20261101_021500_utc.dump"]
