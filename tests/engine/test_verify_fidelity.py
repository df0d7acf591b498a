"""verify --restore proves a set against its fingerprint, and cleans up after verifies that were killed."""

import glob
import json
import os

import pytest

from helpers import run_cli, write_config
from pgdrill.catalog import scan
from pgdrill.config import load_configs
from pgdrill.fingerprint import OWNER_DEFAULTS, default_acl
from pgdrill.recovery import RestoreOptions, restore_set
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


OWNER_DEFAULT_GRANTS = """
CREATE ROLE {role} NOLOGIN;
CREATE SCHEMA owned AUTHORIZATION {role};
SET ROLE {role};
CREATE TABLE owned.a (id int);
CREATE SEQUENCE owned.s;
CREATE FUNCTION owned.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE TYPE owned.mood AS ENUM ('ok');
GRANT SELECT ON owned.a TO {role};
GRANT USAGE ON SEQUENCE owned.s TO {role};
GRANT EXECUTE ON FUNCTION owned.f() TO {role};
GRANT USAGE ON TYPE owned.mood TO {role};
GRANT USAGE ON SCHEMA owned TO {role};
ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {role};
RESET ROLE;
ALTER TABLE public.invoices OWNER TO {role};
GRANT SELECT ON public.invoices TO {role};
"""


def test_an_acl_equal_to_the_owners_default_does_not_fail_the_restore_proof(backup_env):
    """``alter table a owner to app; grant select on a to app`` stores the owner's default ACL
    explicitly ({app=arwdDxt/app}); pg_dump emits nothing for it and the restored object has the
    default (NULL) ACL: the same privileges, so the proof must pass (tables, sequences, functions,
    types, schemas and default privileges)."""
    pg = backup_env.cluster
    role = f"app_{backup_env.dbname}"
    pg.psql(OWNER_DEFAULT_GRANTS.format(role=role), backup_env.dbname)
    try:
        assert pg.psql("SELECT relacl FROM pg_class WHERE oid = 'public.invoices'::regclass", backup_env.dbname) == f"{{{role}=arwdDxt/{role}}}"
        backup_env.run()
        document = json.load(open(manifest_path(backup_env)))
        assert document["fingerprint"]["objects"]["table public.invoices"]["acl"] == [f"{role}=arwdDxt/{role}"]  # recorded as it is
        done = backup_env.run("verify", "--restore", check=None)
        assert done.returncode == 0 and "FAILED" not in done.stdout, done.stdout + done.stderr
        assert "ok      fingerprint" in done.stdout or " fingerprint: " in done.stdout
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{backup_env.dbname}" WITH (FORCE)')
        pg.psql(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.parametrize("server", ["pg", "pg18"])
def test_the_owner_default_acls_are_the_servers_own_acldefault(request, server):
    """fingerprint.default_acl is acldefault(kind, owner), read from real servers of two majors
    (17 gave tables MAINTAIN), for an owner whose name aclitem quotes and one it does not."""
    cluster = request.getfixturevalue(server)
    for owner in ("app", "Büro owner"):
        for kind in OWNER_DEFAULTS:
            # acldefault takes the owner's oid; a role that does not exist prints as its oid, so make it.
            cluster.psql(f'DO $$ BEGIN CREATE ROLE "{owner}"; EXCEPTION WHEN duplicate_object THEN NULL; END $$')
            found = cluster.psql(
                f"SELECT array_to_string(ARRAY(SELECT x::text FROM unnest(acldefault('{kind}', (SELECT oid FROM pg_roles WHERE rolname = '{owner}'))) x ORDER BY 1), '|')"
            )
            assert sorted(found.split("|")) == default_acl(kind, owner, cluster.major), (kind, owner)


def test_a_role_that_owns_its_database_backs_it_up_and_verify_restore_names_createdb(pg, tmp_path, owner_role):
    """Not a superuser: the globals come without password hashes (one line says so), the set is
    complete; verify --restore without CREATEDB fails naming the fix, and passes once it has it."""
    role, database, passfile, password = owner_role
    config = write_config(tmp_path / "owner.conf", pg, database, tmp_path / "backups", user=role, passfile=passfile)
    done = run_cli("--config", config, check=None)
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "password" in line]
    assert len(warnings) == 1 and "without their passwords" in warnings[0] and "superuser" in warnings[0], done.stderr
    names = os.listdir(tmp_path / "backups")
    globals_file = next(name for name in names if "_globals_" in name)
    script = (tmp_path / "backups" / globals_file).read_text()
    assert f"CREATE ROLE {role};" in script and "SCRAM-SHA-256$" not in script and password not in script
    manifest = json.load(open(glob.glob(str(tmp_path / "backups" / "*_manifest_*.json"))[0]))
    assert manifest["options"]["globals"] is True and manifest["options"]["role_passwords"] is False
    assert run_cli("--config", config, "list").stdout.split()[-2:] == ["complete", "never"]

    refused = run_cli("--config", config, "verify", "--restore", check=1)
    assert "CREATEDB" in refused.stdout and f"ALTER ROLE {role} CREATEDB" in refused.stdout, refused.stdout
    pg.psql(f"ALTER ROLE {role} CREATEDB")
    verified = run_cli("--config", config, "verify", "--restore", check=0)
    assert "ok      restore" in verified.stdout and "FAILED" not in verified.stdout, verified.stdout


def test_a_partial_restore_keeps_the_value_of_a_sequence_it_pulls_in(backup_env):
    """Restoring one table whose default draws from a sequence of its own (not owned by the table)
    brings the sequence as a dependency, and with it the value it had: new rows must not reuse ids."""
    pg = backup_env.cluster
    pg.psql(
        "CREATE SEQUENCE public.ticket_no; CREATE TABLE public.tickets (id bigint PRIMARY KEY DEFAULT nextval('public.ticket_no'), note text);"
        " INSERT INTO public.tickets (note) SELECT 'n' FROM generate_series(1, 5); SELECT setval('public.ticket_no', 777);",
        backup_env.dbname,
    )
    backup_env.run()
    (config,) = load_configs(backup_env.config, environ={})
    backup = next(s for s in scan(config.backup_dir, config.prefix) if s.complete)
    target = f"{backup_env.dbname}_tickets"
    try:
        outcome = restore_set(config, backup, RestoreOptions(target=target, tables=("public.tickets",)))
        assert outcome["fidelity"]["ok"] and outcome["row_counts"]["tables"] == 1
        assert pg.psql("SELECT last_value FROM public.ticket_no", target) == "777"
        assert pg.psql("SELECT count(*) FROM pg_class WHERE relname = 'invoices'", target) == "0"  # only what was asked for
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')


def test_the_fingerprint_records_column_privileges_and_a_lost_one_fails(backup_env):
    pg = backup_env.cluster
    role = f"clerk_{backup_env.dbname}"
    pg.psql(f"CREATE ROLE {role} NOLOGIN; GRANT SELECT (id) ON public.invoices TO {role}", backup_env.dbname)
    try:
        backup_env.run()
        path = manifest_path(backup_env)
        document = json.load(open(path))
        assert document["fingerprint"]["objects"]["table public.invoices"]["column_acls"] == {"id": [f"{role}=r/postgres"]}
        backup_env.run("verify", "--restore")
        document["fingerprint"]["objects"]["table public.invoices"]["column_acls"]["id"].append("auditor=r/postgres")
        with open(path, "w") as handle:
            json.dump(document, handle)
        done = backup_env.run("verify", "--restore", check=1)
        assert "table public.invoices: column acls differs" in done.stdout, done.stdout
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{backup_env.dbname}" WITH (FORCE)')
        pg.psql(f"DROP ROLE IF EXISTS {role}")
