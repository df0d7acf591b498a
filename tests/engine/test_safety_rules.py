"""Safety rules tested end to end, each so that breaking the rule fails a test (the mutation run in
tests/mutants.py checks that it does): real clusters, real pg_dump, real pipes and signals."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from helpers import cli_env, fake_set, write_config
from pgdrill import db
from pgdrill.catalog import scan
from pgdrill.config import Connection, load_configs
from pgdrill.errors import PgdrillError
from pgdrill.fsio import write_atomic
from pgdrill.recovery import RestoreOptions, restore_set


def old_sets(directory, prefix, count=2):
    """Complete sets far past any retention, as byte snapshots."""
    names = []
    for index in range(count):
        started = datetime.now(timezone.utc) - timedelta(days=90 + index)
        stamp = started.strftime("%Y%m%d_%H%M%S")
        dump = fake_set(directory, prefix, stamp, payload=b"PGDMP old set %d" % index, started=started.isoformat().replace("+00:00", "Z"))
        names += [dump, f"{prefix}_manifest_{stamp}_utc.json"]
    return {name: open(os.path.join(directory, name), "rb").read() for name in names}


def snapshot(directory, names):
    return {name: open(os.path.join(directory, name), "rb").read() for name in names if os.path.exists(os.path.join(directory, name))}


def start_backup(config, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "pgdrill.cli", "--config", config, *args], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_partial(directory, size=200_000, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                path = os.path.join(directory, name)
                if ".part-" in name and os.path.exists(path) and os.path.getsize(path) > size:
                    return name
        time.sleep(0.05)
    raise AssertionError("the dump never got going")


def test_pg_dump_dying_mid_stream_in_the_zstd_pipe_fails_the_run_and_prunes_nothing(tmp_path, pg, big_db):
    """The server ends pg_dump's session mid-dump: zstd sees a clean end of input and exits 0, so
    only pg_dump's own exit status tells the truth. The run fails, no file takes a final name, and
    two complete sets past retention stay byte for byte."""
    backups = tmp_path / "b"
    before = old_sets(str(backups), big_db)
    config = write_config(tmp_path / "c.conf", pg, big_db, backups, compression="zstd", keep_last=0, retention_days=0)
    proc = start_backup(config)
    wait_for_partial(str(backups))
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump'")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    assert "pg_dump" in err and "backup failed" in err
    names = os.listdir(backups)
    assert sorted(n for n in names if not n.startswith(".")) == sorted(before)  # nothing new under a final name, no manifest
    assert snapshot(str(backups), before) == before


def test_sigterm_mid_dump_removes_the_partial_files_and_exits_143(tmp_path, pg, big_db):
    backups = tmp_path / "b"
    config = write_config(tmp_path / "c.conf", pg, big_db, backups, compression="gzip", compression_level=9)
    proc = start_backup(config)
    wait_for_partial(str(backups))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert [n for n in os.listdir(backups) if not n.startswith(".pgdrill-")] == []  # no partial and no final file left


def test_a_run_removes_only_its_own_series_leftovers(backup_env):
    os.makedirs(backup_env.backup_dir, mode=0o700, exist_ok=True)
    mine = f".{backup_env.dbname}_db_20261101_021500_utc.dump.zst.part-abcd1234"
    theirs = ".other_db_20261101_021500_utc.dump.zst.part-abcd1234"
    for name in (mine, theirs):
        open(os.path.join(backup_env.backup_dir, name), "wb").write(b"partial")
    backup_env.run()
    names = backup_env.files()
    assert theirs in names and mine not in names


def test_a_final_file_is_never_overwritten(tmp_path):
    write_atomic(str(tmp_path), "shop_db_20261101_021500_utc.dump", b"the first backup")
    with pytest.raises(PgdrillError, match="never overwrites a backup file"):
        write_atomic(str(tmp_path), "shop_db_20261101_021500_utc.dump", b"a second one")
    assert (tmp_path / "shop_db_20261101_021500_utc.dump").read_bytes() == b"the first backup"
    assert [n for n in os.listdir(tmp_path) if ".part-" in n] == []


def test_a_second_already_used_by_the_series_is_never_reused(backup_env):
    """Two runs in one second: sets already hold the stamps of this second and the next ones, so
    the run must take a later second rather than write over (or fail against) their names."""
    now = datetime.now(timezone.utc)
    taken = []
    for offset in range(4):
        moment = now + timedelta(seconds=offset)
        stamp = moment.strftime("%Y%m%d_%H%M%S")
        fake_set(backup_env.backup_dir, backup_env.dbname, stamp, started=moment.isoformat().replace("+00:00", "Z"))
        taken.append(stamp)
    before = snapshot(backup_env.backup_dir, os.listdir(backup_env.backup_dir))
    backup_env.run("--no-prune")
    stamps = {m["stamp"] for m in backup_env.manifests()}
    assert len(stamps) == 5 and snapshot(backup_env.backup_dir, before) == before


def connection_of(cluster):
    return Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile)


def engine_config(backup_env, **changes):
    from dataclasses import replace

    (config,) = load_configs(backup_env.config, environ={})
    return replace(config, **changes)


def test_one_job_restores_a_zstd_set_through_a_pipe(backup_env):
    backup_env.run()
    config = engine_config(backup_env)
    backup = next(s for s in scan(config.backup_dir, config.prefix) if s.complete)
    target = f"{backup_env.dbname}_piped"
    try:
        outcome = restore_set(config, backup, RestoreOptions(target=target, jobs=1))
        (pipeline,) = [c["pipeline"] for c in outcome["commands"] if "pipeline" in c]
        assert os.path.basename(pipeline[0][0]) == "zstd" and os.path.basename(pipeline[1][0]) == "pg_restore"
        assert "decompress" not in outcome["timings"] and outcome["row_counts"]["checked"] and outcome["fidelity"]["ok"]
    finally:
        backup_env.cluster.psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_replacing_a_database_refuses_its_sessions_unless_told_to_end_them(backup_env):
    backup_env.run()
    config = engine_config(backup_env)
    backup = next(s for s in scan(config.backup_dir, config.prefix) if s.complete)
    target = f"{backup_env.dbname}_busy"
    pg = backup_env.cluster
    pg.psql(f'CREATE DATABASE "{target}"')
    session = db.connect(connection_of(pg), target, autocommit=True)
    try:
        with pytest.raises(PgdrillError, match="1 other connection"):
            restore_set(config, backup, RestoreOptions(target=target, replace=True))
        assert session.execute("SELECT 1").fetchone() == (1,)  # untouched by the refusal
        outcome = restore_set(config, backup, RestoreOptions(target=target, replace=True, terminate=True))
        assert outcome["target_existed"] and outcome["fidelity"]["ok"]
        with pytest.raises(psycopg.OperationalError):  # its backend was terminated
            session.execute("SELECT 1")
    finally:
        session.close()
        pg.psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_prune_deletes_a_sets_manifest_before_its_files(backup_env, monkeypatch):
    """An interrupted prune must leave debris (files without a manifest), never a manifest that
    points at deleted files. The order is observed on the real filesystem calls."""
    os.makedirs(backup_env.backup_dir, mode=0o700)
    old_sets(backup_env.backup_dir, backup_env.dbname, count=1)
    backup_env.run("--no-prune")
    from pgdrill.series import Series

    deleted = []
    real_unlink = os.unlink

    def recording_unlink(path, *args, **kwargs):
        deleted.append(os.path.basename(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", recording_unlink)
    config = engine_config(backup_env, keep_last=1, retention_days=0)
    with Series(config).lock():
        Series(config).prune()
    own = [name for name in deleted if name.startswith(backup_env.dbname + "_")]
    assert len(own) == 2 and "_manifest_" in own[0] and "_db_" in own[1]


def test_row_counts_no_leaves_them_out_and_restores_say_so(backup_env):
    backup_env.rewrite(row_counts="no")
    backup_env.run()
    (manifest,) = backup_env.manifests()
    assert manifest["row_counts"] is None and manifest["fingerprint"]["objects"]
    done = backup_env.run("verify", "--restore")
    assert "skipped: the manifest has no row counts (row_counts = no)" in done.stdout and "objects match" in done.stdout


def test_verify_all_checks_every_set_and_fails_on_an_old_bad_one(backup_env):
    backup_env.run("--no-prune")
    backup_env.run("--no-prune")
    oldest = sorted(m["stamp"] for m in backup_env.manifests())[0]
    dump = next(n for n in backup_env.files() if f"_db_{oldest}_" in n)
    with open(os.path.join(backup_env.backup_dir, dump), "r+b") as handle:
        handle.seek(64)
        handle.write(b"\xffflipped")
    done = backup_env.run("verify", "--all", "--json", check=1)
    results = json.loads(done.stdout)["results"]
    assert [r["ok"] for r in sorted(results, key=lambda r: r["set"])] == [False, True]


def test_a_full_disk_while_decompressing_fails_the_restore_check_and_cleans_up(backup_env, tmp_path):
    small = tmp_path / "work"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(small)], check=True)
    try:
        backup_env.rewrite(work_dir=str(small))
        backup_env.run()
        done = backup_env.run("verify", "--restore", "--jobs", "2", check=1)
        assert "disk full decoding" in done.stdout and "set work_dir to a larger filesystem" in done.stdout
        assert os.listdir(small) == []
        assert backup_env.cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgdrill_verify_%'") == "0"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=True)


def test_a_backup_user_without_rights_to_the_directory_gets_the_fix(pg, sample_db):
    """Run as an unprivileged OS user (the lab's), so the permission branches really happen."""
    import shutil
    import tempfile

    from pgdrill_lab.cluster import LAB_USER

    base = tempfile.mkdtemp(prefix="pgdrill-unprivileged-", dir="/tmp")  # pytest's own tmp is root-only
    try:
        os.chmod(base, 0o755)
        target = os.path.join(base, "root-only")
        os.mkdir(target, 0o700)
        passfile = os.path.join(base, "pgpass")
        shutil.copy(pg.passfile, passfile)
        subprocess.run(["chown", LAB_USER, passfile], check=True)
        config = write_config(os.path.join(base, "c.conf"), pg, sample_db, os.path.join(target, "backups"), passfile=passfile)
        os.chmod(config, 0o644)
        # The engine and the distribution's python3 where that user can read them (the checkout and
        # the test venv may live under /root).
        import pgdrill

        shutil.copytree(os.path.dirname(pgdrill.__file__), os.path.join(base, "lib", "pgdrill"))
        subprocess.run(["chmod", "-R", "a+rX", os.path.join(base, "lib")], check=True)
        done = subprocess.run(
            ["runuser", "-u", LAB_USER, "--", "/usr/bin/python3", "-m", "pgdrill.cli", "--config", config],
            env=dict(cli_env(), PYTHONPATH=os.path.join(base, "lib")),
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert done.returncode == 1, done
        assert "permission denied" in done.stderr and "Fix:" in done.stderr and "Traceback" not in done.stderr
        assert not os.path.exists(os.path.join(target, "backups"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


AGE_DYING = """#!/bin/sh
# age that encrypts part of its input, then fails: its output stops after some bytes and it exits 1.
case " $* " in *" --encrypt "*) ;; *) exec {age} "$@" ;; esac
{age} "$@" | head -c 200000
exit 1
"""


def _age_processes(parent):
    """The pids of the age programs (encrypting) among ``parent``'s children."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and os.path.basename(argv[0]) == b"age" and b"--encrypt" in argv:
            found.append(int(pid))
    return found


@pytest.mark.parametrize("death", ["exits 1 after some bytes", "killed mid-stream"])
def test_an_age_stage_that_dies_mid_dump_fails_the_backup_and_prunes_nothing(tmp_path, pg, big_db, death):
    """A set that no key could decrypt must never count as complete: when age fails (or is killed)
    while the dump streams through it, the run exits non-zero, no file takes its final name, no
    manifest is written, and two complete sets past retention stay byte for byte."""
    import shutil

    key = tmp_path / "k.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout.strip()
    backups = tmp_path / "b"
    before = old_sets(str(backups), big_db)
    config = write_config(tmp_path / "c.conf", pg, big_db, backups, compression="zstd", keep_last=0, retention_days=0, encrypt_recipients=recipient)
    env = cli_env()
    if death == "exits 1 after some bytes":
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "age").write_text(AGE_DYING.format(age=shutil.which("age")))
        (bindir / "age").chmod(0o755)
        env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    proc = subprocess.Popen([sys.executable, "-m", "pgdrill.cli", "--config", config], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if death == "killed mid-stream":
        wait_for_partial(str(backups))
        (age,) = _age_processes(proc.pid) or [None]
        assert age, "the dump streams through an age process"
        os.kill(age, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, (out, err)
    assert "age" in err and "backup failed" in err and "Traceback" not in err, err
    assert "nothing was kept from this run" in err, err  # the fix fits what happened (not only "install age")
    names = os.listdir(backups)
    assert sorted(n for n in names if not n.startswith(".")) == sorted(before), names  # no final name, no manifest
    assert snapshot(str(backups), before) == before
