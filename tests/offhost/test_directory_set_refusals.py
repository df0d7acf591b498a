"""What is not built for directory-format sets yet refuses, naming the fix: the push to the off-host copy."""

from __future__ import annotations

from pgdrill.storage.backends import open_remote


def test_a_directory_set_is_never_pushed_and_the_refusal_names_the_set_and_the_fix(backup_env, aws_env, bucket):
    backup_env.rewrite(format="directory")
    backup_env.run()
    (manifest,) = backup_env.manifests()
    remote = {"remote": f"s3://{bucket}/pgdrill", "remote_endpoint_url": aws_env.endpoint_url, "remote_region": "us-east-1"}
    # format = directory with a remote that is pushed to is refused by the config itself ...
    backup_env.rewrite(format="directory", **remote)
    assert "directory-format sets are not pushed to the off-host copy yet" in backup_env.run(check=2).stderr
    # ... and a directory set taken before a remote was added is never pushed, by push or by the backup run.
    backup_env.rewrite(**remote, remote_upload="no")
    done = backup_env.run("push", check=1)
    assert f"pushing to the off-host copy is not built for directory-format sets yet, and {manifest['set']} is one" in done.stderr
    assert "format = custom" in done.stderr
    backup_env.rewrite(**remote)
    done = backup_env.run(check=1)
    assert "is complete on this host" in done.stderr and "directory-format sets" in done.stderr and "nothing was pruned" in done.stderr
    names = [obj.name for obj in open_remote(remote["remote"], endpoint_url=aws_env.endpoint_url, region="us-east-1").list()]
    assert not [name for name in names if manifest["stamp"] in name]  # not one object of the directory set
