"""Bad input gets a clear error, a non-zero exit, and nothing lost; secrets stay secret."""

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from helpers import cli_env, run_cli, system_pg_bindir, write_config
from pgdrill.locking import SeriesLock
from test_verify_prune_list import _fake_set


def test_pg_dump_not_installed_says_which_package(backup_env, tmp_path):
    empty = tmp_path / "nobin"
    empty.mkdir()
    backup_env.rewrite(pg_bin_dir=str(empty))
    done = backup_env.run(check=1)
    assert "pg_dump is not installed" in done.stderr and "postgresql-client" in done.stderr


def test_pg_dump_older_than_server_is_refused(tmp_path, pg18):
    config = write_config(tmp_path / "c.conf", pg18, "postgres", tmp_path / "b", pg_bin_dir=system_pg_bindir())
    done = run_cli("--config", config, check=1)
    assert "older than the server (PostgreSQL 18" in done.stderr
    assert "postgresql-client-18" in done.stderr
    assert not [n for n in os.listdir(tmp_path / "b") if not n.startswith(".")]


def test_newer_pg_dump_of_older_server_warns_and_its_restore_failure_is_explained(tmp_path, pg, sample_db, pg18):
    """pg_dump 18 may dump server 15, but only pg_restore 18 reads the archive, and it sets
    transaction_timeout, which server 15 rejects: pgdrill warns at backup time, and the restore
    check fails naming the cause and the fix instead of passing or failing obscurely."""
    config = write_config(tmp_path / "c.conf", pg, sample_db, tmp_path / "b", pg_bin_dir=pg18.bindir, compression="gzip")
    done = run_cli("--config", config)
    assert "only pg_restore 18+ reads" in done.stderr
    manifest = json.load(open(next(str(p) for p in (tmp_path / "b").iterdir() if "_manifest_" in p.name)))
    assert manifest["client"]["pg_dump_major"] == 18 and "transaction_timeout" in manifest["client"]["note"]
    done = run_cli("--config", config, "verify", "--restore", check=1)
    assert "FAILED  restore" in done.stdout and "transaction_timeout" in done.stdout and "PostgreSQL 17 or newer" in done.stdout


def test_wrong_password(backup_env, tmp_path):
    passfile = tmp_path / "bad.pgpass"
    passfile.write_text("*:*:*:postgres:not-the-password\n")
    os.chmod(passfile, 0o600)
    backup_env.rewrite(passfile=str(passfile))
    done = backup_env.run(check=1)
    assert "authentication failed" in done.stderr and ".pgpass" in done.stderr
    assert "not-the-password" not in done.stderr + done.stdout


def test_unreachable_server(backup_env):
    backup_env.rewrite(host="127.0.0.1", port=1)
    done = backup_env.run(check=1)
    assert "cannot reach the PostgreSQL server" in done.stderr and "running" in done.stderr


def test_missing_database(tmp_path, pg):
    config = write_config(tmp_path / "c.conf", pg, "no_such_db", tmp_path / "b")
    done = run_cli("--config", config, check=1)
    assert "database 'no_such_db' does not exist" in done.stderr


def test_bad_config_value_exits_2(backup_env):
    backup_env.rewrite(keep_last="fourteen")
    done = backup_env.run(check=2)
    assert "keep_last" in done.stderr and "'fourteen'" in done.stderr


@pytest.fixture
def small_mount(tmp_path):
    path = tmp_path / "small"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(path)], check=True)
    yield str(path)
    subprocess.run(["umount", "-l", str(path)], check=True)


def test_disk_full_removes_the_partial_file_and_keeps_older_sets(backup_env, small_mount):
    older = _fake_set(small_mount, backup_env.dbname, datetime.now(timezone.utc) - timedelta(days=90))
    before = {name: open(os.path.join(small_mount, name), "rb").read() for name in older}
    backup_env.rewrite(backup_dir=small_mount, compression="none", keep_last=0, retention_days=0)
    done = backup_env.run(check=1)
    assert "disk full" in done.stderr and "older backups are untouched" in done.stderr
    names = os.listdir(small_mount)
    assert not [n for n in names if ".part-" in n]
    assert {name: open(os.path.join(small_mount, name), "rb").read() for name in older} == before


def test_unwritable_directory(backup_env, small_mount):
    subprocess.run(["mount", "-o", "remount,ro", small_mount], check=True)
    backup_env.rewrite(backup_dir=small_mount)
    done = backup_env.run(check=1)
    assert "not writable" in done.stderr and small_mount in done.stderr


def test_second_run_is_refused_while_the_lock_is_held(backup_env):
    os.makedirs(backup_env.backup_dir, mode=0o700)
    lock = SeriesLock(backup_env.backup_dir, backup_env.dbname).acquire()
    try:
        done = backup_env.run(check=75)
        assert "another pgdrill run" in done.stderr and "--wait" in done.stderr
        started = time.monotonic()
        done = backup_env.run("--wait", "1", check=75)
        assert time.monotonic() - started >= 1 and "after waiting 1 s" in done.stderr
        threading.Timer(0.7, lock.release).start()
        backup_env.run("--wait", "20")
    finally:
        lock.release()
    assert len(backup_env.manifests()) == 1


def _descendants_cmdlines(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
        except (OSError, IndexError, ValueError):
            continue
        if int(entry) == pid or ppid == pid:
            found.append(cmdline)
    return found


@pytest.mark.parametrize("how", ["passfile", "PGPASSWORD"])
def test_password_never_in_argv_logs_or_backup_files(tmp_path, pg, big_db, how):
    password = pg.password
    extra = {}
    if how == "passfile":
        config = write_config(tmp_path / "c.conf", pg, big_db, tmp_path / "b", compression="gzip")
    else:
        config = write_config(tmp_path / "c.conf", pg, big_db, tmp_path / "b", compression="gzip", passfile="/nonexistent")
        extra = {"PGPASSWORD": password}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgdrill.cli", "--config", config, "--verbose"], env=cli_env(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    seen = []
    while proc.poll() is None:
        seen.extend(_descendants_cmdlines(proc.pid))
        time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert any(b"pg_dump" in cmd for cmd in seen), "the poll never saw pg_dump running"
    assert not any(password.encode() in cmd for cmd in seen)
    assert password.encode() not in out + err
    for name in os.listdir(tmp_path / "b"):
        with open(tmp_path / "b" / name, "rb") as handle:
            assert password.encode() not in handle.read(), name
