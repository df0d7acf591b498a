"""Directory-format sets on the off-host copy: each member is its own object, ``<dir>/<member>``,
proven after its upload, the manifest last; an interrupted push resumes with the members not yet
there; a planted member is refused; a pull brings the directory back whole or not at all; remote
retention removes the whole set. (The layout's rules, pure, are in tests/unit/test_remote.py.)"""

from __future__ import annotations

import json
import os

from pgdrill.offsite_sets import remote_debris
from pgdrill.storage.backends import open_remote
from pgdrill.storage.s3 import SHA256_METADATA


def directory_entry(manifest):
    (entry,) = [entry for entry in manifest["files"] if entry.get("format") == "directory"]
    return entry


def sealed_sha256(entry, name):
    return next(member["sha256"] for member in entry["members"] if member["name"] == name)


def one_result(done):
    (result,) = json.loads(done.stdout)["results"]
    return result


def test_an_encrypted_directory_set_goes_to_s3_member_by_member_resumes_comes_back_and_restores(backup_env, keys, aws_env, bucket, tmp_path):
    url = f"s3://{bucket}/pgdrill"
    remote_settings = {"remote": url, "remote_endpoint_url": aws_env.endpoint_url, "remote_region": "us-east-1"}
    sealed = {"format": "directory", "encrypt_recipients": keys["drill"][1]}
    backup_env.rewrite(**sealed, **remote_settings, remote_upload="no")  # format = directory with a remote is a config pgdrill takes
    backup_env.run()
    (manifest,) = backup_env.manifests()
    entry = directory_entry(manifest)
    members = sorted(member["name"] for member in entry["members"])
    sizes = {member["name"]: member["size"] for member in entry["members"]}
    assert len(members) > 4 and all(name.endswith(".zst.age") for name in members)
    remote = open_remote(url, endpoint_url=aws_env.endpoint_url, region="us-east-1")
    manifest_name = f"{manifest['prefix']}_manifest_{manifest['stamp']}_utc.json"

    # A member planted on the remote with the right name and size but other bytes is refused, never taken on trust.
    planted = tmp_path / "planted"
    planted.write_bytes(b"x" * sizes[members[0]])
    remote.put(str(planted), f"{entry['name']}/{members[0]}")
    done = backup_env.run("push", manifest["set"], check=1)
    assert "right names and sizes but other contents" in done.stderr and f"{entry['name']}/{members[0]}" in done.stderr, done.stderr
    assert remote.delete(f"{entry['name']}/{members[0]}") == "deleted"

    # A push interrupted at a member (its bytes changed on this host, same size) stops there: the members
    # before it are up, proven; that one, the rest and the manifest are not, so the remote set is debris.
    victim = os.path.join(backup_env.backup_dir, entry["name"], members[len(members) // 2])
    original = open(victim, "rb").read()
    with open(victim, "wb") as handle:
        handle.write(bytes(byte ^ 0xFF for byte in original))
    done = backup_env.run("push", manifest["set"], check=1)
    assert "sha256" in done.stderr, done.stderr
    names = [item.name for item in remote.list()]
    assert sorted(name for name in names if name.startswith(entry["name"] + "/")) == [f"{entry['name']}/{name}" for name in members[: len(members) // 2]]
    assert manifest_name not in names and [item.set_id for item in remote_debris(names, manifest["prefix"])] == [manifest["set"]]
    with open(victim, "wb") as handle:
        handle.write(original)
    # The next push uploads only what is not there yet, each member checked, the manifest last.
    pushed = one_result(backup_env.run("push", manifest["set"], "--json"))["sets"][0]
    assert pushed["present"] == [f"{entry['name']}/{name}" for name in members[: len(members) // 2]]
    assert pushed["uploaded"][-1] == manifest_name
    assert [name for name in pushed["uploaded"] if "/" in name] == [f"{entry['name']}/{name}" for name in members[len(members) // 2 :]]
    listing = one_result(backup_env.run("list", "--remote", "--json"))
    (row,) = listing["sets"]
    assert row["state"] == "complete" and row["encrypted"] and entry["name"] in row["files"] and not [name for name in row["files"] if "/" in name], row

    # verify --remote downloads and hashes every member; a pull brings the directory back whole, and it restores.
    done = backup_env.run("verify", "--remote", manifest["set"])
    assert f"all {len(members)} members' sha256 and size" in done.stdout, done.stdout
    pulled = tmp_path / "pulled"
    # A member replaced on the remote by other bytes that claim the manifest's sha256 fails on arrival,
    # naming it; the pull leaves no directory and no partial one.
    key = f"pgdrill/{entry['name']}/{members[-1]}"
    original = remote.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    claimed = {SHA256_METADATA: sealed_sha256(entry, members[-1])}
    remote.client.put_object(Bucket=bucket, Key=key, Body=bytes(byte ^ 0xFF for byte in original), Metadata=claimed)
    done = backup_env.run("pull", manifest["set"], "--to", str(pulled), check=1)
    assert f"{entry['name']}/{members[-1]}" in done.stderr and "sha256" in done.stderr, done.stderr
    assert not [name for name in os.listdir(pulled) if entry["name"] in name], os.listdir(pulled)
    remote.client.put_object(Bucket=bucket, Key=key, Body=original, Metadata=claimed)
    backup_env.run("pull", manifest["set"], "--to", str(pulled))
    assert sorted(os.listdir(pulled / entry["name"])) == members and not [name for name in os.listdir(pulled) if ".part-" in name]
    backups = backup_env.backup_dir
    backup_env.rewrite(backup_dir=pulled, **sealed, encrypt_identity_file=keys["drill"][0])
    done = backup_env.run("verify", "--restore", manifest["set"])
    assert "ok      fingerprint" in done.stdout and "ok      row counts" in done.stdout, done.stdout

    # Remote retention removes the older directory set whole: not one of its objects stays.
    backup_env.rewrite(backup_dir=backups, **sealed, **remote_settings, remote_keep_last=1, remote_retention_days=0)
    backup_env.run()  # the backup run pushes the new set
    pruned = backup_env.run("prune", "--remote")
    names = [item.name for item in remote.list()]
    assert not [name for name in names if manifest["stamp"] in name], (pruned.stdout, names)
    (newer,) = [document for document in backup_env.manifests() if document["set"] != manifest["set"]]
    newer_members = sorted(f"{directory_entry(newer)['name']}/{member['name']}" for member in directory_entry(newer)["members"])
    assert sorted(name for name in names if "/" in name) == newer_members


def test_a_directory_set_through_rclone_is_a_folder_of_members_comes_back_whole_and_goes_whole(backup_env, tmp_path):
    remote_dir = tmp_path / "remote"
    backup_env.rewrite(format="directory", remote=f"rclone::local:{remote_dir}")
    backup_env.run()  # pushed by the backup run
    (manifest,) = backup_env.manifests()
    entry = directory_entry(manifest)
    members = sorted(member["name"] for member in entry["members"])
    assert sorted(os.listdir(remote_dir / entry["name"])) == members
    # A member changed on the remote (same size): the listing's sha256 already names it, and nothing is pulled.
    pulled = tmp_path / "pulled"
    changed = remote_dir / entry["name"] / members[-1]
    original = changed.read_bytes()
    changed.write_bytes(bytes(byte ^ 0xFF for byte in original))
    done = backup_env.run("pull", manifest["set"], "--to", str(pulled), check=1)
    assert f"{entry['name']}/{members[-1]}" in done.stderr and "sha256" in done.stderr, done.stderr
    assert not [name for name in os.listdir(pulled) if entry["name"] in name]  # no directory, no partial one
    changed.write_bytes(original)
    backup_env.run("pull", "--to", str(pulled))
    for name in members:
        assert (pulled / entry["name"] / name).read_bytes() == open(os.path.join(backup_env.backup_dir, entry["name"], name), "rb").read()
    # Remote retention removes the older set whole, its folder with it (rclone backends keep folders of their own).
    backup_env.rewrite(format="directory", remote=f"rclone::local:{remote_dir}", remote_keep_last=1, remote_retention_days=0)
    backup_env.run("--no-prune")  # the new set is pushed
    backup_env.run("prune", "--remote")
    assert not [name for name in os.listdir(remote_dir) if manifest["stamp"] in name], os.listdir(remote_dir)
    (newer,) = [document for document in backup_env.manifests() if document["set"] != manifest["set"]]
    assert sorted(os.listdir(remote_dir / directory_entry(newer)["name"])) == sorted(member["name"] for member in directory_entry(newer)["members"])
