"""Helpers of the off-host tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pgdrill.encryption import encrypt_argv, find_age
from pgdrill.fsio import AtomicWriter
from pgdrill.pipeline import child_env, stream
from pgdrill.storage.backends import open_remote

NAME = "shop_db_20261127_021500_utc.dump.zst.age"


def dump_env(pg, dbname):
    return child_env(pg.env(dbname))


def encrypt_dump(pg, dbname, directory, recipients, compress=True):
    """pg_dump -Fc | zstd | age -e into an AtomicWriter, as the backup pipeline will run it."""
    commands = [[pg.bin("pg_dump"), "--format=custom"]]
    if compress:
        commands.append(["zstd", "-q", "-c"])
    commands.append(encrypt_argv(recipients, find_age()))
    with AtomicWriter(str(directory), NAME if compress else NAME.replace(".zst", "")) as writer:
        stream(commands, writer.write, dump_env(pg, dbname), f"pg_dump of {dbname}")
        path = writer.commit()
    return path, writer


def s3_settings(aws_env, bucket, **extra):
    """Config keys for a series pushing to ``bucket`` on the test's S3 server."""
    return {"remote": f"s3://{bucket}/pgdrill", "remote_endpoint_url": aws_env.endpoint_url, "remote_region": "us-east-1", **extra}


def s3_remote(aws_env, bucket):
    """The same remote, opened directly (to look at, or plant objects in, the bucket)."""
    return open_remote(f"s3://{bucket}/pgdrill", endpoint_url=aws_env.endpoint_url, region="us-east-1")


def local_set_ids(backup_env):
    return sorted(name.replace("_manifest", "").replace(".json", "") for name in backup_env.files() if "_manifest_" in name)
