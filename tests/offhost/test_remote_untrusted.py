"""The remote is untrusted input (issue 18): whatever anyone who can write to the bucket plants there
(a set dated 2099, a junk object with the right name and size, a key ending in a newline) must
neither stop later uploads, nor pass for a good copy, nor crash a command that disaster recovery
needs. Real backups, a real S3 server on loopback, the command in its own process."""

from __future__ import annotations

import json
import os

from offhost_helpers import local_set_ids, s3_remote, s3_settings


def remote_states(backup_env):
    """The REMOTE column of ``list``, by set."""
    return {row["set"]: row["remote"] for row in json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"]}


def plant(aws_env, bucket, name, body, **extra):
    aws_env.client().put_object(Bucket=bucket, Key=f"pgdrill/{name}", Body=body, **extra)


def test_a_set_dated_2099_planted_on_the_remote_stops_no_later_upload(backup_env, aws_env, bucket):
    """R16: every complete local set absent from the remote is owed, whatever the stamps; the planted
    set is named in a warning."""
    backup_env.rewrite(prune_after_backup="no", **s3_settings(aws_env, bucket))
    backup_env.run()
    prefix = backup_env.dbname
    future = f"{prefix}_manifest_20991231_235959_utc.json"
    plant(aws_env, bucket, f"{prefix}_db_20991231_235959_utc.dump", b"PGDMP")
    plant(aws_env, bucket, future, b"{}")
    done = backup_env.run()
    assert "pushed " in done.stdout, done.stdout + done.stderr
    assert "20991231_235959" in done.stderr and "future" in done.stderr, done.stderr
    states = remote_states(backup_env)
    assert sorted(states.values()) == ["complete", "complete"], states


def test_an_older_set_missing_from_the_remote_is_owed(backup_env, aws_env, bucket):
    """R16: a set the remote lacks is owed even when a newer set is complete there (the remote's own
    retention, with the same rules, would keep it)."""
    backup_env.rewrite(prune_after_backup="no", **s3_settings(aws_env, bucket, remote_upload="no"))
    backup_env.run()
    backup_env.run()
    older, newer = local_set_ids(backup_env)
    backup_env.run("push", newer)
    backup_env.rewrite(prune_after_backup="no", **s3_settings(aws_env, bucket))
    backup_env.run()
    states = remote_states(backup_env)
    assert states[older] == "complete" and list(states.values()).count("complete") == 3, states


def test_a_junk_object_of_the_right_size_is_not_taken_for_the_file(backup_env, aws_env, bucket):
    """R14: a planted object with the name and size of the globals file: push refuses the set (its
    manifest is not uploaded) and names the object; nothing calls the set complete."""
    backup_env.rewrite(**s3_settings(aws_env, bucket, remote_upload="no"))
    backup_env.run()
    globals_name = next(name for name in backup_env.files() if "_globals_" in name)
    size = os.path.getsize(os.path.join(backup_env.backup_dir, globals_name))
    plant(aws_env, bucket, globals_name, b"x" * size)
    done = backup_env.run("push", check=1)
    assert globals_name in done.stderr and "sha256" in done.stderr, done.stderr
    remote = s3_remote(aws_env, bucket)
    assert not any("_manifest_" in item.name for item in remote.list())
    assert list(remote_states(backup_env).values()) == ["partial"]


def test_the_same_bytes_put_there_without_pgdrills_sha256_count_as_uploaded(backup_env, aws_env, bucket):
    """R14: an object without a stored sha256 is hashed by download; the right bytes are kept."""
    backup_env.rewrite(**s3_settings(aws_env, bucket, remote_upload="no"))
    backup_env.run()
    globals_name = next(name for name in backup_env.files() if "_globals_" in name)
    with open(os.path.join(backup_env.backup_dir, globals_name), "rb") as handle:
        plant(aws_env, bucket, globals_name, handle.read())
    pushed = backup_env.run("push").stdout
    assert globals_name not in pushed, pushed
    assert list(remote_states(backup_env).values()) == ["complete"]


def test_a_key_ending_in_a_newline_is_foreign_and_crashes_nothing(backup_env, aws_env, bucket, tmp_path):
    """R9: names are matched whole; a stray key with a trailing newline is someone else's."""
    backup_env.rewrite(**s3_settings(aws_env, bucket))
    backup_env.run()
    dump = next(name for name in backup_env.files() if "_db_" in name)
    prefix = backup_env.dbname
    plant(aws_env, bucket, f"{prefix}_db_20261101_000000_utc.dump\n", b"stray")  # a set of its own
    plant(aws_env, bucket, f"{prefix}_manifest_20261101_000000_utc.json\n", b"{}")
    plant(aws_env, bucket, dump + "\n", b"stray")  # beside a real name
    for args in (["list", "--remote"], ["verify", "--remote"], ["prune", "--remote", "--dry-run"], ["pull", "--to", str(tmp_path / "pulled")], ["list"]):
        done = backup_env.run(*args)
        assert "Traceback" not in done.stderr, done.stderr
    assert "complete" in backup_env.run("list", "--remote").stdout
    assert "FAILED" not in backup_env.run("verify", "--remote").stdout


def test_a_pushed_set_whose_dump_was_deleted_is_not_complete_there(backup_env, aws_env, bucket):
    """R15: completeness on the remote means every listed object with its size."""
    backup_env.rewrite(**s3_settings(aws_env, bucket))
    backup_env.run()
    (set_id,) = local_set_ids(backup_env)
    dump = next(name for name in backup_env.files() if "_db_" in name)
    aws_env.client().delete_object(Bucket=bucket, Key=f"pgdrill/{dump}")
    assert remote_states(backup_env) == {set_id: "damaged"}
    assert "damaged" in backup_env.run("list", "--remote").stdout
    resized = next(name for name in backup_env.files() if "_globals_" in name)
    aws_env.client().delete_object(Bucket=bucket, Key=f"pgdrill/{resized}")
    plant(aws_env, bucket, resized, b"short")
    assert remote_states(backup_env) == {set_id: "damaged"}


def flip_a_bit(aws_env, bucket, name):
    """The storage rots: same name, same size, the stored sha256 metadata of the original kept."""
    client = aws_env.client()
    original = client.get_object(Bucket=bucket, Key=f"pgdrill/{name}")
    data = bytearray(original["Body"].read())
    data[len(data) // 3] ^= 0x01
    client.delete_object(Bucket=bucket, Key=f"pgdrill/{name}")
    client.put_object(Bucket=bucket, Key=f"pgdrill/{name}", Body=bytes(data), Metadata=original["Metadata"])


def dumps(backup_env):
    return sorted(name for name in backup_env.files() if "_db_" in name)


def test_remote_retention_honours_what_verify_remote_proved_bad(backup_env, aws_env, bucket):
    """R10: the only good remote set is never deleted while newer corrupt ones are kept; the record
    lives on the host, not on the remote."""
    backup_env.rewrite(keep_last=1, retention_days=0, prune_after_backup="no", **s3_settings(aws_env, bucket))
    for _ in range(3):
        backup_env.run()
    oldest, middle, newest = local_set_ids(backup_env)
    for dump in dumps(backup_env)[1:]:
        flip_a_bit(aws_env, bucket, dump)
    done = backup_env.run("verify", "--remote", "--all", check=1)
    assert done.stdout.count("FAILED  remote checksum") == 2, done.stdout
    assert not any("verif" in item.name for item in s3_remote(aws_env, bucket).list())  # nothing recorded on the remote
    pruned = backup_env.run("prune", "--remote").stdout
    assert f"removed      {middle}" in pruned and f"removed      {oldest}" not in pruned, pruned
    assert "has not failed verification" in pruned.split(oldest, 1)[1].splitlines()[0], pruned
    listing = backup_env.run("list", "--remote").stdout
    assert oldest in listing and newest in listing and middle not in listing, listing


def test_pull_without_a_set_falls_back_to_the_newest_set_that_verifies(backup_env, aws_env, bucket, tmp_path):
    """R32: the newest remote set is corrupt: pull (as DR and the drill do) takes the next one and
    says what it skipped and why; it fails only when no set verifies, leaving nothing behind."""
    backup_env.rewrite(prune_after_backup="no", **s3_settings(aws_env, bucket))
    backup_env.run()
    backup_env.run()
    older, newer = local_set_ids(backup_env)
    flip_a_bit(aws_env, bucket, dumps(backup_env)[1])
    target = tmp_path / "pulled"
    done = backup_env.run("pull", "--to", str(target))
    assert f"pulled {older}" in done.stdout and newer in done.stderr and "do not match" in done.stderr, done.stdout + done.stderr
    assert not any(newer[len(backup_env.dbname) :] in name for name in os.listdir(target)), os.listdir(target)
    # Proven bad now (recorded on this host): the next pull skips it without downloading it.
    again = backup_env.run("pull", "--to", str(tmp_path / "again"))
    assert f"pulled {older}" in again.stdout and "proved it bad" in again.stderr, again.stderr
    flip_a_bit(aws_env, bucket, dumps(backup_env)[0])
    failed = backup_env.run("pull", "--to", str(tmp_path / "none"), check=1)
    assert "no backup set of this series that verifies" in failed.stderr and older in failed.stderr and newer in failed.stderr, failed.stderr
    assert not [name for name in os.listdir(tmp_path / "none") if not name.startswith(".")]


def test_pull_checks_every_file_against_the_manifest_on_arrival(backup_env, aws_env, bucket, tmp_path):
    """Rule: a forged object whose stored sha256 matches its own (other) bytes is still refused: the
    manifest's sha256 is what counts."""
    backup_env.rewrite(**s3_settings(aws_env, bucket))
    backup_env.run()
    (dump,) = dumps(backup_env)
    forged = os.urandom(os.path.getsize(os.path.join(backup_env.backup_dir, dump)))
    aws_env.client().delete_object(Bucket=bucket, Key=f"pgdrill/{dump}")
    plant(aws_env, bucket, dump, forged, Metadata={"sha256": __import__("hashlib").sha256(forged).hexdigest()})
    (set_id,) = local_set_ids(backup_env)
    failed = backup_env.run("pull", set_id, "--to", str(tmp_path / "pulled"), check=1)
    assert "(the manifest)" in failed.stderr, failed.stderr
    assert not [name for name in os.listdir(tmp_path / "pulled") if not name.startswith(".")]


def test_remote_manifests_pass_the_same_checks_as_local_ones(backup_env, aws_env, bucket, tmp_path):
    """Rule: a remote manifest listing a file that is not a plain name of its set is damaged."""
    backup_env.rewrite(**s3_settings(aws_env, bucket))
    backup_env.run()
    prefix = backup_env.dbname
    stamp = "20261101_000000"
    document = {
        "format": "pgdrill-manifest",
        "format_version": 1,
        "prefix": prefix,
        "stamp": stamp,
        "started_at": "2026-11-01T00:00:00.000Z",
        "files": [{"name": "../../etc/hostname", "kind": "db", "size": 5, "sha256": "0" * 64}],
    }
    plant(aws_env, bucket, f"{prefix}_manifest_{stamp}_utc.json", json.dumps(document).encode())
    # Every object the manifest lists is there as listed, but the manifest is of a format this
    # version does not read: damaged too.
    other = "20261102_000000"
    dump = f"{prefix}_db_{other}_utc.dump"
    entry = {"name": dump, "kind": "db", "size": 5, "sha256": __import__("hashlib").sha256(b"PGDMP").hexdigest()}
    plant(aws_env, bucket, dump, b"PGDMP")
    future_format = dict(document, stamp=other, format_version=99, started_at="2026-11-02T00:00:00.000Z", files=[entry])
    plant(aws_env, bucket, f"{prefix}_manifest_{other}_utc.json", json.dumps(future_format).encode())
    listing = backup_env.run("list", "--remote").stdout
    assert "damaged" in next(line for line in listing.splitlines() if other in line), listing
    listing = backup_env.run("list", "--remote").stdout
    row = next(line for line in listing.splitlines() if stamp in line)
    assert "damaged" in row, listing
    failed = backup_env.run("pull", f"{prefix}_{stamp}_utc", "--to", str(tmp_path / "pulled"), check=1)
    assert "not complete" in failed.stderr, failed.stderr


def test_a_damaged_remote_set_is_kept_for_a_person_not_pruned_as_debris(backup_env, aws_env, bucket):
    """Rule: a remote set whose manifest is there but a file is missing is damaged, never debris."""
    backup_env.rewrite(keep_last=1, retention_days=0, debris_grace_hours=0, prune_after_backup="no", **s3_settings(aws_env, bucket))
    backup_env.run()
    backup_env.run()
    oldest, _ = local_set_ids(backup_env)
    aws_env.client().delete_object(Bucket=bucket, Key=f"pgdrill/{dumps(backup_env)[0]}")
    pruned = backup_env.run("prune", "--remote").stdout
    assert f"keep         {oldest}: damaged" in pruned, pruned


def test_remote_prune_deletes_each_manifest_first(backup_env, aws_env, bucket):
    """Rule: an interrupted remote prune leaves debris, never a manifest without its files."""
    from pgdrill import offsite
    from pgdrill.config import load_configs

    backup_env.rewrite(keep_last=1, retention_days=0, prune_after_backup="no", **s3_settings(aws_env, bucket))
    backup_env.run()
    backup_env.run()
    remote = s3_remote(aws_env, bucket)
    order = []
    delete = remote.delete
    remote.delete = lambda name: order.append(name) or delete(name)
    (config,) = load_configs(backup_env.config, environ={})
    outcome = offsite.prune_remote(config, remote=remote)
    assert len(outcome["removed"]) == 1 and len(order) == 3, order
    assert "_manifest_" in order[0], order
