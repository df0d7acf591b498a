"""Off-host copies on a real S3-compatible server (SeaweedFS on loopback): round trips with the
whole-file sha256, written-once objects, Object Lock, damaged copies and every failure by name."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time

import pytest

from helpers import fake_set
from pgdrill.errors import PgdrillError
from pgdrill.fsio import sha256_of
from pgdrill.offsite_sets import plan_upload, remote_debris, remote_set_problems, remote_sets, upload_order
from pgdrill.storage import ABSENT, DELETED, LOCKED, LockSettings
from pgdrill.storage.backends import open_remote
from pgdrill.storage.s3_parts import MIB, PARTS_IN_FLIGHT, UploadPool
from pgdrill_lab.s3server import S3Server

NAME = "shop_db_20261127_021500_utc.dump.zst"


def random_file(directory, name=NAME, size=20 * 1024 * 1024 + 12345):
    path = os.path.join(str(directory), name)
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))
    return path


def remote_for(server, bucket, prefix="pgdrill/shop"):
    return open_remote(f"s3://{bucket}/{prefix}", endpoint_url=server.endpoint_url, region="us-east-1")


def test_multipart_round_trip_keeps_the_whole_file_sha256(aws_env, bucket, tmp_path):
    path = random_file(tmp_path)
    sha, size = sha256_of(path)
    remote = remote_for(aws_env, bucket)
    stored = remote.put(path, sha256=sha)
    assert (stored.name, stored.size, stored.sha256) == (NAME, size, sha)
    assert stored.hashes["s3-checksum-sha256"].endswith("-3")  # 3 parts of 8 MiB: the server's checksum is composite
    head = aws_env.client().head_object(Bucket=bucket, Key=f"pgdrill/shop/{NAME}")
    assert head["Metadata"] == {"sha256": sha} and head["ContentLength"] == size
    out = tmp_path / "pulled"
    out.mkdir()
    pulled = remote.get(NAME, str(out), expected_sha256=sha, expected_size=size)
    assert sha256_of(pulled) == (sha, size) and oct(os.stat(pulled).st_mode & 0o777) == "0o600"
    assert os.listdir(out) == [NAME]


def test_a_small_file_goes_in_one_request_checked_by_the_server(aws_env, bucket, tmp_path):
    path = random_file(tmp_path, "shop_manifest_20261127_021500_utc.json", 3000)
    stored = remote_for(aws_env, bucket).put(path)
    digest = hashlib.sha256(open(path, "rb").read()).digest()
    assert stored.sha256 == digest.hex() and stored.hashes["s3-checksum-sha256"] == base64.b64encode(digest).decode()


def test_a_part_that_fails_while_others_are_in_flight_leaves_no_object_and_no_upload(aws_env, bucket, tmp_path):
    """Parts go up two at a time: one failing abandons the whole upload (aborted: no object, no parts
    left billed), and the error names the storage."""
    from botocore.exceptions import EndpointConnectionError

    path = random_file(tmp_path)
    remote = remote_for(aws_env, bucket)
    upload_part = remote.client.upload_part
    sent = []

    def second_part_fails(**kwargs):
        if kwargs["PartNumber"] == 2:
            raise EndpointConnectionError(endpoint_url=aws_env.endpoint_url)
        sent.append(kwargs["PartNumber"])
        return upload_part(**kwargs)

    remote.client.upload_part = second_part_fails
    with pytest.raises(PgdrillError) as caught:
        remote.put(path)
    assert "cannot reach the object storage" in caught.value.problem and 1 in sent, (caught.value.problem, sent)
    remote.client.upload_part = upload_part
    assert remote.stat(NAME) is None and remote.list() == [] and remote.incomplete_uploads() == []


def test_put_never_overwrites(aws_env, bucket, tmp_path):
    remote = remote_for(aws_env, bucket)
    first = remote.put(random_file(tmp_path, size=1000))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(PgdrillError, match="already exists; pgdrill writes every remote object once"):
        remote.put(random_file(other, size=2000))
    assert remote.stat(NAME) == first


def test_an_upload_whose_bytes_do_not_match_the_given_sha256_leaves_no_object(aws_env, bucket, tmp_path):
    remote = remote_for(aws_env, bucket)
    for size in (1000, 9 * 1024 * 1024):  # one request, and multipart
        path = random_file(tmp_path, size=size)
        with pytest.raises(PgdrillError, match="the sha256"):
            remote.put(path, sha256="0" * 64)
        assert remote.stat(NAME) is None
    assert not aws_env.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_list_gives_names_sizes_and_stored_sha256(aws_env, bucket, tmp_path):
    remote = remote_for(aws_env, bucket)
    a = remote.put(random_file(tmp_path, "shop_db_20261127_021500_utc.dump", 100))
    b = remote.put(random_file(tmp_path, "shop_globals_20261127_021500_utc.sql", 200))
    client = aws_env.client()
    client.put_object(Bucket=bucket, Key="pgdrill/shop/deeper/x_db_20261127_021500_utc.dump", Body=b"x")  # not directly under the prefix
    client.put_object(Bucket=bucket, Key="pgdrill/shopping/y", Body=b"y")  # a sibling prefix
    assert [(o.name, o.size, o.sha256) for o in remote.list()] == [(a.name, 100, None), (b.name, 200, None)]
    assert remote.list(with_sha256=True) == [a, b]
    assert remote_for(aws_env, bucket, "pgdrill/empty").list() == []


def test_delete_removes_the_object(aws_env, bucket, tmp_path):
    remote = remote_for(aws_env, bucket)
    remote.put(random_file(tmp_path, size=500))
    assert remote.delete(NAME) == DELETED
    assert remote.stat(NAME) is None and remote.list() == []
    assert remote.delete(NAME) == ABSENT


@pytest.mark.parametrize("mode", ["COMPLIANCE", "GOVERNANCE"])
def test_a_locked_object_is_kept_not_an_error(aws_env, locked_bucket, tmp_path, mode):
    remote = remote_for(aws_env, locked_bucket)
    stored = remote.put(random_file(tmp_path, size=4000), lock=LockSettings(mode, 1))
    retention = aws_env.client().get_object_retention(Bucket=locked_bucket, Key=f"pgdrill/shop/{NAME}")["Retention"]
    assert retention["Mode"] == mode
    assert remote.delete(NAME) == LOCKED
    assert remote.stat(NAME) == stored  # still there, not even hidden behind a delete marker
    unlocked = random_file(tmp_path, "shop_globals_20261127_021500_utc.sql", 100)
    remote.put(unlocked)
    assert remote.delete(os.path.basename(unlocked)) == DELETED  # the same bucket, no retention on this one


def test_get_refuses_a_body_that_does_not_match_its_stored_sha256(aws_env, bucket, tmp_path):
    """A damaged copy: written behind pgdrill's back with a sha256 that does not match its body."""
    body = os.urandom(5000)
    aws_env.client().put_object(Bucket=bucket, Key=f"pgdrill/shop/{NAME}", Body=body, Metadata={"sha256": hashlib.sha256(body[:-1] + b"!").hexdigest()})
    out = tmp_path / "pulled"
    out.mkdir()
    with pytest.raises(PgdrillError) as caught:
        remote_for(aws_env, bucket).get(NAME, str(out))
    assert f"s3://{bucket}/pgdrill/shop/{NAME}" in caught.value.problem and "stored with the object" in caught.value.problem
    assert os.listdir(out) == []


def test_get_compares_with_the_manifest(aws_env, bucket, tmp_path):
    remote = remote_for(aws_env, bucket)
    path = random_file(tmp_path, size=3000)
    remote.put(path)
    out = tmp_path / "pulled"
    out.mkdir()
    with pytest.raises(PgdrillError, match=r"\(the manifest\)"):
        remote.get(NAME, str(out), expected_sha256="f" * 64)
    with pytest.raises(PgdrillError, match=r"\(the manifest\)"):
        remote.get(NAME, str(out), expected_size=2999)
    assert os.listdir(out) == []
    with pytest.raises(PgdrillError, match="does not exist"):
        remote.get("shop_db_20261127_021501_utc.dump", str(out))


def test_a_set_uploaded_manifest_last_and_an_interrupted_push_resumed(aws_env, bucket, tmp_path):
    local = tmp_path / "backups"
    fake_set(str(local), "shop", "20261127_021500", payload=os.urandom(2000))
    (local / "shop_globals_20261127_021500_utc.sql").write_bytes(b"-- roles\n")
    sizes = {name: os.path.getsize(local / name) for name in os.listdir(local)}
    remote = remote_for(aws_env, bucket)
    order = upload_order(sizes)
    assert order[-1] == "shop_manifest_20261127_021500_utc.json"
    remote.put(str(local / order[0]))  # the push dies after its first file
    names = [o.name for o in remote.list()]
    assert [s.set_id for s in remote_debris(names, "shop")] == ["shop_20261127_021500_utc"]
    plan = plan_upload(sizes, {o.name: o for o in remote.list()})
    assert plan.present == order[:1] and plan.upload == order[1:]
    for name in plan.upload:
        remote.put(str(local / name))
    (complete,) = remote_sets([o.name for o in remote.list()], "shop")
    assert complete.complete and len(complete.files) == 3
    manifest = json.loads((local / complete.manifest).read_text())
    assert remote_set_problems(manifest["files"], {o.name: o for o in remote.list(with_sha256=True)}, remote.text) == []


def test_credentials_from_a_shared_credentials_file_and_profile(aws_env, bucket, tmp_path, monkeypatch):
    remote_for(aws_env, bucket).put(random_file(tmp_path, size=10))
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[pgdrill-push]\naws_access_key_id = {aws_env.access_key}\naws_secret_access_key = {aws_env.secret_key}\n")
    credentials.chmod(0o600)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    remote = open_remote(f"s3://{bucket}/pgdrill/shop", endpoint_url=aws_env.endpoint_url, region="us-east-1", profile="pgdrill-push")
    assert [o.name for o in remote.list()] == [NAME]
    with pytest.raises(PgdrillError) as caught:
        open_remote(f"s3://{bucket}/pgdrill/shop", endpoint_url=aws_env.endpoint_url, profile="nobody").list()
    assert "nobody" in caught.value.problem and "remote_profile" in caught.value.fix
    with pytest.raises(PgdrillError) as caught:
        open_remote(f"s3://{bucket}/pgdrill/shop", endpoint_url=aws_env.endpoint_url, region="us-east-1").list()
    assert "no S3 credentials were found" in caught.value.problem and "AWS_SHARED_CREDENTIALS_FILE" in caught.value.fix


def test_refused_credentials_and_a_missing_bucket_are_named(aws_env, bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + aws_env.secret_key[:4])
    with pytest.raises(PgdrillError) as caught:
        remote_for(aws_env, bucket).list()
    assert "refused the credentials" in caught.value.problem and "not-the-secret" not in caught.value.message
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_env.secret_key)
    for action in (lambda r: r.list(), lambda r: r.stat(NAME), lambda r: r.check()):
        with pytest.raises(PgdrillError) as caught:
            action(remote_for(aws_env, "pgdrill-no-such-bucket"))
        assert "bucket 'pgdrill-no-such-bucket' does not exist" in caught.value.problem


def test_a_server_that_went_down_is_a_clear_error(aws_env, tmp_path, monkeypatch):
    with S3Server(name="tests-s3-down") as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.create_bucket("pgdrill-down")
        remote = remote_for(server, "pgdrill-down")
        remote.put(random_file(tmp_path, size=100))
        server.stop()
        for action in (lambda: remote.list(), lambda: remote.put(random_file(tmp_path, "shop_globals_20261127_021500_utc.sql", 10))):
            with pytest.raises(PgdrillError) as caught:
                action()
            assert f"cannot reach the object storage at {server.endpoint_url}" in caught.value.problem
            assert "local backups are untouched" in caught.value.fix


KILLED_PUSH = """
import os, sys, time
from pgdrill.storage.backends import open_remote
remote = open_remote(sys.argv[1], endpoint_url=sys.argv[2], region="us-east-1")
upload_part = remote.client.upload_part
def first_part_then_hang(**kwargs):
    answer = upload_part(**kwargs)
    print("part", kwargs["PartNumber"], flush=True)
    time.sleep(120)  # killed here, between parts
    return answer
remote.client.upload_part = first_part_then_hang
remote.put(sys.argv[3])
"""


def test_a_push_killed_mid_file_leaves_no_object_and_the_next_one_completes(aws_env, bucket, tmp_path):
    import subprocess
    import sys

    path = random_file(tmp_path)
    url = f"s3://{bucket}/pgdrill/shop"
    child = subprocess.Popen([sys.executable, "-c", KILLED_PUSH, url, aws_env.endpoint_url, path], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() in ("part 1", "part 2")  # two parts go up at once: either may finish first
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait()
    remote = remote_for(aws_env, bucket)
    assert remote.stat(NAME) is None and remote.list() == []
    assert remote.incomplete_uploads() == [NAME]
    assert remote.abort_incomplete_uploads() == 1 and remote.incomplete_uploads() == []
    assert remote.put(path).sha256 == sha256_of(path)[0]


def test_the_members_uploaded_beside_the_dump_share_two_parts_in_flight_and_follow_their_directorys_rename(aws_env, locked_bucket, tmp_path):
    """A directory dump's sealed members (issue 21 item 2) go up through one UploadPool: never more than
    PARTS_IN_FLIGHT parts on their way across all of them, each read through the partial directory's fd
    (so the directory's rename to its final name does not lose them), no object before each is
    finished, each stored with the series' Object Lock retention."""
    remote = remote_for(aws_env, locked_bucket)
    folder = "shop_db_20261127_021500_utc.dir"
    partial = tmp_path / f".{folder}.part-1"
    partial.mkdir()
    files = {name: random_file(partial, name, size) for name, size in (("1.dat", 17 * MIB + 5), ("2.dat", 9 * MIB), ("3.dat", 1000), ("toc.dat", 2000))}
    upload_part, guard, on_way, most = remote.client.upload_part, threading.Lock(), [0], [0]

    def counted(**kwargs):
        with guard:
            on_way[0] += 1
            most[0] = max(most[0], on_way[0])
        try:
            time.sleep(0.05)  # each part stays on its way a while: the others would pile up beside it
            return upload_part(**kwargs)
        finally:
            with guard:
                on_way[0] -= 1

    remote.client.upload_part = counted
    pool, dir_fd = UploadPool(), os.open(partial, os.O_RDONLY)
    try:
        uploads = {}
        for name, path in files.items():
            uploads[f"{folder}/{name}"] = remote.upload_while_written(name, f"{folder}/{name}", LockSettings("GOVERNANCE", 1), pool, dir_fd)
            uploads[f"{folder}/{name}"].ended(*reversed(sha256_of(path)))
        os.rename(partial, tmp_path / folder)
        assert remote.list() == []
        for name, upload in uploads.items():
            stored = remote.finish_while_written(upload, name)
            assert (stored.sha256, stored.size) == sha256_of(os.path.join(tmp_path, name))
    finally:
        os.close(dir_fd)
        remote.client.upload_part = upload_part
    assert 1 <= most[0] <= PARTS_IN_FLIGHT, most[0]
    assert sorted(item.name for item in remote.list()) == sorted(uploads) and remote.incomplete_uploads() == []
    for name in uploads:
        assert aws_env.client().get_object_retention(Bucket=locked_bucket, Key=f"pgdrill/shop/{name}")["Retention"]["Mode"] == "GOVERNANCE"


def test_an_upload_beside_its_writer_exists_only_once_its_bytes_are_the_files(aws_env, bucket, tmp_path):
    """The db file's upload beside the dump (issue 21 item 2): parts go up as the file grows; bytes
    that do not hash to the file's sha256 leave no object and no upload; the object that does appear
    carries the storage's composite SHA256, and this remote knows it as the file."""
    path = random_file(tmp_path, size=9 * 1024 * 1024 + 7)
    sha, size = sha256_of(path)
    remote = remote_for(aws_env, bucket)
    for given in ("0" * 64, sha):
        upload = remote.upload_while_written(path, NAME)
        upload.grew(size)
        upload.ended(size, given)
        if given != sha:
            with pytest.raises(PgdrillError, match="what was uploaded beside the dump"):
                remote.finish_while_written(upload, NAME)
            assert remote.stat(NAME) is None and remote.incomplete_uploads() == []
    stored = remote.finish_while_written(upload, NAME)
    assert (stored.size, stored.sha256) == (size, sha) and remote.stat(NAME) == stored
    assert stored.hashes["s3-checksum-sha256"].endswith("-2")
    elsewhere = remote_for(aws_env, bucket).stat(NAME)  # another process: no whole-file sha256 stored, the composite one
    assert elsewhere.sha256 is None and elsewhere.hashes["s3-checksum-sha256"] == stored.hashes["s3-checksum-sha256"]
    out = tmp_path / "pulled"
    out.mkdir()
    assert sha256_of(remote_for(aws_env, bucket).get(NAME, str(out), expected_sha256=sha)) == (sha, size)
