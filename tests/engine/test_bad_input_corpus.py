"""Every command and config key fed a corpus of bad values and hostile files (issue 10): each run
ends with exit 1 or 2 (0 where nothing was wrong for that command), a message naming the fix, no
traceback, and nothing deleted or changed that was not the run's own."""

import hashlib
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from pgdrill import cli
from pgdrill.config import CONNECTION_SETTINGS, SETTINGS

# Keys whose value is free text: only an empty value is wrong for them.
TEXT_KEYS = {
    "backup_dir",
    "prefix",
    "media_root",
    "pg_bin_dir",
    "work_dir",
    "metrics_dir",
    "host",
    "user",
    "dbname",
    "service",
    "passfile",
    "encrypt_identity_file",
    "remote_region",
    "remote_profile",
}
BAD_VALUES = ["", "-1", "1e20", "inf", "nan", "\u0663", "yes please", "99999999999999999999", "0x10", "1_000", "lz4"]


def _bad_values(key):
    return [""] if key in TEXT_KEYS else BAD_VALUES


CASES = [(key, value) for key in sorted(set(SETTINGS) | set(CONNECTION_SETTINGS)) for value in _bad_values(key)]


@pytest.mark.parametrize("command", [[], ["list"], ["prune"], ["verify"]])
def test_every_config_key_refuses_bad_values_at_load(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # main() must not take over pytest's SIGTERM
    backups = tmp_path / "b"
    for key, value in CASES:
        config = tmp_path / "pgdrill.conf"
        config.write_text(f"[pgdrill]\nbackup_dir = {backups}\ndbname = app\n{key} = {value}\n", encoding="utf-8")
        code = cli.main(["--config", str(config), *command])
        out, err = capsys.readouterr()
        assert code == 2, f"{key} = {value!r}: exit {code}\n{out}\n{err}"
        assert "Fix:" in err and key in err and "Traceback" not in err, f"{key} = {value!r}: {err}"
        assert not backups.exists(), f"{key} = {value!r} created the backup directory"


def _snapshot(paths):
    """Type, target and content of each path, to prove nothing foreign was touched."""
    out = {}
    for path in paths:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            out[path] = None
            continue
        if stat.S_ISLNK(info.st_mode):
            out[path] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            out[path] = ("file", hashlib.sha256(open(path, "rb").read()).hexdigest())
        else:
            out[path] = (stat.S_IFMT(info.st_mode),)
    return out


@pytest.mark.parametrize("lock_is_a_link", [False, True])
def test_hostile_files_in_the_backup_directory(backup_env, tmp_path, lock_is_a_link):
    backup_env.run()  # one real set, so verify has work
    directory = backup_env.backup_dir
    prefix = backup_env.dbname
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    stamp = lambda days: (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y%m%d_%H%M%S")  # noqa: E731
    hostile = {
        f"{prefix}_manifest_{stamp(50)}_utc.json": "link",  # a manifest that is a link out
        f"{prefix}_manifest_{stamp(51)}_utc.json": "dir",  # a directory named like a manifest
        f"{prefix}_db_{stamp(52)}_utc.dump": "fifo",  # a FIFO named like a dump
        f"{prefix}_db_{stamp(53)}_utc.dump.zst": "link",
        f"{prefix}_db_{stamp(54)}_utc.sql": "file",  # an operator's file with a wrong extension
        f"{prefix}_db_20261399_000000_utc.dump": "file",  # an impossible stamp
        f"otherapp_db_{stamp(90)}_utc.dump": "file",  # another series
        "notes.txt": "file",
    }
    lock = os.path.join(directory, f".pgdrill-{prefix}.lock")
    if os.path.lexists(lock):
        os.unlink(lock)
    if lock_is_a_link:
        hostile[f".pgdrill-{prefix}.lock"] = "link"
    for name, kind in hostile.items():
        path = os.path.join(directory, name)
        if kind == "link":
            os.symlink(victim, path)
        elif kind == "dir":
            os.mkdir(path)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            with open(path, "w") as handle:
                handle.write("not pgdrill's\n")
            os.utime(path, (0, 0))
    watched = [str(victim)] + [os.path.join(directory, name) for name in hostile]
    before = _snapshot(watched)
    backup_env.rewrite(keep_last=0, retention_days=0, debris_grace_hours=0)
    for command in (["list"], ["prune", "--dry-run"], ["prune"], ["verify"], ["verify", "--all"], ["verify", "--dry-run"], ["--dry-run"], []):
        done = backup_env.run(*command, check=None)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        if lock_is_a_link and command and command[0] in ("prune", "verify") and "--dry-run" not in command:
            assert done.returncode == 1 and "lock file" in done.stderr and "Fix:" in done.stderr, (command, done.stderr)
        elif done.returncode != 0:
            assert done.returncode in (1, 2) and "Fix:" in done.stderr, (command, done.returncode, done.stderr)
        assert _snapshot(watched) == before, command
    assert victim.read_text() == "precious\n"
