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


def test_media_only_runs_never_prune_the_last_database_dump(backup_env, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.txt").write_text("a")
    backup_env.rewrite(keep_last=1, retention_days=0, media_root=media)
    backup_env.run()  # a database set
    for _ in range(2):
        backup_env.run("--media")  # then media only (the database backups "fail" from here on)
    kinds = [sorted(row["kinds"]) for row in _listing(backup_env).values()]
    assert ["db", "globals"] in kinds and ["media"] in kinds
    done = backup_env.run("prune")
    assert "newest complete set holding a database dump" in done.stdout
    assert any("db" in row["kinds"] for row in _listing(backup_env).values())


def test_sets_from_the_future_never_evict_new_sets_nor_pass_for_fresh(backup_env, run_module):
    now = datetime.now(timezone.utc)
    prefix = backup_env.dbname
    ahead = now + timedelta(days=365)
    fake_set(backup_env.backup_dir, prefix, _stamp(ahead), started=_iso(ahead))
    backup_env.rewrite(keep_last=1, retention_days=0)
    for _ in range(2):
        result = json.loads(backup_env.run("--json").stdout)["results"][0]
        assert result["set"] not in [entry["set"] for entry in result["prune"]["removed"]]
        assert result["set"] in [row["set"] for row in _listing(backup_env).values() if row["state"] == "complete"]
    rows = _listing(backup_env)
    future = rows[f"{prefix}_{_stamp(ahead)}_utc"]
    assert future["state"] == "future" and future["age_seconds"] is None and future["ahead_seconds"] > 364 * 86400
    assert all(row["age_seconds"] is None or row["age_seconds"] >= 0 for row in rows.values())
    listed = backup_env.run("list")
    assert "future" in listed.stdout and "clock" in listed.stderr
    verified = backup_env.run("verify")
    assert _stamp(ahead) not in verified.stdout  # the newest real set, not the future one
    args = {"config": backup_env.config}
    info, failed, _ = run_module("pgdrill_info", args)
    assert not failed and info["newest"]["set"] != future["set"] and info["newest_age_seconds"] >= 0
    assert info["future_count"] == 1 and "clock" in info["clock_problem"]
    # Only the future set left: skip_if_newer_than must not skip, the newest is none.
    for name in os.listdir(backup_env.backup_dir):
        if _stamp(ahead) not in name and not name.startswith("."):
            os.unlink(os.path.join(backup_env.backup_dir, name))
    info, failed, _ = run_module("pgdrill_info", args)
    assert info["newest"] is None and info["newest_age_seconds"] is None
    from pgdrill.config import load_configs
    from pgdrill.series import Series, recent_set

    (config,) = load_configs(backup_env.config, environ={})
    assert recent_set(Series(config), 86400) is None  # what pgdrill_dump skip_if_newer_than asks


def test_existing_shared_or_linked_directories_are_refused_never_chmoded(backup_env, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    done = backup_env.run("--out-dir", str(shared), check=1)
    assert "writable by every user" in done.stderr and "Fix:" in done.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777 and os.listdir(shared) == []
    real = tmp_path / "real"
    real.mkdir()
    real.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(real)
    done = backup_env.run("--out-dir", str(link), check=1)
    assert "symbolic link" in done.stderr and str(real) in done.stderr
    assert stat.S_IMODE(real.stat().st_mode) == 0o755 and os.listdir(real) == []
    backup_env.run("--out-dir", str(real))  # an existing directory of this user is used as it is
    assert stat.S_IMODE(real.stat().st_mode) == 0o755


def test_parents_created_under_umask_000_are_not_world_writable(tmp_path):
    from pgdrill.fsio import ensure_private_dir

    old = os.umask(0)
    try:
        ensure_private_dir(str(tmp_path / "a" / "b" / "backups"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "a" / "b" / "backups").stat().st_mode) == 0o700


def _as_nobody(argv):
    """Run pgdrill-backup's main() as the unprivileged user 'nobody' (see _in_child_as_nobody)."""
    from pgdrill import cli

    return _in_child_as_nobody(lambda: cli.main(argv))


def _in_child_as_nobody(work):
    """Run ``work()`` as the user 'nobody' in a forked child; returns (exit code, stdout, stderr).
    The interpreter lives where nobody cannot read it, so the child is forked with the engine loaded."""
    import logging
    import sys
    import tempfile
    import traceback

    from datetime import datetime

    datetime.strptime("2026", "%Y")  # loads _strptime now: the child could not read it from the interpreter's directory
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sys.stdout = os.fdopen(1, "w")
            sys.stderr = os.fdopen(2, "w")
            logging.getLogger().handlers.clear()  # pytest's capture handlers: main() logs to stderr
            code = work()
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - the test asserts on stderr
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 70)
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    return os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode()


def test_files_root_left_behind_give_the_backup_user_a_message_not_a_traceback():
    import shutil
    import tempfile

    base = tempfile.mkdtemp(prefix="pgdrill-nobody-")
    try:
        os.chmod(base, 0o755)
        backups = os.path.join(base, "backups")
        os.mkdir(backups, 0o700)
        os.chown(backups, NOBODY, NOBODY)
        config = os.path.join(base, "pgdrill.conf")
        with open(config, "w") as handle:
            handle.write(f"[pgdrill]\nbackup_dir = {backups}\nprefix = app\nkeep_last = 0\nretention_days = 0\n")
        os.chmod(config, 0o644)
        old = datetime.now(timezone.utc) - timedelta(days=40)
        new = datetime.now(timezone.utc) - timedelta(days=1)
        fake_set(backups, "app", _stamp(old), started=_iso(old))
        fake_set(backups, "app", _stamp(new), started=_iso(new))
        for name in os.listdir(backups):
            os.chown(os.path.join(backups, name), NOBODY, NOBODY)
        # What an earlier root run left: a root-owned lock.
        lock = os.path.join(backups, ".pgdrill-app.lock")
        with open(lock, "w"):
            pass
        os.chmod(lock, 0o600)
        code, out, err = _as_nobody(["--config", config, "prune"])
        assert code == 1 and "Traceback" not in err and "lock file" in err and "Fix:" in err, err
        os.unlink(lock)
        # A root-owned manifest the backup user cannot read: reported, and nothing is removed.
        manifest = os.path.join(backups, f"app_manifest_{_stamp(old)}_utc.json")
        os.chown(manifest, 0, 0)
        os.chmod(manifest, 0o600)
        before = sorted(os.listdir(backups))
        code, out, err = _as_nobody(["--config", config, "list"])
        assert code == 0 and "Traceback" not in err and "damaged" in out, (out, err)
        code, out, err = _as_nobody(["--config", config, "prune"])
        assert code == 0 and "Traceback" not in err, err
        assert [n for n in sorted(os.listdir(backups)) if not n.startswith(".")] == before
    finally:
        shutil.rmtree(base)


def test_inode_exhaustion_is_a_clear_error(backup_env, tmp_path):
    import subprocess

    mount = tmp_path / "few-inodes"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=4,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        backup_env.rewrite(backup_dir=mount)
        done = backup_env.run(check=1)
        assert "Traceback" not in done.stderr and ("inodes" in done.stderr or "disk full" in done.stderr), done.stderr
        assert not [name for name in os.listdir(mount) if not name.startswith(".pgdrill-")]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.parametrize(
    "content",
    [
        "0001-01-01T00:00:00+05:00",  # started_at of year 1 with an offset
        "integer",
        "deep",
        "huge",
        "../x",
        "/etc/hostname",
        "kind",
    ],
)
def test_one_malformed_manifest_marks_only_its_own_set_damaged(backup_env, content):
    now = datetime.now(timezone.utc)
    prefix = backup_env.dbname
    good, bad = now - timedelta(days=2), now - timedelta(days=1)
    fake_set(backup_env.backup_dir, prefix, _stamp(good), started=_iso(good))
    fake_set(backup_env.backup_dir, prefix, _stamp(bad), started=_iso(bad))
    path = os.path.join(backup_env.backup_dir, f"{prefix}_manifest_{_stamp(bad)}_utc.json")
    document = json.load(open(path))
    if content.startswith("0001"):
        document["started_at"] = content
        data = json.dumps(document)
    elif content == "integer":
        data = "12345"
    elif content == "deep":
        data = "[" * 100000 + "]" * 100000
    elif content == "huge":
        data = json.dumps(dict(document, padding="x" * (70 << 20)))
    elif content == "kind":
        document["files"][0]["kind"] = "media"
        data = json.dumps(document)
    else:
        document["files"][0]["name"] = content  # verify must never open it
        data = json.dumps(document)
    with open(path, "w") as handle:
        handle.write(data)
    rows = _listing(backup_env)
    assert rows[f"{prefix}_{_stamp(bad)}_utc"]["state"] == "damaged"
    assert rows[f"{prefix}_{_stamp(good)}_utc"]["state"] == "complete"
    done = backup_env.run("prune")
    assert "Traceback" not in done.stderr and os.path.exists(path)
    done = backup_env.run("verify", f"{prefix}_{_stamp(bad)}_utc", check=1)
    assert "FAILED  manifest" in done.stdout and "Traceback" not in done.stderr
    assert "hostname" not in done.stdout.replace("'/etc/hostname'", "")  # named, never read
    done = backup_env.run("verify", check=None)  # the newest set with a trusted manifest: the good one
    assert _stamp(good) in done.stdout and "Traceback" not in done.stderr


def test_a_signal_after_the_manifest_is_linked_never_removes_the_sets_files(backup_env, monkeypatch):
    from pgdrill import backup as backup_mod
    from pgdrill.config import load_configs

    real_info = backup_mod.log.info

    def info(message, *args):
        if message.startswith("backup set"):
            raise SystemExit(143)  # what SIGTERM does in pgdrill-backup, right after the manifest
        return real_info(message, *args)

    monkeypatch.setattr(backup_mod.log, "info", info)
    (config,) = load_configs(backup_env.config, environ={})
    with pytest.raises(SystemExit):
        backup_mod.BackupRun(config).execute()
    (row,) = _listing(backup_env).values()
    assert row["state"] == "complete"
    backup_env.run("verify")


def _media_members(env):
    import subprocess
    import tarfile
    import io

    (manifest,) = [m for m in env.manifests()]
    name = next(f["name"] for f in manifest["files"] if f["kind"] == "media")
    raw = subprocess.run(["zstd", "-dc", os.path.join(env.backup_dir, name)], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return raw, sorted(member.name for member in archive.getmembers())


def test_media_root_through_a_symlink_extracts_with_gnu_tar(backup_env, tmp_path):
    import subprocess

    real = tmp_path / "real-media"
    (real / "uploads").mkdir(parents=True)
    (real / "uploads" / "a.txt").write_text("a")
    link = tmp_path / "media"
    link.symlink_to(real)
    backup_env.rewrite(media_root=link)
    backup_env.run("--media")
    raw, members = _media_members(backup_env)
    assert "media/uploads/a.txt" in members
    target = tmp_path / "extract"
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=raw, check=True)
    assert (target / "media" / "uploads" / "a.txt").read_text() == "a"


def test_backup_dir_inside_the_media_root_is_never_archived(backup_env, tmp_path):
    media = tmp_path / "media"
    (media / "backups").mkdir(parents=True)
    (media / "backups").chmod(0o700)
    (media / "a.txt").write_text("a")
    via_link = tmp_path / "backups-link"
    via_link.symlink_to(media / "backups")
    backup_env.rewrite(media_root=media, backup_dir=media / "backups")
    backup_env.run("--media")
    backup_env.run("--media")
    for manifest in backup_env.manifests():
        name = next(f["name"] for f in manifest["files"] if f["kind"] == "media")
        import subprocess

        listing = subprocess.run(
            f"zstd -dc {os.path.join(backup_env.backup_dir, name)} | tar -t", shell=True, capture_output=True, text=True, check=True
        ).stdout
        assert "media/a.txt" in listing and "backups/" not in listing, listing
    backup_env.rewrite(media_root=media, backup_dir=media)
    done = backup_env.run("--media", check=1)
    assert "is the media root" in done.stderr and "Fix:" in done.stderr
    done = backup_env.run("--media", "--out-dir", str(via_link), check=1)
    assert "symbolic link" in done.stderr  # a backup_dir that is a link is refused anyway


def test_unreadable_media_subdirectory_fails_naming_it(tmp_path):
    import shutil
    import tempfile

    from pgdrill.errors import PgdrillError
    from pgdrill.media import tar_producer

    base = tempfile.mkdtemp(prefix="pgdrill-media-")
    try:
        os.chmod(base, 0o755)
        secret = os.path.join(base, "private")
        os.mkdir(secret)
        open(os.path.join(secret, "x.txt"), "w").write("x")
        os.chown(base, NOBODY, NOBODY)
        os.chmod(secret, 0o000)

        def work():
            try:
                tar_producer(base)(open(os.devnull, "wb"))
            except PgdrillError as exc:
                print(exc.message)
                return 1
            return 0

        code, out, err = _in_child_as_nobody(work)
        assert code == 1 and "cannot read media directory" in out and secret in out, (out, err)
    finally:
        os.chmod(os.path.join(base, "private"), 0o700)
        shutil.rmtree(base)


def test_a_media_file_that_shrinks_while_archived_fails_naming_it(tmp_path, monkeypatch):
    import tarfile

    from pgdrill.errors import PgdrillError
    from pgdrill.media import tar_producer

    media = tmp_path / "media"
    media.mkdir()
    victim = media / "growing.log"
    victim.write_bytes(b"x" * 100000)
    real = tarfile.TarFile.gettarinfo

    def gettarinfo(self, name=None, *args, **kwargs):
        info = real(self, name, *args, **kwargs)
        if name and name.endswith("growing.log"):
            os.truncate(name, 10)  # an application rotates the file between stat and copy
        return info

    monkeypatch.setattr(tarfile.TarFile, "gettarinfo", gettarinfo)
    with pytest.raises(PgdrillError) as caught:
        tar_producer(str(media))(open(os.devnull, "wb"))
    assert "shrank" in caught.value.message and str(victim) in caught.value.message


def _hold_lock(env, table="invoices"):
    """A session that holds an ACCESS EXCLUSIVE lock on a table, as a stuck migration would."""
    import psycopg

    conn = psycopg.connect(host=env.cluster.host, port=env.cluster.port, user="postgres", passfile=env.cluster.passfile, dbname=env.dbname)
    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return conn


@pytest.mark.parametrize("row_counts", ["yes", "no"])
def test_a_lock_that_never_goes_away_fails_the_dump_naming_it(backup_env, row_counts):
    import time

    backup_env.rewrite(lock_wait_timeout=1, row_counts=row_counts)
    holder = _hold_lock(backup_env)
    try:
        started = time.monotonic()
        done = backup_env.run(check=1)
        assert time.monotonic() - started < 30
    finally:
        holder.close()
    assert "lock_wait_timeout" in done.stderr and "pg_locks" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert [name for name in os.listdir(backup_env.backup_dir) if not name.startswith(".pgdrill-")] == []


def test_max_runtime_stops_a_run_and_cleans_up(backup_env):
    import time

    backup_env.rewrite(lock_wait_timeout=0, max_runtime=2)
    holder = _hold_lock(backup_env)
    try:
        started = time.monotonic()
        done = backup_env.run(check=1)
        assert time.monotonic() - started < 30
    finally:
        holder.close()
    assert "max_runtime (2 s)" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert [name for name in os.listdir(backup_env.backup_dir) if not name.startswith(".pgdrill-")] == []
    backup_env.rewrite(max_runtime=0)
    backup_env.run()  # the series is free again


@pytest.mark.parametrize(
    "args,words",
    [
        (["--wait", "nan"], ["--wait", "from 0"]),
        (["--wait", "inf"], ["--wait"]),
        (["verify", "--jobs", "0"], ["--jobs", "from 1 to 256"]),
        (["--out-dir", ""], ["backup_dir", "non-empty"]),
        (["--no-prune", "prune"], ["--no-prune"]),
        (["verify", "--all", "sample_20261126_021500_utc"], ["--all", "not both"]),
    ],
)
def test_bad_command_lines_exit_2_naming_the_flag(backup_env, args, words):
    done = backup_env.run(*args, check=2)
    assert all(word in done.stderr for word in words) and "Traceback" not in done.stderr, done.stderr
    assert not os.path.exists(backup_env.backup_dir) or _visible(backup_env) == []


def test_no_prune_with_prune_never_prunes(backup_env):
    old = datetime.now(timezone.utc) - timedelta(days=90)
    fake_set(backup_env.backup_dir, backup_env.dbname, _stamp(old), started=_iso(old))
    fake_set(backup_env.backup_dir, backup_env.dbname, _stamp(old + timedelta(days=1)), started=_iso(old + timedelta(days=1)))
    backup_env.rewrite(keep_last=1, retention_days=1)
    before = _visible(backup_env)
    backup_env.run("--no-prune", "prune", check=2)
    assert _visible(backup_env) == before


def test_verify_picks_the_series_by_the_sets_own_prefix(tmp_path, pg, sample_db):
    from helpers import run_cli

    config = tmp_path / "pgdrill.conf"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'b'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
        f"[database app]\ndbname = {sample_db}\nprefix = app\n[database app_db]\ndbname = {sample_db}\nprefix = app_db\n"
    )
    run_cli("--config", str(config), "--database", "app_db")
    (manifest,) = [name for name in os.listdir(tmp_path / "b") if "_manifest_" in name]
    set_id = manifest.replace("_manifest_", "_").replace(".json", "")
    assert set_id.startswith("app_db_")
    done = run_cli("--config", str(config), "verify", set_id)
    assert "FAILED" not in done.stdout and done.stdout.startswith("app_db:"), done.stdout


def test_verify_of_a_path_elsewhere_never_verifies_the_same_named_set_here(backup_env, tmp_path):
    backup_env.run()
    (manifest,) = backup_env.manifests()
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir(mode=0o700)
    done = backup_env.run("verify", str(elsewhere / manifest["files"][0]["name"]), check=1)
    assert "not in this series' backup directory" in done.stderr and "--out-dir" in done.stderr
    backup_env.run("verify", os.path.join(backup_env.backup_dir, manifest["files"][0]["name"]))  # its own directory is fine


def test_verify_dry_run_on_a_read_only_backup_dir(backup_env, tmp_path):
    import subprocess

    backup_env.run()
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", backup_env.backup_dir, str(mount)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mount)], check=True)
        done = backup_env.run("verify", "--dry-run", "--out-dir", str(mount))
        assert "ok      checksum" in done.stdout
        done = backup_env.run("verify", "--out-dir", str(mount), check=1)  # recording needs a writable directory
        assert "Traceback" not in done.stderr and "Fix:" in done.stderr, done.stderr
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_operator_files_and_impossible_stamps_are_left_alone(backup_env):
    prefix = backup_env.dbname
    os.makedirs(backup_env.backup_dir, mode=0o700)
    foreign = [
        f"{prefix}_db_20200101_000000_utc.sql",
        f"{prefix}_media_20200101_000000_utc.json",
        f"{prefix}_db_20261399_000000_utc.dump",
        f"{prefix}_manifest_20261399_000000_utc.json",
    ]
    for name in foreign:
        path = os.path.join(backup_env.backup_dir, name)
        open(path, "w").write("an operator's file")
        os.utime(path, (0, 0))
    backup_env.rewrite(keep_last=0, retention_days=0, debris_grace_hours=0)
    done = backup_env.run("list")
    assert "Traceback" not in done.stderr
    backup_env.run("prune")
    assert all(name in os.listdir(backup_env.backup_dir) for name in foreign)


def test_a_database_named_a_equals_b(backup_env, pg):
    from helpers import write_config

    pg.psql('CREATE DATABASE "a=b" TEMPLATE sample_template')
    try:
        backup_env.config = write_config(os.path.join(os.path.dirname(backup_env.config), "ab.conf"), pg, "a=b", backup_env.backup_dir, prefix="ab")
        backup_env.run()
        (manifest,) = backup_env.manifests()
        assert {f["kind"] for f in manifest["files"]} == {"db", "globals"}
    finally:
        pg.psql('DROP DATABASE IF EXISTS "a=b" WITH (FORCE)')


def test_output_into_a_closed_pipe_is_no_traceback(backup_env):
    import subprocess
    import sys

    from helpers import cli_env

    for day in range(200):
        moment = datetime.now(timezone.utc) - timedelta(days=day + 1)
        fake_set(backup_env.backup_dir, backup_env.dbname, _stamp(moment), started=_iso(moment))
    done = subprocess.run(
        f"{sys.executable} -m pgdrill.cli --config {backup_env.config} list | head -n 1", shell=True, capture_output=True, text=True, env=cli_env()
    )
    assert done.stdout.count("\n") == 1 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_a_server_stopped_mid_dump_is_a_message_not_a_traceback(tmp_path):
    import subprocess
    import sys
    import time

    import psycopg
    from helpers import cli_env, write_config
    from pgdrill_lab.cluster import Cluster

    with Cluster(name="stopped", port=5439) as cluster:
        cluster.psql("CREATE DATABASE app")
        cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g", "app")
        config = write_config(tmp_path / "pgdrill.conf", cluster, "app", tmp_path / "b", lock_wait_timeout=0)
        holder = psycopg.connect(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile, dbname="app")
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # pg_dump and the row count wait here
        run = subprocess.Popen(
            [sys.executable, "-m", "pgdrill.cli", "--config", config], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        # The dump has started: pg_dump's session is connected and waits on the table's lock.
        probe = psycopg.connect(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile, dbname="app", autocommit=True)
        waiting = []
        deadline = time.monotonic() + 60
        while not waiting and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.1)
            waiting = probe.execute(
                "SELECT query FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock' AND query ILIKE 'LOCK TABLE %'"
            ).fetchall()
        sessions = probe.execute("SELECT application_name, wait_event_type, query FROM pg_stat_activity WHERE datname = 'app'").fetchall()
        probe.close()
        assert waiting, f"pg_dump never got to the table's lock (exit {run.poll()}): {sessions}"
        cluster.stop()
        out, err = run.communicate(timeout=60)
        holder.close()
    assert run.returncode == 1 and "Traceback" not in err and "backup failed" in err, err
    assert "pg_dump" in err, err
    assert [name for name in os.listdir(tmp_path / "b") if not name.startswith(".pgdrill-")] == []


def test_the_dry_run_names_the_files_the_run_writes_when_zstd_is_missing(backup_env, tmp_path):
    import shutil

    media = tmp_path / "media"
    media.mkdir()
    (media / "a.txt").write_text("a")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(shutil.which("gzip"), bindir / "gzip")  # gzip, but no zstd anywhere on PATH
    backup_env.rewrite(pg_bin_dir=backup_env.cluster.bindir, media_root=media)
    env = {"PATH": str(bindir)}
    planned = json.loads(backup_env.run("--db", "--media", "--dry-run", "--json", env=env).stdout)["results"][0]["plan"]
    backup_env.run("--db", "--media", env=env)
    (manifest,) = backup_env.manifests()
    from pgdrill.naming import parse_file_name

    def kinds_and_extensions(names):
        return sorted((parsed.kind, parsed.ext) for parsed in map(parse_file_name, names) if parsed.kind != "manifest")

    assert kinds_and_extensions(planned["files"]) == kinds_and_extensions(f["name"] for f in manifest["files"])
    assert ("media", "tar.gz") in kinds_and_extensions(planned["files"])


def test_a_real_backup_taken_while_the_clock_ran_a_year_ahead(backup_env):
    assert __import__("shutil").which("faketime"), "faketime (a Debian package) is installed by ./run"
    import subprocess
    import sys

    from helpers import cli_env

    backup_env.rewrite(keep_last=3, retention_days=0)
    ahead = subprocess.run(
        ["faketime", "-f", "+365d", sys.executable, "-m", "pgdrill.cli", "--config", backup_env.config], env=cli_env(), capture_output=True, text=True
    )
    assert ahead.returncode == 0, ahead.stderr
    (future,) = [row for row in _listing(backup_env).values()]
    assert future["state"] == "future"
    written = []
    for _ in range(2):  # the clock is right again
        result = json.loads(backup_env.run("--json").stdout)["results"][0]
        written.append(result["set"])
    rows = _listing(backup_env)
    assert all(rows[name]["state"] == "complete" for name in written)  # no new set was removed by its own prune
    assert rows[future["set"]]["state"] == "future" and rows[future["set"]]["age_seconds"] is None
    done = backup_env.run("verify")
    assert written[-1] in done.stdout  # the newest real set, not the one from the future
