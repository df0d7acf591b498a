"""verify --restore proves a set against its fingerprint, and cleans up after verifies that were killed."""

import glob
import json
import os

from pgdrill.verify import SCRATCH_PREFIX


def manifest_path(backup_env):
    return glob.glob(os.path.join(backup_env.backup_dir, "*_manifest_*.json"))[0]


def test_verify_restore_compares_the_fingerprint(backup_env):
    backup_env.run()
    document = json.load(open(manifest_path(backup_env)))
    assert document["fingerprint"]["objects"]["table public.invoices"]["owner"] == "postgres"
    assert document["row_count_keys"] == "quoted" and "public.invoices" in document["row_counts"]
    done = backup_env.run("verify", "--restore")
    lines = [line.split(":")[0].split() for line in done.stdout.splitlines()[1:]]
    assert [words for words in lines if words[-1] in ("restore", "fingerprint", "counts")] == [
        ["ok", "restore"],
        ["ok", "fingerprint"],
        ["ok", "row", "counts"],
    ]
    objects = len(document["fingerprint"]["objects"])
    assert f"{objects} objects match the backup's fingerprint" in done.stdout


def test_verify_restore_fails_naming_what_the_restore_does_not_have(backup_env):
    """A fingerprint that expects a GRANT the archive does not hold: verify must fail, naming it."""
    backup_env.run()
    path = manifest_path(backup_env)
    document = json.load(open(path))
    document["fingerprint"]["objects"]["table public.invoices"]["acl"] = ["postgres=arwdDxt/postgres", "auditor=r/postgres"]
    with open(path, "w") as handle:
        json.dump(document, handle)
    done = backup_env.run("verify", "--restore", check=1)
    assert "FAILED  fingerprint: " in done.stdout and "table public.invoices: acl differs" in done.stdout and "auditor=r/postgres" in done.stdout
    assert backup_env.run("list").stdout.split()[-1] == "failed"


def test_verify_restore_drops_the_scratch_databases_of_killed_verifies(backup_env):
    backup_env.run()
    pg = backup_env.cluster
    prefix = f"{SCRATCH_PREFIX}{backup_env.dbname}_"
    old, recent, foreign = prefix + "aaaaaa", prefix + "bbbbbb", prefix + "cccccc"
    for name in (old, recent, foreign):
        pg.psql(f'CREATE DATABASE "{name}"')
    pg.psql(f"COMMENT ON DATABASE \"{old}\" IS 'pgdrill scratch database (verify of x, created 2020-01-01T00:00:00Z)'")
    pg.psql(f"COMMENT ON DATABASE \"{recent}\" IS 'pgdrill scratch database (verify of x, created 2099-01-01T00:00:00Z)'")
    try:
        backup_env.run("verify", "--restore")
        left = pg.psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{SCRATCH_PREFIX}%' ORDER BY 1").split()
        assert left == [recent, foreign]  # the old leftover went; one within the grace period and an unmarked one stay
    finally:
        for name in (old, recent, foreign):
            pg.psql(f'DROP DATABASE IF EXISTS "{name}"')


def test_verify_restore_in_a_dry_run_makes_no_scratch_database(backup_env):
    backup_env.run()
    pg = backup_env.cluster
    before = pg.psql("SELECT count(*) FROM pg_database")
    done = backup_env.run("verify", "--restore", "--dry-run")
    assert "not run in a dry run" in done.stdout and "FAILED" not in done.stdout
    assert pg.psql("SELECT count(*) FROM pg_database") == before
    assert backup_env.run("list").stdout.split()[-1] == "never"  # nothing recorded either
