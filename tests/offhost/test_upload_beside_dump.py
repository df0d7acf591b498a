"""The db file's upload overlaps the dump (issue 21 item 2): with an S3 remote its parts go up while
pg_dump still writes, nothing is visible on the remote until the set is final, a dump killed
mid-way leaves no object and no incomplete upload, and the push after the set sends only the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from helpers import cli_env
from offhost_helpers import s3_remote, s3_settings
from botocore.exceptions import EndpointConnectionError
from pgdrill import operations
from pgdrill.backup import plan_backup
from pgdrill.config import load_configs
from pgdrill.offsite.early import sent_early
from pgdrill.storage.s3 import S3Remote

HOLD_AT_MIB = 12  # pg_dump's output held here: age has written over one 8 MiB part of the file by then


def _held_pg_dump_bin(pg, tmp_path):
    """A pg_bin_dir whose pg_dump is the real one, its output held after HOLD_AT_MIB MiB until a
    "go" file appears (a marker says it is held, a pid file names the real pg_dump to kill), and
    whose pg_dumpall fails while a "fail-globals" file exists (a check that fails after the dump)."""
    bindir = tmp_path / "held-bin"
    bindir.mkdir()
    for name in os.listdir(pg.bindir):
        if name not in ("pg_dump", "pg_dumpall"):
            os.symlink(os.path.join(pg.bindir, name), bindir / name)
    real, held, go, pid = pg.bin("pg_dump"), tmp_path / "held", tmp_path / "go", tmp_path / "pg_dump.pid"
    dumpall = bindir / "pg_dumpall"
    dumpall.write_text(
        f'#!/bin/sh\n[ -e {tmp_path}/fail-globals ] && {{ echo "pg_dumpall: error: failing on purpose" >&2; exit 1; }}\nexec {pg.bin("pg_dumpall")} "$@"\n'
    )
    dumpall.chmod(0o755)
    script = bindir / "pg_dump"
    script.write_text(
        "#!/bin/bash\n"
        f'case "$*" in *--version*|-V*) exec {real} "$@";; esac\n'
        f'fifo={tmp_path}/fifo.$$; mkfifo "$fifo"\n'
        f'{real} "$@" > "$fifo" & dump=$!\n'
        f"echo $dump > {pid}\n"
        f'{{ dd bs=1M count={HOLD_AT_MIB} iflag=fullblock status=none; touch {held}; while [ ! -e {go} ]; do sleep 0.05; done; cat; }} < "$fifo"\n'
        'wait $dump; rc=$?; rm -f "$fifo"; exit $rc\n'
    )
    script.chmod(0o755)
    return str(bindir), held, go, pid


def _wait_for(what, condition, process, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, f"the backup ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.05)


def _parts_sent(remote, name):
    """Parts of the multipart upload of ``name`` the storage holds (0 when there is none)."""
    for found, upload_id, _ in remote._incomplete():
        if found == name:
            return len(remote.client.list_parts(Bucket=remote.url.bucket, Key=remote.key(name), UploadId=upload_id).get("Parts", []))
    return 0


def _held_backup(backup_env, remote, env, held, go):
    """Start a backup, wait until pg_dump is held with a part of its file on the remote, and check
    that nothing of the set is visible yet, here or there. Returns the running backup and the db file's name."""
    for marker in (held, go):
        if marker.exists():
            marker.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "pgdrill.cli", "--config", backup_env.config], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for("held pg_dump", held.exists, process)
    _wait_for("upload started", remote.incomplete_uploads, process)  # the client is made in the upload's thread, while pg_dump runs
    name = remote.incomplete_uploads()[0]
    assert name and "_db_" in name and name.endswith(".dump.age"), remote.incomplete_uploads()
    _wait_for("part uploaded while pg_dump runs", lambda: _parts_sent(remote, name) >= 1, process)
    assert remote.list() == [] and name not in backup_env.files()  # the object and the local file: neither has its name yet
    return process, name


def test_the_dump_goes_up_while_pg_dump_writes_and_nothing_shows_unless_the_set_is_final(backup_env, pg, keys, aws_env, bucket, tmp_path):
    pg.psql("CREATE TABLE blob AS SELECT decode(string_agg(md5(random()::text), ''), 'hex') AS b FROM generate_series(1, 600000)", dbname=backup_env.dbname)
    bindir, held, go, pid = _held_pg_dump_bin(pg, tmp_path)
    # no compression: zstd -T0 holds megabytes in its jobs, and the test wants to know what reached the file
    backup_env.rewrite(pg_bin_dir=bindir, compression="none", encrypt_recipients=keys["drill"][1], **s3_settings(aws_env, bucket))
    remote = s3_remote(aws_env, bucket)
    env = cli_env()

    process, name = _held_backup(backup_env, remote, env, held, go)
    os.kill(int(pid.read_text()), signal.SIGKILL)  # pg_dump dies mid-way
    go.touch()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and "backup failed: pg_dump of" in err and "exited with 137" in err, (out, err)
    assert remote.list() == [] and remote.incomplete_uploads() == []  # the upload was aborted: nothing there, no parts billed
    assert [name for name in backup_env.files() if not name.endswith(".lock")] == []

    (tmp_path / "fail-globals").touch()  # the dump ends whole, the step after it fails: the set never is
    go.touch()
    failed = backup_env.run(env=env, check=1)
    assert "pg_dumpall" in failed.stderr and "failing on purpose" in failed.stderr, failed.stderr
    assert remote.list() == [] and remote.incomplete_uploads() == []
    (tmp_path / "fail-globals").unlink()

    process, name = _held_backup(backup_env, remote, env, held, go)
    go.touch()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    assert "(2 file(s) uploaded, manifest last)" in out, out  # the globals and the manifest: the dump was already there
    local = os.path.join(backup_env.backup_dir, name)
    there = s3_remote(aws_env, bucket).stat(name)
    assert (
        there.size == os.path.getsize(local) and there.sha256 is None and there.hashes["s3-checksum-sha256"].endswith("-3")
    )  # the early upload's, not a push's
    checked = backup_env.run("verify", "--remote", env=env).stdout  # every object downloaded and hashed against the manifest
    assert "complete" in backup_env.run("list", "--remote", env=env).stdout and "FAILED" not in checked, checked


def _held_directory_pg_dump_bin(pg, tmp_path):
    """A pg_bin_dir whose pg_dump is the real one with its --verbose output held after the line that
    says table blob is finished (its file is whole: pgdrill seals and sends it) until a "go" file
    appears; with a "fail" file there then, pg_dump is killed and the dump fails."""
    bindir = tmp_path / "held-dir-bin"
    bindir.mkdir()
    for name in os.listdir(pg.bindir):
        if name != "pg_dump":
            os.symlink(os.path.join(pg.bindir, name), bindir / name)
    real, held, go, fail = pg.bin("pg_dump"), tmp_path / "held", tmp_path / "go", tmp_path / "fail"
    script = bindir / "pg_dump"
    script.write_text(
        "#!/bin/bash\n"
        f'case "$*" in *--version*|-V*) exec {real} "$@";; esac\n'
        f'fifo={tmp_path}/fifo.$$; mkfifo "$fifo"\n'
        f'{real} "$@" 2> "$fifo" & dump=$!\n'
        "while IFS= read -r line; do\n"
        '  printf "%s\\n" "$line" >&2\n'
        '  if [[ $line == *"finished item "*" TABLE DATA blob" ]]; then\n'
        f"    touch {held}; while [ ! -e {go} ]; do sleep 0.05; done\n"
        f'    [ -e {fail} ] && {{ kill -9 $dump; rm -f "$fifo"; echo "pg_dump: error: failing on purpose" >&2; exit 1; }}\n'
        "  fi\n"
        'done < "$fifo"\n'
        'wait $dump; rc=$?; rm -f "$fifo"; exit $rc\n'
    )
    script.chmod(0o755)
    return str(bindir), held, go, fail


def _held_directory_backup(backup_env, remote, held, go):
    """Start a backup of a directory set and wait until pg_dump is held with a sealed member's part on
    the remote; nothing of the set is visible yet, here or there. Returns the running backup and the member's object name."""
    for marker in (held, go):
        if marker.exists():
            marker.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "pgdrill.cli", "--config", backup_env.config], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for("held pg_dump", held.exists, process)
    _wait_for("a member's upload started", lambda: remote.incomplete_uploads() or remote.list(), process)
    assert remote.list() == [], remote.list()  # an object before the set is final: never
    (name,) = remote.incomplete_uploads()  # blob's member, sealed and on its way (the smaller tables go with the push after the set)
    assert ".dir/" in name and name.endswith(".dat.zst.age"), name
    _wait_for("a member's part uploaded while pg_dump runs", lambda: _parts_sent(remote, name) >= 1 or remote.list(), process)
    assert remote.list() == [] and [entry for entry in backup_env.files() if entry.endswith(".dir")] == []  # no object, no final directory
    return process, name


def test_a_directory_sets_members_go_up_as_they_are_sealed_and_show_only_once_the_set_is_final(
    backup_env, pg, keys, aws_env, bucket, tmp_path, monkeypatch, caplog
):
    # blob: 2 MB that zstd cannot shrink, a member large enough to go up beside the dump (early.EARLY_MEMBER_MIN)
    pg.psql("CREATE TABLE blob AS SELECT decode(string_agg(md5(random()::text), ''), 'hex') AS b FROM generate_series(1, 130000)", dbname=backup_env.dbname)
    bindir, held, go, fail = _held_directory_pg_dump_bin(pg, tmp_path)
    backup_env.rewrite(pg_bin_dir=bindir, format="directory", encrypt_recipients=keys["drill"][1], **s3_settings(aws_env, bucket))
    remote = s3_remote(aws_env, bucket)

    # pg_dump fails after a member was sealed and sent; then the run is stopped (SIGTERM) at the same point:
    # each time every member's upload is aborted, and nothing of the set is anywhere.
    for stop in ("fail", "signal"):
        process, _ = _held_directory_backup(backup_env, remote, held, go)
        if stop == "fail":
            fail.touch()
        else:
            process.send_signal(signal.SIGTERM)
        go.touch()
        out, err = process.communicate(timeout=120)
        assert process.returncode != 0, (out, err)
        assert stop == "signal" or ("backup failed: pg_dump of" in err and "failing on purpose" in err), err
        assert remote.list() == [] and remote.incomplete_uploads() == [], (remote.list(), remote.incomplete_uploads())
        assert [name for name in backup_env.files() if not name.endswith(".lock")] == []
        if fail.exists():
            fail.unlink()

    process, name = _held_directory_backup(backup_env, remote, held, go)
    go.touch()
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, (out, err)
    (manifest,) = backup_env.manifests()
    (entry,) = [entry for entry in manifest["files"] if entry.get("format") == "directory"]
    members = sorted(f"{entry['name']}/{member['name']}" for member in entry["members"])
    assert len(members) > 4 and set(members) <= {item.name for item in remote.list()} and remote.incomplete_uploads() == []
    early = [member for member in entry["members"] if sent_early(member["size"])]
    assert [f"{entry['name']}/{member['name']}" for member in early] == [name]  # blob's, the member held above
    # the push sent the globals, the manifest and the small members; not the one that went up beside the dump
    assert f"({2 + len(members) - len(early)} file(s) uploaded, manifest last)" in out, out
    fresh = s3_remote(aws_env, bucket)  # another process: what the storage holds, not what this run proved
    for member in entry["members"]:
        there = fresh.stat(f"{entry['name']}/{member['name']}")
        assert there.size == member["size"], (member, there)
        # the push stores the whole file's sha256; an upload beside the dump cannot (its metadata is fixed at its start): the composite checksum of its parts
        assert there.sha256 == (None if member in early else member["sha256"]), (member, there)
    assert fresh.stat(name).hashes["s3-checksum-sha256"].endswith("-1")
    checked = backup_env.run("verify", "--remote").stdout  # every member downloaded and hashed against the manifest
    assert "complete" in backup_env.run("list", "--remote").stdout and "FAILED" not in checked, checked

    # The storage fails a member's part beside the dump (here, in this process): the backup still
    # succeeds, a warning says so, and the push after the set sends that member whole.
    upload_part = S3Remote._upload_part

    def members_unreachable(remote, key, *args):
        if ".dir/" in key:
            raise EndpointConnectionError(endpoint_url=aws_env.endpoint_url)
        return upload_part(remote, key, *args)

    monkeypatch.setattr(S3Remote, "_upload_part", members_unreachable)
    (config,) = load_configs(backup_env.config, environ={})
    result = operations.backup(config, plan_backup(config, True, False))
    assert "did not end proven (" in caplog.text and "cannot reach the object storage" in caplog.text, caplog.text
    (entry,) = [entry for entry in result["manifest"]["files"] if entry.get("format") == "directory"]
    pushed = {name for pushed_set in result["push"]["sets"] for name in pushed_set["uploaded"]}
    assert {f"{entry['name']}/{member['name']}" for member in entry["members"]} <= pushed  # blob's member too: the push sent it
    assert s3_remote(aws_env, bucket).incomplete_uploads() == []
