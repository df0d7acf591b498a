"""Both layers together, as a disaster would use them: an encrypted dump pushed to object storage,
the local copy gone, pulled back and restored from with the escrow key alone."""

from __future__ import annotations

import os
import subprocess

from offhost_helpers import encrypt_dump
from pgdrill.encryption import decrypt_to, read_header
from pgdrill.fsio import AtomicWriter, sha256_of
from pgdrill.pipeline import child_env
from pgdrill.storage import LockSettings
from pgdrill.storage.backends import open_remote


def test_encrypted_dump_pushed_lost_locally_pulled_and_restored_with_the_escrow_key(pg, sample_db, keys, aws_env, locked_bucket, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    path, writer = encrypt_dump(pg, sample_db, host, [keys["drill"][1], keys["escrow"][1]])
    name = os.path.basename(path)
    remote = open_remote(f"s3://{locked_bucket}/pgdrill/{sample_db}", endpoint_url=aws_env.endpoint_url, region="us-east-1")
    stored = remote.put(path, sha256=writer.sha256, lock=LockSettings("COMPLIANCE", 1))
    assert stored.sha256 == writer.sha256
    os.unlink(path)  # the host and its backups are gone
    rebuilt = tmp_path / "new-host"
    rebuilt.mkdir()
    pulled = remote.get(name, str(rebuilt), expected_sha256=writer.sha256, expected_size=writer.size)
    assert read_header(pulled).recipients == 2  # keyless checks: header, and the sha256 on arrival
    with AtomicWriter(str(rebuilt), "restore.dump") as plain:
        decrypt_to(pulled, keys["escrow"][0], plain.write, child_env(), then=[["zstd", "-q", "-d", "-c"]])
        plain.commit()
    pg.psql('CREATE DATABASE "recovered"')
    try:
        env = dict(os.environ, **pg.env("recovered"))
        subprocess.run([pg.bin("pg_restore"), "--exit-on-error", "-d", "recovered", plain.final_path], env=env, check=True, capture_output=True)
        count = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'"
        assert pg.psql(count, "recovered") == pg.psql(count, sample_db) != "0"
    finally:
        pg.psql('DROP DATABASE IF EXISTS "recovered" WITH (FORCE)')
    assert sha256_of(pulled)[0] == writer.sha256
