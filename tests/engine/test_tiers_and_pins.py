"""Grandfather-father-son retention and pins on real sets (issue 13): backups taken by real
pgdrill-backup runs with the clock set by libfaketime to chosen days, then prune --dry-run, pin,
prune and unpin through the command."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import cli_env

# When each backup is taken (UTC), and what it is in Berlin. Worked out by hand:
#   dec31  2025-12-31 12:00  Wed 13:00, ISO week 2026-W01, Dec 2025, year 2025
#   jan15  2026-01-15 12:00  Thu 13:00, W03, Jan 2026
#   jan31  2026-01-31 12:00  Sat 13:00, W05, Jan 2026
#   sun    2026-02-01 22:30  Sun 23:30, W05, Feb 2026  (Sunday in UTC too)
#   mon0   2026-02-01 23:30  Mon 00:30 on Feb 2, W06   (still Sunday, W05, in UTC)
#   mon    2026-02-02 12:00  Mon 13:00, W06
#   tue    2026-02-03 12:00  Tue 13:00, W06
DAYS = {
    "dec31": "2025-12-31 12:00:00",
    "jan15": "2026-01-15 12:00:00",
    "jan31": "2026-01-31 12:00:00",
    "sun": "2026-02-01 22:30:00",
    "mon0": "2026-02-01 23:30:00",
    "mon": "2026-02-02 12:00:00",
    "tue": "2026-02-03 12:00:00",
}
NOW = "2026-02-04 12:00:00"
TIERS = dict(keep_last=0, retention_days=0, keep_daily=2, keep_weekly=2, keep_monthly=2, keep_yearly=2)


def _at(moment, env, *args, check=0):
    done = subprocess.run(
        ["faketime", "-f", f"@{moment}", sys.executable, "-m", "pgdrill.cli", "--config", env.config, *args],
        env=cli_env({"TZ": "UTC"}),
        capture_output=True,
        text=True,
    )
    assert done.returncode == check, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _plan(env, **settings):
    env.rewrite(**TIERS, **settings)
    outcome = json.loads(_at(NOW, env, "prune", "--dry-run", "--json").stdout)["results"][0]
    return {entry["set"]: entry for entry in outcome["removed"] + outcome["kept"]}


@pytest.fixture
def taken(backup_env):
    """The seven sets, by name, each written by a real backup at its day."""
    assert shutil.which("faketime"), "faketime (a Debian package) is installed by ./run"
    names = {}
    for label, moment in DAYS.items():
        names[label] = json.loads(_at(moment, backup_env, "--no-prune", "--json").stdout)["results"][0]["set"]
        assert names[label].startswith(f"{backup_env.dbname}_{moment[:10].replace('-', '')}_{moment[11:13]}"), names[label]
    return backup_env, names


def test_tiers_on_real_sets_follow_the_calendar_of_the_time_zone(taken):
    env, names = taken
    label_of = {name: label for label, name in names.items()}
    berlin = _plan(env, retention_timezone="Europe/Berlin")
    assert {label_of[name] for name, entry in berlin.items() if entry["action"] == "remove"} == {"jan15", "mon0"}
    assert berlin[names["tue"]]["reasons"] == [
        "newest complete set holding a database dump (never deleted)",
        "daily (2026-02-03)",
        "weekly (2026-W06)",
        "monthly (2026-02)",
        "yearly (2026)",
    ]
    assert berlin[names["mon"]]["reasons"] == ["daily (2026-02-02)"]
    assert berlin[names["sun"]]["reasons"] == ["weekly (2026-W05)"]
    assert berlin[names["jan31"]]["reasons"] == ["monthly (2026-01)"]
    assert berlin[names["dec31"]]["reasons"] == ["yearly (2025)"]
    # In UTC, 23:30 on Feb 1 is still Sunday: the newest set of week 5, where Berlin saw a Monday.
    utc = _plan(env, retention_timezone="UTC")
    assert {label_of[name] for name, entry in utc.items() if entry["action"] == "remove"} == {"jan15", "sun"}
    assert utc[names["mon0"]]["reasons"] == ["weekly (2026-W05)"]
    assert len(os.listdir(env.backup_dir)) - 1 == 7 * 3  # dry runs deleted nothing (db, globals, manifest each; and the lock)


def test_pin_list_prune_unpin_on_real_sets(taken):
    env, names = taken
    env.rewrite(**TIERS, retention_timezone="Europe/Berlin")
    pinned = names["jan15"]
    done = _at(NOW, env, "pin", pinned, "--reason", "before migration 0042")
    assert 'pinned: "before migration 0042"' in done.stdout
    pin_file = os.path.join(env.backup_dir, pinned.replace(f"{env.dbname}_", f"{env.dbname}_pin_").replace("_utc", "_utc.json"))
    assert os.stat(pin_file).st_mode & 0o777 == 0o600
    record = json.load(open(pin_file, encoding="utf-8"))
    assert record["set"] == pinned and record["reason"] == "before migration 0042" and record["pinned_at"].startswith("2026-02-04T12:00")
    # Written once: the same pin again changes nothing; another reason is refused, naming who pinned it.
    assert "already pinned by" in _at(NOW, env, "pin", pinned, "--reason", "before migration 0042").stdout
    refused = _at(NOW, env, "pin", pinned, "--reason", "audit", check=1)
    assert "already pinned by " + record["by"] in refused.stderr and "unpin" in refused.stderr
    listing = _at(NOW, env, "list").stdout
    assert f'pinned: "before migration 0042" ({record["by"]}' in next(line for line in listing.splitlines() if pinned in line)
    preview = _at(NOW, env, "prune", "--dry-run").stdout
    assert f'keep         {pinned}: pinned: "before migration 0042"' in preview
    assert f"would remove {names['mon0']}: not kept by any tier (daily 2, weekly 2, monthly 2, yearly 2)" in preview
    assert f"keep         {names['jan31']}: monthly (2026-01)" in preview
    done = json.loads(_at(NOW, env, "prune", "--json").stdout)["results"][0]
    assert [entry["set"] for entry in done["removed"]] == [names["mon0"]]
    assert os.path.exists(pin_file) and f"{env.dbname}_manifest_{pinned[len(env.dbname) + 1 : -4]}_utc.json" in os.listdir(env.backup_dir)
    assert json.loads(_at(NOW, env, "prune", "--json").stdout)["results"][0]["removed"] == []  # twice removes nothing more
    # Unpinned, the set is retention's again.
    assert "unpinned" in _at(NOW, env, "unpin", pinned).stdout and not os.path.exists(pin_file)
    assert "not pinned" in _at(NOW, env, "unpin", pinned).stdout
    assert f"would remove {pinned}:" in _at(NOW, env, "prune", "--dry-run").stdout


def test_pin_refuses_what_is_not_a_complete_set(backup_env, tmp_path):
    backup_env.run()
    (manifest,) = [name for name in backup_env.files() if "_manifest_" in name]
    name = manifest.replace("_manifest_", "_").replace(".json", "")
    assert "no backup set named" in backup_env.run("pin", name.replace("_utc", "9_utc"), "--reason", "x", check=1).stderr
    assert "a pin needs a reason" in backup_env.run("pin", name, "--reason", " ", check=1).stderr
    assert backup_env.run("pin", name, check=2).returncode == 2  # --reason is required
    os.unlink(os.path.join(backup_env.backup_dir, manifest))
    assert "not a complete backup set" in backup_env.run("pin", name, "--reason", "x", check=1).stderr
    assert not [entry for entry in backup_env.files() if "_pin_" in entry]


def test_pin_finds_the_series_by_the_sets_own_prefix(tmp_path):
    from helpers import fake_set, run_cli

    for prefix in ("shop", "shop_db"):
        fake_set(tmp_path / "b", prefix, "20261101_021500", started="2026-11-01T02:15:00.000Z")
    config = tmp_path / "pgdrill.conf"
    config.write_text(f"[pgdrill]\nbackup_dir = {tmp_path / 'b'}\n[database shop]\n[database shop_db]\n")
    done = run_cli("--config", str(config), "pin", "shop_db_20261101_021500_utc", "--reason", "audit")
    assert done.stdout.startswith("shop_db: shop_db_20261101_021500_utc pinned")
    assert sorted(name for name in os.listdir(tmp_path / "b") if "_pin_" in name) == ["shop_db_pin_20261101_021500_utc.json"]
    # A bare stamp names no series when there are two: refused, nothing written.
    refused = run_cli("--config", str(config), "pin", "20261101_021500", "--reason", "audit", check=1)
    assert "does not say which database" in refused.stderr and "--database" in refused.stderr
    done = run_cli("--config", str(config), "--database", "shop", "pin", "20261101_021500", "--reason", "audit")
    assert done.stdout.startswith("shop: shop_20261101_021500_utc pinned")
    rows = json.loads(run_cli("--config", str(config), "list", "--json").stdout)["results"]
    assert [(r["database"], [(s["set"], s["pinned"], s["pin"]["reason"]) for s in r["sets"]]) for r in rows] == [
        ("shop", [("shop_20261101_021500_utc", True, "audit")]),
        ("shop_db", [("shop_db_20261101_021500_utc", True, "audit")]),
    ]


@pytest.mark.parametrize("content", [b"", b"\x00\xff not json", b"[]", b'{"reason": 5}'])
def test_an_empty_or_unreadable_pin_file_still_pins_its_set(backup_env, content):
    """Fail safe (issue 18): whatever a pin file holds, its set stays through every prune."""
    from datetime import datetime, timedelta, timezone

    from helpers import fake_set

    old = datetime.now(timezone.utc) - timedelta(days=90)
    stamp = old.strftime("%Y%m%d_%H%M%S")
    prefix = backup_env.dbname
    fake_set(backup_env.backup_dir, prefix, stamp, started=old.isoformat())
    with open(os.path.join(backup_env.backup_dir, f"{prefix}_pin_{stamp}_utc.json"), "wb") as handle:
        handle.write(content)
    backup_env.rewrite(keep_last=0, retention_days=1)
    backup_env.run("--no-prune")  # a newer set, so the old one is not the newest
    done = backup_env.run("prune")
    assert "pinned" in done.stdout and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert os.path.exists(os.path.join(backup_env.backup_dir, f"{prefix}_manifest_{stamp}_utc.json")), done.stdout
