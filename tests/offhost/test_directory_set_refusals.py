"""What is not built for directory-format sets yet refuses, naming the fix: the push to the off-host copy."""

from __future__ import annotations

import os

from pgdrill.storage.backends import open_remote


def test_a_directory_set_is_never_pushed_and_the_refusal_names_the_set_and_the_fix(backup_env, aws_env, bucket):
    backup_env.rewrite(format="directory")
    backup_env.run()
    (manifest,) = backup_env.manifests()
    remote = {"remote": f"s3://{bucket}/pgdrill", "remote_endpoint_url": aws_env.endpoint_url, "remote_region": "us-east-1"}
    # format = directory with a remote that is pushed to is refused by the config itself ...
    backup_env.rewrite(format="directory", **remote)
    assert "directory-format sets are not pushed to the off-host copy yet" in backup_env.run(check=2).stderr
    # ... and a directory set taken before a remote was added is never pushed: a push of it is refused, and
    # the backup run's push leaves it on this host, saying so, while the custom sets go up.
    backup_env.rewrite(**remote, remote_upload="no")
    refusal = f"pushing to the off-host copy is not built for directory-format sets yet, and {manifest['set']} is one"
    for how in (["push", manifest["set"]], ["push", "--all"]):
        done = backup_env.run(*how, check=1)
        assert refusal in done.stderr and "format = custom" in done.stderr, done.stderr
    backup_env.rewrite(**remote)
    done = backup_env.run()
    assert f"{manifest['set']} stays on this host only: {refusal}" in done.stderr, done.stderr
    names = [obj.name for obj in open_remote(remote["remote"], endpoint_url=aws_env.endpoint_url, region="us-east-1").list()]
    assert not [name for name in names if manifest["stamp"] in name]  # not one object of the directory set
    (custom,) = [m for m in backup_env.manifests() if m["set"] != manifest["set"]]
    assert f"{custom['prefix']}_manifest_{custom['stamp']}_utc.json" in names  # the custom set went up whole


def test_a_directory_set_on_a_remote_is_never_pulled_and_the_refusal_names_the_set_and_the_fix(backup_env, tmp_path):
    """No pgdrill pushes one; a remote that holds one anyway (planted, or from a later pgdrill) is refused, not half-pulled."""
    import shutil

    backup_env.rewrite(format="directory")
    backup_env.run()
    (manifest,) = backup_env.manifests()
    remote = tmp_path / "remote"
    remote.mkdir()
    for entry in manifest["files"]:
        source = os.path.join(backup_env.backup_dir, entry["name"])
        if os.path.isdir(source):
            with open(remote / entry["name"], "wb") as handle:
                handle.write(b"\0" * entry["size"])  # an object of the directory's name and size
        else:
            shutil.copy(source, remote / entry["name"])
    name = f"{manifest['prefix']}_manifest_{manifest['stamp']}_utc.json"
    shutil.copy(os.path.join(backup_env.backup_dir, name), remote / name)
    backup_env.rewrite(remote=f"rclone::local:{remote}", remote_upload="no")
    refusal = f"pulling from the off-host copy is not built for directory-format sets yet, and {manifest['set']} is one"
    for named in ([], [manifest["set"]]):
        done = backup_env.run("pull", *named, "--to", str(tmp_path / "pulled"), check=1)
        assert refusal in done.stderr and "format = custom" in done.stderr, done.stderr
        assert not [name for name in os.listdir(tmp_path / "pulled") if manifest["stamp"] in name]  # nothing of it came down
