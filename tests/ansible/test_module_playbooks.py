"""The modules in real ansible-playbook runs (through ansible-runner) against real clusters.

For each module that changes things: check, apply, check, apply. The first pair reports a change,
the second none where nothing new is due, and check mode writes and deletes nothing."""

import os
from datetime import datetime, timedelta, timezone

from helpers import fake_set, listing


def _old_stamp(days):
    moment = datetime.now(timezone.utc) - timedelta(days=days)
    return moment.strftime("%Y%m%d_%H%M%S"), moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_dump_check_apply_check_apply(playbook, conn):
    extra = dict(conn, skip_if_newer_than=3600)
    first = playbook("dump.yml", extra, check=True)
    assert first.status == "successful" and first.task("Dump")["changed"] is True
    assert listing(conn["backup_dir"]) == []  # check mode wrote nothing, not even the directory
    applied = playbook("dump.yml", extra)
    result = applied.task("Dump")
    assert result["changed"] is True and result["res"]["set"].startswith(conn["pg_db"] + "_")
    names = listing(conn["backup_dir"])
    assert any("_manifest_" in n for n in names) and any("_db_" in n for n in names)
    again = playbook("dump.yml", extra, check=True)
    assert again.task("Dump")["changed"] is False
    applied_again = playbook("dump.yml", extra)
    assert applied_again.task("Dump")["changed"] is False and "limit 3600 s" in applied_again.task("Dump")["res"]["skipped_because"]
    assert listing(conn["backup_dir"]) == names


def test_prune_check_diff_then_apply(playbook, conn):
    playbook("dump.yml", conn)
    old = []
    for days in (30, 40):
        stamp, started = _old_stamp(days)
        fake_set(conn["backup_dir"], conn["pg_db"], stamp, started=started)
        old.append(f"{conn['pg_db']}_{stamp}_utc")
    extra = dict(conn, keep_last=1, retention_days=14)
    before = listing(conn["backup_dir"])
    check = playbook("prune.yml", extra, check=True, diff=True)
    result = check.task("Prune")
    assert result["changed"] is True and sorted(r["set"] for r in result["res"]["removed"]) == sorted(old)
    assert listing(conn["backup_dir"]) == before
    diff = result["res"]["diff"]
    assert all(name in diff["before"] and name not in diff["after"] for name in old)
    assert f"\n-{old[0]}  # removed: older than 14 days" in check.stdout  # the diff, as Ansible shows it to the operator
    applied = playbook("prune.yml", extra)
    assert applied.task("Prune")["changed"] is True
    after = listing(conn["backup_dir"])
    assert not any(name.replace("_utc", "") in " ".join(after) for name in old)
    assert playbook("prune.yml", extra, check=True).task("Prune")["changed"] is False
    assert playbook("prune.yml", extra).task("Prune")["changed"] is False
    assert listing(conn["backup_dir"]) == after


def test_prune_retention_tiers_and_a_pin_check_diff_then_apply(playbook, conn):
    from helpers import run_cli

    playbook("dump.yml", conn)
    prefix = conn["pg_db"]
    (today,) = [name for name in listing(conn["backup_dir"]) if "_manifest_" in name]
    for day in ("20250115", "20250210", "20250220", "20250305"):
        fake_set(conn["backup_dir"], prefix, f"{day}_021500", started=f"{day[:4]}-{day[4:6]}-{day[6:]}T02:15:00.000Z")
    run_cli("--out-dir", conn["backup_dir"], "pin", f"{prefix}_20250115_021500_utc", "--reason", "legal hold", env={"PGDATABASE": prefix})
    extra = dict(conn, keep_last=0, retention_days=0, keep_monthly=2, keep_yearly=1, retention_timezone="America/New_York")
    before = listing(conn["backup_dir"])
    check = playbook("prune.yml", extra, check=True, diff=True)
    result = check.task("Prune")["res"]
    gone = [f"{prefix}_20250220_021500_utc", f"{prefix}_20250210_021500_utc"]
    assert [r["set"] for r in result["removed"]] == gone and listing(conn["backup_dir"]) == before
    reasons = {k["set"]: k["reasons"] for k in result["kept"]}
    assert reasons[f"{prefix}_20250305_021500_utc"] == ["monthly (2025-03)"]
    assert reasons[f"{prefix}_20250115_021500_utc"] == ['pinned: "legal hold"']
    assert f"\n-{gone[0]}  # removed: not kept by any tier (monthly 2, yearly 1)" in check.stdout
    assert f"{prefix}_20250305_021500_utc  # kept: monthly (2025-03)" in check.stdout
    applied = playbook("prune.yml", extra)
    assert applied.task("Prune")["changed"] is True
    after = listing(conn["backup_dir"])
    assert not any("20250210" in name or "20250220" in name for name in after)
    assert f"{prefix}_pin_20250115_021500_utc.json" in after and today in after
    assert playbook("prune.yml", extra).task("Prune")["changed"] is False


def test_verify_passes_then_names_the_corruption(playbook, conn):
    playbook("dump.yml", conn)
    good = playbook("verify.yml", dict(conn, restore=True)).task("Verify")
    assert good["event"] == "runner_on_ok" and good["changed"] is False
    assert {c["name"] for c in good["res"]["checks"]} >= {"manifest", "restore", "row counts"}
    dump = next(n for n in listing(conn["backup_dir"]) if "_db_" in n)
    with open(os.path.join(conn["backup_dir"], dump), "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00corrupt\x00")
    bad = playbook("verify.yml", conn)
    result = bad.task("Verify")
    assert bad.status == "failed" and result["event"] == "runner_on_failed" and result["changed"] is False
    assert f"checksum {dump}" in result["res"]["msg"] and "corrupted" in result["res"]["msg"]


def test_restore_check_apply_then_refusals(playbook, conn, pg):
    playbook("dump.yml", conn)
    target = conn["pg_db"] + "_copy"
    extra = dict(conn, target_db=target)
    check = playbook("restore.yml", extra, check=True)
    assert check.task("Restore")["changed"] is True
    assert pg.psql(f"SELECT count(*) FROM pg_database WHERE datname = '{target}'") == "0"
    applied = playbook("restore.yml", extra).task("Restore")
    assert applied["changed"] is True and applied["res"]["row_counts"]["mismatches"] == []
    assert applied["res"]["timings"]["pg_restore"] > 0 and any("pg_restore" in line for line in applied["res"]["command_lines"])
    assert pg.psql("SELECT count(*) FROM invoices", target) == pg.psql("SELECT count(*) FROM invoices", conn["pg_db"])
    again = playbook("restore.yml", extra).task("Restore")
    assert again["event"] == "runner_on_failed" and "already exists" in again["res"]["msg"]
    own = playbook("restore.yml", dict(conn, target_db=conn["pg_db"], replace=True, terminate=True)).task("Restore")
    assert own["event"] == "runner_on_failed" and "taken from" in own["res"]["msg"] and "confirm" in own["res"]["msg"]
    pg.psql(f'DROP DATABASE "{target}" WITH (FORCE)')


def test_failures_surface_with_clear_messages(playbook, conn, tmp_path):
    missing = playbook("dump.yml", dict(conn, pg_db="no_such_database")).task("Dump")
    assert missing["event"] == "runner_on_failed" and "database 'no_such_database' does not exist" in missing["res"]["msg"]
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    no_tool = playbook("dump.yml", dict(conn, pg_bin_dir=str(empty))).task("Dump")
    assert no_tool["event"] == "runner_on_failed" and "pg_dump is not installed" in no_tool["res"]["msg"]
    assert "postgresql-client" in no_tool["res"]["msg"]


def test_info_reports_the_newest_set(playbook, conn):
    playbook("dump.yml", conn)
    info = playbook("info.yml", conn).task("Info")["res"]
    assert info["changed"] is False and info["complete_count"] == 1 and 0 <= info["newest_age_seconds"] < 600


def test_no_log_hides_the_password_everywhere(playbook, conn, pg):
    extra = dict(conn, pg_password=pg.password, pg_passfile="/nonexistent")
    run = playbook("dump.yml", extra)
    assert run.task("Dump")["changed"] is True  # the password really was used
    assert pg.password not in run.everything()
