"""A failed check blames the set only when the set's own bytes are proven bad (issue 18, T3).

A wrong or missing key, a scratch server that is down, a role without CREATEDB, a missing tool: the
verify run fails (exit 1, the fix named), the set's recorded state stays what it was, shown as "could
not verify", and no retention rule ever deletes a set because of it. Real sets, taken by real
pgdrill-backup runs on chosen days (libfaketime), real age keys, a real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import cli_env

DAYS = ["2026-03-01 02:15:00", "2026-03-02 02:15:00", "2026-03-03 02:15:00", "2026-03-04 02:15:00", "2026-03-05 02:15:00"]
NOW = "2026-03-05 12:00:00"
DAILY = dict(keep_last=0, retention_days=0, keep_daily=7)


def _at(moment, env, *args, check=0, extra=None):
    done = subprocess.run(
        ["faketime", "-f", f"@{moment}", sys.executable, "-m", "pgdrill.cli", "--config", env.config, *args],
        env=cli_env({"TZ": "UTC", **(extra or {})}),
        capture_output=True,
        text=True,
    )
    assert done.returncode == check, f"exit {done.returncode}, wanted {check}\n{done.stdout}\n{done.stderr}"
    return done


def _keygen(directory, name):
    path = os.path.join(directory, f"{name}.key")
    subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True)
    os.chmod(path, 0o600)
    return path, subprocess.run(["age-keygen", "-y", path], check=True, capture_output=True, text=True).stdout.strip()


def _daily_sets(env, **settings):
    assert shutil.which("faketime"), "faketime (a Debian package) is installed by ./run"
    env.rewrite(**DAILY, **settings)
    return [json.loads(_at(moment, env, "--no-prune", "--json").stdout)["results"][0]["set"] for moment in DAYS]


def _listing(env):
    return {row["set"]: row for row in json.loads(_at(NOW, env, "list", "--json").stdout)["results"][0]["sets"]}


def _prune(env):
    outcome = json.loads(_at(NOW, env, "prune", "--json").stdout)["results"][0]
    return [entry["set"] for entry in outcome["removed"]]


@pytest.fixture
def keypair(tmp_path):
    assert shutil.which("age-keygen"), "./run setup installs the age package"
    return _keygen(str(tmp_path), "a"), _keygen(str(tmp_path), "b")


def test_a_wrong_key_never_makes_good_sets_prunable(backup_env, keypair):
    """Key rotation: five daily sets encrypted to key A, the host now holds key B. verify --all fails
    and says it could not verify; every set stays, and its state is not "failed"."""
    (key_a, recipient_a), (key_b, _) = keypair
    sets = _daily_sets(backup_env, encrypt_recipients=recipient_a)
    backup_env.rewrite(**DAILY, encrypt_recipients=recipient_a, encrypt_identity_file=key_b)
    done = _at(NOW, backup_env, "verify", "--all", check=1)
    assert done.stdout.count("could not verify") >= len(sets), done.stdout
    assert "not one of the recipients" in done.stdout
    listing = _listing(backup_env)
    assert all(listing[name]["verified"] != "failed" for name in sets), listing
    assert all(listing[name]["verification"]["verdict"] == "inconclusive" for name in sets)
    assert _prune(backup_env) == []
    assert sorted(listing) == sorted(sets)
    # With the right key the same sets pass, and the record says so.
    backup_env.rewrite(**DAILY, encrypt_recipients=recipient_a, encrypt_identity_file=key_a)
    _at(NOW, backup_env, "verify", "--all")
    assert all(row["verified"] == "ok" for row in _listing(backup_env).values())


def test_a_missing_tool_or_a_server_that_is_down_blames_nothing_and_keeps_the_last_verdict(backup_env, tmp_path):
    sets = _daily_sets(backup_env)
    _at(NOW, backup_env, "verify", sets[-1], "--restore")
    assert _listing(backup_env)[sets[-1]]["verified"] == "ok+restore"
    # The scratch server is down (the config points at a port nothing listens on).
    backup_env.rewrite(**DAILY, port=1)
    done = _at(NOW, backup_env, "verify", "--all", "--restore", check=1)
    assert "could not verify" in done.stdout
    listing = _listing(backup_env)
    assert listing[sets[-1]]["verified"] == "ok+restore", "an inconclusive run keeps the last conclusive verdict"
    assert listing[sets[-1]]["verification"]["could_not_verify"], listing[sets[-1]]
    assert all(listing[name]["verified"] != "failed" for name in sets)
    assert _prune(backup_env) == []
    # pg_restore is missing: the archive cannot be read, which says nothing about the archive.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("pg_dump", "pg_dumpall", "psql"):
        os.symlink(os.path.join(backup_env.cluster.bindir, tool), bindir / tool)
    backup_env.rewrite(**DAILY, pg_bin_dir=str(bindir))
    done = _at(NOW, backup_env, "verify", "--all", check=1)
    assert "could not verify" in done.stdout and "pg_restore" in done.stdout
    assert _prune(backup_env) == []


def test_a_role_without_createdb_cannot_verify_by_restore_and_blames_nothing(backup_env, tmp_path):
    _daily_sets(backup_env)
    backup_env.cluster.psql(f"CREATE ROLE plain_app LOGIN PASSWORD 'plain-secret'; ALTER DATABASE \"{backup_env.dbname}\" OWNER TO plain_app")
    passfile = tmp_path / "plain.pgpass"
    passfile.write_text("*:*:*:plain_app:plain-secret\n")
    passfile.chmod(0o600)
    try:
        backup_env.rewrite(**DAILY, user="plain_app", passfile=str(passfile))
        done = _at(NOW, backup_env, "verify", "--all", "--restore", check=1)
        assert "could not verify" in done.stdout and "CREATEDB" in done.stdout, done.stdout
        assert _prune(backup_env) == []
        assert all(row["verified"] != "failed" for row in _listing(backup_env).values())
    finally:
        backup_env.cluster.psql(f'ALTER DATABASE "{backup_env.dbname}" OWNER TO postgres; DROP ROLE plain_app')


def test_bytes_proven_bad_still_count_against_the_set(backup_env):
    """The other side of the rule: a set whose own bytes fail (a flipped byte) is "failed", and its
    day falls to the next good set, as before."""
    sets = _daily_sets(backup_env)
    stamp = "_".join(sets[1].split("_")[-3:])
    # The globals file: only its checksum can catch this (the archive check reads the dump alone).
    victim = next(name for name in backup_env.files() if "_globals_" in name and stamp in name)
    path = os.path.join(backup_env.backup_dir, victim)
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    done = _at(NOW, backup_env, "verify", "--all", check=1)
    assert "could not verify" not in done.stdout
    listing = _listing(backup_env)
    assert listing[sets[1]]["verified"] == "failed" and listing[sets[1]]["verification"]["verdict"] == "bad"
    assert [name for name in sets if listing[name]["verified"] == "failed"] == [sets[1]]
    # keep_last=0, keep_daily=7: every other day is kept by its own set; the bad one fills no tier.
    assert _prune(backup_env) == [sets[1]]


def test_restored_content_that_differs_blames_the_set(backup_env):
    """A restore that brings back other rows than the manifest recorded proves the set bad (here the
    manifest's own count is edited: the archive and the record of it disagree)."""
    backup_env.rewrite(**DAILY)
    backup_env.run("--no-prune")
    name = next(name for name in backup_env.files() if "_manifest_" in name)
    path = os.path.join(backup_env.backup_dir, name)
    document = json.load(open(path, encoding="utf-8"))
    table = sorted(document["row_counts"])[0]
    document["row_counts"][table] += 1
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    done = backup_env.run("verify", "--restore", check=1)
    assert "could not verify" not in done.stdout and "row counts" in done.stdout
    row = json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"][0]
    assert row["verified"] == "failed" and row["verification"]["verdict"] == "bad"


def test_an_identity_file_others_can_read_is_refused_with_the_chmod_fix_and_blames_nothing(backup_env, keypair):
    """E7 through the whole engine: verify --restore with a 0644 identity file exits 1 naming
    chmod 600; the verdict is inconclusive, the set keeps its last conclusive verdict, and prune
    keeps every set. With the mode fixed, the same set verifies."""
    (key_a, recipient_a), _ = keypair
    sets = _daily_sets(backup_env, encrypt_recipients=recipient_a)
    backup_env.rewrite(**DAILY, encrypt_recipients=recipient_a, encrypt_identity_file=key_a)
    _at(NOW, backup_env, "verify", sets[-1], "--restore")
    os.chmod(key_a, 0o644)
    done = _at(NOW, backup_env, "verify", sets[-1], "--restore", check=1)
    assert f"chmod 600 {key_a}" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "open to other users (mode 0644)" in done.stdout + done.stderr
    row = _listing(backup_env)[sets[-1]]
    assert row["verification"]["verdict"] == "inconclusive", row
    assert row["verified"] == "ok+restore", "an inconclusive run keeps the last conclusive verdict"
    assert _prune(backup_env) == []
    os.chmod(key_a, 0o600)
    _at(NOW, backup_env, "verify", sets[-1], "--restore")
