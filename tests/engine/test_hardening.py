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
