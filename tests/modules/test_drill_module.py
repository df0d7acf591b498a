"""The pgdrill_drill module on a copy of a set: its check mode and its refusals (the drill itself runs
on real clusters in tests/ansible/test_drill.py)."""

import os

from helpers import fake_set
from test_modules import fake_bin

STAMP = "20261121_021500"


def _args(tmp_path, **extra):
    bindir = fake_bin(tmp_path, "pg_restore")
    return {"backup_dir": str(tmp_path / "copy"), "prefix": "shop", "set": f"shop_{STAMP}_utc", "database": "shop", "pg_bin_dir": bindir, **extra}


def test_check_mode_verifies_the_copy_and_restores_nothing(run_module, tmp_path):
    dump = fake_set(tmp_path / "copy", "shop", STAMP)
    result, failed, commands = run_module("pgdrill_drill", _args(tmp_path), check_mode=True, responses={"pg_restore": (0, "1; 0 0 TABLE public t owner\n", "")})
    assert not failed and result["changed"] is True and "would restore shop_20261121_021500_utc" in result["msg"], result
    assert result["record"]["set"] == f"shop_{STAMP}_utc" and result["record"]["files"][0]["name"] == dump
    assert [os.path.basename(c["argv"][0]) for c in commands] == ["pg_restore"] and commands[0]["argv"][1] == "--list"
    assert sorted(os.listdir(tmp_path / "copy")) == sorted([dump, f"shop_manifest_{STAMP}_utc.json"])  # no verification record


def test_a_damaged_copy_fails_on_arrival(run_module, tmp_path):
    dump = fake_set(tmp_path / "copy", "shop", STAMP)
    with open(tmp_path / "copy" / dump, "ab") as handle:
        handle.write(b"x")
    result, failed, _ = run_module("pgdrill_drill", _args(tmp_path), check_mode=True)
    assert failed and result["failed_step"] == "verify on arrival" and f"failed verification: checksum {dump}" in result["msg"], result


def test_a_malformed_check_is_refused_before_anything_runs(run_module, tmp_path):
    fake_set(tmp_path / "copy", "shop", STAMP)
    checks = [{"name": "login", "sql": "SELECT 1", "expect": "maybe"}]
    for check_mode in (True, False):
        result, failed, commands = run_module("pgdrill_drill", _args(tmp_path, checks=checks), check_mode=check_mode)
        assert failed and "check 'login': expect must be one of rows, none, value" in result["msg"] and commands == [], result
        assert result["failed_step"] == "configuration"
