"""Disaster recovery, proven with real parts: encrypted sets pushed by the backup run itself to a real
S3 server (SeaweedFS on loopback) with Object Lock; then the source cluster, its backups and its
media are destroyed, and a new host with only the remote's address and the escrow key brings the
database (proved against the fingerprint taken on the source) and the media (byte for byte) back.
And the ways off-host copies go wrong: the server down, a push cut short, a bit flipped in the
bucket, locked objects under remote retention."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers import run_cli, tree_hash, write_config
from pgdrill.storage.backends import open_remote
from pgdrill_lab.cluster import Cluster
from pgdrill_lab.sample import create_sample


def make_media(root) -> str:
    os.makedirs(os.path.join(root, "uploads", "2026"), exist_ok=True)
    with open(os.path.join(root, "uploads", "2026", "invoice.pdf"), "wb") as handle:
        handle.write(os.urandom(300_000))
    with open(os.path.join(root, "readme.txt"), "w") as handle:
        handle.write("media of the shop\n")
    os.chmod(os.path.join(root, "readme.txt"), 0o640)
    os.symlink("uploads/2026/invoice.pdf", os.path.join(root, "latest.pdf"))
    return str(root)


def remote_settings(aws_env, bucket, **extra):
    return {"remote": f"s3://{bucket}/pgdrill", "remote_endpoint_url": aws_env.endpoint_url, "remote_region": "us-east-1", **extra}


def test_source_destroyed_database_and_media_come_back_from_the_remote(pg, keys, aws_env, locked_bucket, tmp_path):
    host = tmp_path / "source-host"
    host.mkdir()
    media = make_media(host / "media")
    source = Cluster(name="dr-source").start()
    try:
        create_sample(source, "shop", scale=400)
        source.psql("CREATE ROLE auditor NOLOGIN; GRANT SELECT ON public.invoices TO auditor", "shop")
        config = write_config(
            host / "pgdrill.conf",
            source,
            "shop",
            host / "backups",
            media_root=media,
            encrypt_recipients=f"{keys['drill'][1]} {keys['escrow'][1]}",
            **remote_settings(aws_env, locked_bucket, remote_object_lock_days=1, remote_object_lock_mode="compliance"),
        )
        done = run_cli("--config", config, "--db", "--media")
        assert "pushed shop_" in done.stdout and "manifest last" in done.stdout
        listing = run_cli("--config", config, "list").stdout
        assert listing.splitlines()[1].split()[-2:] == ["REMOTE", "PIN"] and listing.splitlines()[2].split()[-1] == "complete"
        manifest = next(name for name in os.listdir(host / "backups") if "_manifest_" in name)
        with open(host / "backups" / manifest) as handle:
            fingerprint = json.load(handle)["fingerprint"]
        assert "auditor=r/postgres" in fingerprint["objects"]["table public.invoices"]["acl"]
        media_before = tree_hash(media)
    finally:
        source.destroy()  # the cluster, its data directory: gone
    shutil.rmtree(host)  # the backups, the media, the config: gone

    # A new host: the remote's address and the escrow key, nothing else of the old one.
    new = tmp_path / "new-host"
    new.mkdir()
    config = write_config(
        new / "pgdrill.conf", pg, "postgres", new / "backups", prefix="shop", encrypt_identity_file=keys["escrow"][0], **remote_settings(aws_env, locked_bucket)
    )
    remote_list = run_cli("--config", config, "list", "--remote").stdout
    assert "complete   encrypted" in remote_list, remote_list
    proof = run_cli("--config", config, "verify", "--remote", "--restore").stdout
    objects = len(fingerprint["objects"])
    assert f"{objects} objects match the backup's fingerprint" in proof and "FAILED" not in proof, proof
    assert proof.count("remote checksum") == 3  # dump, globals and media, each downloaded and hashed
    pulled = run_cli("--config", config, "pull").stdout
    assert "3 downloaded" in pulled
    assert os.listdir(new / "backups")  # the pulled set is a local set like any other
    assert "FAILED" not in run_cli("--config", config, "verify", "--restore").stdout
    run_cli("--config", config, "restore-media", "--to", str(new / "media"))
    assert tree_hash(str(new / "media")) == media_before


def test_server_down_fails_the_run_keeps_the_set_and_the_next_run_uploads_what_is_owed(backup_env, aws_env, bucket):
    backup_env.rewrite(remote=f"s3://{bucket}/pgdrill", remote_endpoint_url="http://127.0.0.1:9", remote_region="us-east-1")
    failed = backup_env.run(check=1)
    assert "is complete on this host, but" in failed.stderr and "cannot reach the object storage" in failed.stderr
    assert "the next backup run retries the upload" in failed.stderr
    first = [name for name in backup_env.files() if "_manifest_" in name]
    assert len(first) == 1
    backup_env.rewrite(**remote_settings(aws_env, bucket))
    assert backup_env.run("list").stdout.splitlines()[2].split()[-1] == "absent"
    done = backup_env.run()
    assert done.stdout.count("pushed ") == 2  # the set the failed run owed, then this run's
    rows = backup_env.run("list").stdout.splitlines()[2:]
    assert [row.split()[-1] for row in rows] == ["complete", "complete"]


def test_a_push_cut_short_never_counts_and_the_next_push_completes_it(backup_env, aws_env, bucket):
    backup_env.rewrite(**remote_settings(aws_env, bucket, remote_upload="no"))
    backup_env.run()
    dump = next(name for name in backup_env.files() if "_db_" in name)
    remote = open_remote(f"s3://{bucket}/pgdrill", endpoint_url=aws_env.endpoint_url, region="us-east-1")
    remote.put(os.path.join(backup_env.backup_dir, dump))  # what a push killed after its first file leaves
    listing = backup_env.run("list", "--remote").stdout
    assert "incomplete" in listing
    assert "no complete backup set" in backup_env.run("pull", "--to", str(os.path.dirname(backup_env.backup_dir) + "/elsewhere"), check=1).stderr
    assert backup_env.run("list").stdout.splitlines()[2].split()[-1] == "partial"
    pushed = backup_env.run("push").stdout
    assert "uploaded" in pushed and dump not in pushed.split("uploaded", 1)[1]  # resumed: the dump was not sent again
    assert "complete" in backup_env.run("list", "--remote").stdout


def test_a_bit_flipped_in_the_bucket_fails_verify_remote_naming_the_object(backup_env, aws_env, bucket):
    backup_env.rewrite(**remote_settings(aws_env, bucket))
    backup_env.run()
    dump = next(name for name in backup_env.files() if "_db_" in name)
    remote = open_remote(f"s3://{bucket}/pgdrill", endpoint_url=aws_env.endpoint_url, region="us-east-1")
    key = remote.key(dump)
    original = remote.client.get_object(Bucket=bucket, Key=key)
    data = bytearray(original["Body"].read())
    data[len(data) // 3] ^= 0x01
    # The storage rots: same name, same size, the stored sha256 metadata of the original kept.
    remote.client.delete_object(Bucket=bucket, Key=key)
    remote.client.put_object(Bucket=bucket, Key=key, Body=bytes(data), Metadata=original["Metadata"])
    assert "FAILED" not in backup_env.run("verify").stdout  # the local copy is fine
    done = backup_env.run("verify", "--remote", check=1)
    assert f"FAILED  remote checksum {dump}" in done.stdout and "sha256" in done.stdout, done.stdout


def test_remote_retention_reports_locked_objects_as_kept(backup_env, aws_env, locked_bucket):
    backup_env.rewrite(
        keep_last=1,
        retention_days=0,
        prune_after_backup="no",
        **remote_settings(aws_env, locked_bucket, remote_object_lock_days=1, remote_object_lock_mode="compliance"),
    )
    backup_env.run()
    backup_env.run()
    preview = backup_env.run("prune", "--remote", "--dry-run").stdout
    assert "would remove" in preview
    done = backup_env.run("prune", "--remote").stdout
    assert "kept (locked)" in done and "removed " not in done, done
    listing = backup_env.run("list", "--remote").stdout
    assert listing.count("complete") == 2


def test_remote_retention_never_leaves_a_locked_manifest_without_its_files(backup_env, aws_env, locked_bucket):
    """Each object's retain-until is taken when its upload begins, so a set's data can be unlocked
    while its manifest (uploaded last) still is: a prune then keeps the whole set, not its manifest."""
    from datetime import datetime, timedelta, timezone

    backup_env.rewrite(keep_last=1, retention_days=0, prune_after_backup="no", **remote_settings(aws_env, locked_bucket))
    backup_env.run()
    backup_env.run()
    oldest = sorted(name for name in backup_env.files() if "_manifest_" in name)[0]
    remote = open_remote(f"s3://{locked_bucket}/pgdrill", endpoint_url=aws_env.endpoint_url, region="us-east-1")
    key = remote.key(oldest)
    body = remote.client.get_object(Bucket=locked_bucket, Key=key)["Body"].read()
    # The oldest set's manifest locked for a day, its other files not locked at all.
    remote.client.put_object(
        Bucket=locked_bucket,
        Key=key,
        Body=body,
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=datetime.now(timezone.utc) + timedelta(days=1),
    )
    done = backup_env.run("prune", "--remote").stdout
    assert "kept (locked)" in done and "removed " not in done, done
    assert backup_env.run("list", "--remote").stdout.count("complete") == 2


def test_remote_retention_removes_by_the_same_rules_as_local(backup_env, aws_env, bucket):
    backup_env.rewrite(keep_last=1, retention_days=0, prune_after_backup="no", **remote_settings(aws_env, bucket))
    backup_env.run()
    backup_env.run()
    local = backup_env.run("prune", "--dry-run").stdout
    remote = backup_env.run("prune", "--remote").stdout
    strip = lambda text: [line.split(":")[0].split()[-1] for line in text.splitlines()[1:]]  # noqa: E731
    assert strip(local) == strip(remote)
    assert backup_env.run("list", "--remote").stdout.count("complete") == 1
    newest = sorted(name for name in backup_env.files() if "_manifest_" in name)[-1]
    assert newest.replace("_manifest", "").replace(".json", "") in backup_env.run("list", "--remote").stdout


@pytest.mark.parametrize("bad", ["rclone:", "ftp://x/y", "s3://UPPER/x"])
def test_a_remote_that_does_not_parse_refuses_the_configuration(backup_env, bad):
    backup_env.rewrite(remote=bad)
    assert "remote" in backup_env.run(check=2).stderr
    assert backup_env.files() == []


def test_a_pin_travels_to_the_remote_and_keeps_the_set_there_until_unpinned(backup_env, aws_env, bucket):
    backup_env.rewrite(keep_last=1, retention_days=0, prune_after_backup="no", **remote_settings(aws_env, bucket))
    backup_env.run()
    backup_env.run()
    oldest = sorted(name for name in backup_env.files() if "_manifest_" in name)[0].replace("_manifest", "").replace(".json", "")
    pinned = backup_env.run("pin", oldest, "--reason", "before migration 0042")
    assert pinned.returncode == 0
    remote_list = backup_env.run("list", "--remote").stdout
    assert "pinned" in remote_list.split(oldest, 1)[1].splitlines()[0], remote_list
    done = backup_env.run("prune", "--remote").stdout
    assert "removed " not in done and 'pinned: "before migration 0042"' in done, done
    backup_env.run("unpin", oldest)
    assert "pinned" not in backup_env.run("list", "--remote").stdout
    assert f"removed      {oldest}" in backup_env.run("prune", "--remote").stdout


def test_an_encrypted_series_through_rclone_over_sftp(backup_env, sftp, keys, tmp_path):
    """The rclone: path end to end: the backup pushes through rclone to an SFTP server, a new
    directory pulls it back, and verify decrypts and restores it."""
    env = {key: value for key, value in sftp.client_env("LABSFTP").items() if key.startswith("RCLONE_")}
    backup_env.rewrite(encrypt_recipients=keys["drill"][1], remote=f"rclone:LABSFTP:pgdrill/{os.path.basename(str(tmp_path))}")
    assert "pushed " in backup_env.run(env=env).stdout
    assert "complete   encrypted" in backup_env.run("list", "--remote", env=env).stdout
    pulled = tmp_path / "pulled"
    backup_env.run("pull", "--to", str(pulled), env=env)
    backup_env.rewrite(backup_dir=pulled, encrypt_identity_file=keys["drill"][0], remote=f"rclone:LABSFTP:pgdrill/{os.path.basename(str(tmp_path))}")
    done = backup_env.run("verify", "--restore", env=env).stdout
    assert "ok      fingerprint" in done and "FAILED" not in done, done
    assert "FAILED" not in backup_env.run("verify", "--remote", env=env).stdout


def test_turning_encryption_on_never_sends_the_older_plaintext_sets_off_the_host(backup_env, aws_env, bucket, keys):
    backup_env.rewrite(prune_after_backup="no")
    backup_env.run()  # a plaintext set, taken before encryption and the remote were configured
    plain = sorted(name for name in backup_env.files() if "_manifest_" in name)[0].replace("_manifest", "").replace(".json", "")
    backup_env.rewrite(prune_after_backup="no", encrypt_recipients=keys["drill"][1], **remote_settings(aws_env, bucket))
    assert "pushed " in backup_env.run().stdout
    remote = open_remote(f"s3://{bucket}/pgdrill", endpoint_url=aws_env.endpoint_url, region="us-east-1")
    names = [item.name for item in remote.list()]
    assert names and all(name.endswith((".age", ".json")) for name in names), names
    assert backup_env.run("push", "--all").stdout.count(" -> ") == 1  # --all too: the encrypted set only
    refused = backup_env.run("push", plain, check=1)
    assert "taken before encryption was turned on" in refused.stderr
