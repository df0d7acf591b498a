"""Defects found by trying to break the engine (issue 10): each test reproduces one first."""

import json
import os
import pwd
import stat
from datetime import datetime, timedelta, timezone

import pytest

from helpers import fake_set

NOBODY = pwd.getpwnam("nobody").pw_uid


def _lock(env):
    return os.path.join(env.backup_dir, f".pgdrill-{env.dbname}.lock")


def test_lock_file_symlink_is_refused_and_its_target_untouched(backup_env, tmp_path):
    os.makedirs(backup_env.backup_dir, mode=0o700)
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    os.symlink(victim, _lock(backup_env))
    for command in (["prune"], ["verify"], []):
        done = backup_env.run(*command, check=1)
        assert "refusing the lock file" in done.stderr or "cannot open the lock file" in done.stderr, done.stderr
        assert "Fix:" in done.stderr and "Traceback" not in done.stderr
    assert victim.read_text() == "precious\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant a file owned by another user")
def test_lock_file_owned_by_a_stranger_or_hard_linked_is_refused(backup_env, tmp_path):
    os.makedirs(backup_env.backup_dir, mode=0o700)
    lock = _lock(backup_env)
    with open(lock, "w") as handle:
        handle.write("1")
    os.chown(lock, NOBODY, -1)
    done = backup_env.run("prune", check=1)
    assert "owned by uid" in done.stderr and "Traceback" not in done.stderr
    os.unlink(lock)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.link(victim, lock)
    done = backup_env.run("prune", check=1)
    assert "hard links" in done.stderr
    assert victim.read_text() == "precious\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as root in another user's directory")
def test_root_run_leaves_files_owned_by_the_directory_owner(backup_env):
    """A root prune or verify (an Ansible task, an operator) must not leave root-owned files that the
    backup user's next run cannot replace."""
    backup_env.run()
    os.chown(backup_env.backup_dir, NOBODY, -1)
    os.unlink(_lock(backup_env))
    backup_env.run("verify")
    for name in os.listdir(backup_env.backup_dir):
        if name.startswith(".pgdrill-") or "_verify_" in name:
            assert os.stat(os.path.join(backup_env.backup_dir, name)).st_uid == NOBODY, name


def _stamp(moment):
    return moment.strftime("%Y%m%d_%H%M%S")


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _visible(env):
    return sorted(name for name in os.listdir(env.backup_dir) if not name.startswith("."))


def _listing(env):
    return {row["set"]: row for row in json.loads(env.run("list", "--json").stdout)["results"][0]["sets"]}


@pytest.mark.parametrize("harm", ["truncated", "deleted"])
def test_a_set_with_a_missing_or_truncated_dump_is_damaged_and_never_counts(backup_env, harm):
    now = datetime.now(timezone.utc)
    prefix = backup_env.dbname
    old, new = now - timedelta(days=30), now - timedelta(days=1)
    fake_set(backup_env.backup_dir, prefix, _stamp(old), started=_iso(old))
    dump = fake_set(backup_env.backup_dir, prefix, _stamp(new), started=_iso(new))
    path = os.path.join(backup_env.backup_dir, dump)
    os.truncate(path, 0) if harm == "truncated" else os.unlink(path)
    backup_env.rewrite(keep_last=1, retention_days=7)
    rows = _listing(backup_env)
    assert rows[f"{prefix}_{_stamp(new)}_utc"]["state"] == "damaged"
    assert rows[f"{prefix}_{_stamp(old)}_utc"]["state"] == "complete"
    before = _visible(backup_env)
    backup_env.run("prune")
    assert _visible(backup_env) == before  # the older good set stays
    done = backup_env.run("verify", check=1)  # the newest set is reported, not passed over
    assert _stamp(new) in done.stdout and ("file is missing" in done.stdout or "size is 0 bytes" in done.stdout)
