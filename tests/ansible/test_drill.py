"""Restore drills and the guarded restore, in real ansible-playbook runs against two real clusters on
this machine: a source (the production stand-in) and a staging server.

The checks are the ez360pm inventory's own (inventories/ez360pm/group_vars/pgdrill_staging.yml), and
the post-restore commands are a minimal Django project's migrate and check, run against the restored
database the way the seed's procedure runs them."""

import glob
import hashlib
import json
import os
import subprocess
import sys

import ansible_runner
import pytest
import yaml

from helpers import REPO, Run, run_cli

DJANGO = os.path.join(REPO, "tests", "django_app")
EZ360PM = yaml.safe_load(open(os.path.join(REPO, "inventories", "ez360pm", "group_vars", "pgdrill_staging.yml")))


@pytest.fixture(scope="module")
def staging():
    from pgdrill_lab.cluster import Cluster

    with Cluster(name="staging") as cluster:
        yield cluster


def fingerprint(cluster, dbname):
    """The source database's catalog (schema-only dump) and data (every row of every table)."""
    env = dict(os.environ, **cluster.env(dbname))
    schema = subprocess.run([cluster.bin("pg_dump"), "--schema-only"], env=env, capture_output=True, check=True).stdout
    # pg_dump 15.14+ brackets plain dumps with \restrict and \unrestrict and a random key each run.
    schema = b"\n".join(line for line in schema.splitlines() if not line.startswith((b"\\restrict", b"\\unrestrict")))
    tables = cluster.psql("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", dbname).split()
    digest = hashlib.sha256(schema)
    for table in tables:
        digest.update(cluster.psql(f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t", dbname).encode())
    return digest.hexdigest()


@pytest.fixture
def drill_env(tmp_path, pg, staging, sample_db, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = tmp_path / "source.conf"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'backups'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
        f"[database {sample_db}]\nprefix = ez360pm\n"
    )
    run_cli("--config", str(config))

    class Env:
        source, db = pg, sample_db
        controller = tmp_path / "controller"
        log = tmp_path / "controller" / "drill-log.md"
        backups = tmp_path / "backups"

        def drill(self, check=False, **overrides):
            extravars = {
                "pgdrill_drill_source_host": "source",
                "pgdrill_drill_database": sample_db,
                "pgdrill_drill_source_config": str(config),
                "pgdrill_drill_work_dir": str(tmp_path / "staging-work"),
                "pgdrill_drill_host": staging.host,
                "pgdrill_drill_port": staging.port,
                "pgdrill_drill_login_user": "postgres",
                "pgdrill_drill_passfile": staging.passfile,
                "pgdrill_drill_controller_dir": str(self.controller),
                "pgdrill_drill_log": str(self.log),
                "pgdrill_drill_checks": EZ360PM["pgdrill_drill_checks"],
                "pgdrill_drill_post_restore_commands": [
                    {"name": "migrate", "command": [sys.executable, "manage.py", "migrate", "--noinput"], "chdir": DJANGO},
                    {"name": "check", "command": [sys.executable, "manage.py", "check", "--database", "default"], "chdir": DJANGO},
                ],
                **overrides,
            }
            return playbook_run(tmp_path, "run_restore_drill.yml", extravars, check=check)

        def evidence(self):
            files = sorted(glob.glob(str(self.controller / "evidence" / "staging" / "*.json")), key=os.path.getmtime)
            return json.load(open(files[-1]))

        def scratch_databases(self):
            return staging.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drill_%'").split()

    return Env()


def playbook_run(tmp_path, playbook, extravars, check=False):
    private = tmp_path / f"runner-{len(os.listdir(tmp_path))}"
    private.mkdir()
    python = sys.executable
    inventory = f"source ansible_connection=local ansible_python_interpreter={python}\n[pgdrill_staging]\nstaging ansible_connection=local ansible_python_interpreter={python}\n[pgdrill_databases]\nsource\n"
    runner = ansible_runner.run(
        private_data_dir=str(private), playbook=os.path.join(REPO, "playbooks", playbook), inventory=inventory, extravars=extravars, quiet=True,
        envvars={"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_BECOME_METHOD": "su"},
        cmdline="-e ansible_become=false" + (" --check" if check else ""),
    )
    return Run(runner, str(private))


def test_drill_passes_and_leaves_evidence(drill_env):
    before = fingerprint(drill_env.source, drill_env.db)
    run = drill_env.drill()
    assert run.status == "successful", run.stdout[-5000:]
    record = drill_env.evidence()
    assert record["outcome"] == "passed" and record["failed_step"] is None
    assert record["source_host"] == "source" and record["database"] == drill_env.db and record["set"].startswith("ez360pm_")
    manifest = json.load(open(glob.glob(str(drill_env.backups / "ez360pm_manifest_*.json"))[0]))
    dump = next(f for f in manifest["files"] if f["kind"] == "db")
    assert record["sha256"] == dump["sha256"]
    assert record["tool_version"] == manifest["tool"]["version"] and record["pg_dump_version"] == manifest["client"]["pg_dump_version"]
    assert set(record["timings"]) >= {"pick the set", "verify at the source", "transfer", "verify on arrival", "restore", "smoke checks", "cleanup"}
    assert record["timings"]["restore"] > 0 and record["restore_timings"]["pg_restore"] > 0
    names = [check["name"] for check in record["checks"]]
    assert names[:3] == ["row counts against the manifest", "migrate", "check"]
    assert {"login", "company switch", "create client", "create project", "create invoice", "P&L report", "balance sheet report"} <= set(names)
    assert all(check["ok"] for check in record["checks"])
    line = drill_env.log.read_text().strip().splitlines()[-1]
    assert line.startswith("- 20") and record["set"] in line and line.endswith("PASSED") and f"{len(names)}/{len(names)} checks ok" in line
    assert drill_env.scratch_databases() == []  # dropped on success
    assert fingerprint(drill_env.source, drill_env.db) == before  # the source is never touched


def test_drill_in_check_mode_picks_and_verifies_only(drill_env):
    """--check tells what a drill would restore, having verified it at the source, and changes nothing."""
    run = drill_env.drill(check=True)
    assert run.status == "successful", run.stdout[-5000:]
    record = run.task("Show the evidence")["res"]["__pgdrill_drill_evidence.record"]
    assert record["outcome"] == "checked" and record["set"].startswith("ez360pm_") and record["scratch_database"] is None
    assert set(record["timings"]) == {"pick the set", "verify at the source"}
    assert run.task("Verify the set's checksums and archive at the source, recording nothing there")["res"]["checks"]
    assert run.task("Append the drill to the drill log")["res"]["changed"] is True  # reported, not written
    assert not drill_env.log.exists() and not drill_env.controller.exists()
    assert drill_env.scratch_databases() == []


@pytest.mark.parametrize("case,overrides,step,words", [
    ("failing SQL check", {"pgdrill_drill_checks": [{"name": "impossible", "sql": "SELECT 1 WHERE false", "expect": "rows"}]},
     "smoke checks", "'impossible' failed"),
    ("failing post-restore command", {"pgdrill_drill_post_restore_commands": [{"name": "migrate", "command": [sys.executable, "-c", "raise SystemExit(3)"]}]},
     "smoke checks", "'migrate' failed: exit 3"),
    ("missing set", {"pgdrill_drill_set": "ez360pm_20200101_000000_utc"}, "pick the set", "there is no complete backup set ez360pm_20200101_000000_utc"),
    ("stale set", {"pgdrill_drill_max_age_hours": 0.0001}, "pick the set", "h old (limit"),
])
def test_drill_fails_naming_the_step(drill_env, case, overrides, step, words):
    before = fingerprint(drill_env.source, drill_env.db)
    run = drill_env.drill(**overrides)
    assert run.status == "failed", case
    message = run.task("Fail the play when the drill failed")["res"]["msg"]
    assert f"failed at step '{step}'" in message and words in message, message
    record = drill_env.evidence()
    assert record["outcome"] == "failed" and record["failed_step"] == step
    assert drill_env.log.read_text().strip().splitlines()[-1].endswith(f"FAILED at {step}")
    assert drill_env.scratch_databases() == []
    assert fingerprint(drill_env.source, drill_env.db) == before


def test_corrupted_set_fails_at_the_source(drill_env):
    dump = glob.glob(str(drill_env.backups / "ez360pm_db_*"))[0]
    with open(dump, "r+b") as handle:
        handle.seek(200)
        handle.write(b"\xff\x00corrupt")
    run = drill_env.drill()
    assert run.status == "failed"
    message = run.task("Fail the play when the drill failed")["res"]["msg"]
    assert "failed at step 'verify at the source'" in message and "checksum" in message


def test_failed_drill_can_keep_its_database(drill_env, staging):
    run = drill_env.drill(pgdrill_drill_keep_on_failure=True, pgdrill_drill_checks=[{"name": "impossible", "sql": "SELECT 1 WHERE false", "expect": "rows"}])
    assert run.status == "failed"
    kept = drill_env.scratch_databases()
    assert len(kept) == 1 and drill_env.evidence()["scratch_database_kept"] is True
    # The next drill of the same set gets a scratch database of its own, beside the kept one.
    again = drill_env.drill()
    assert again.status == "successful", again.stdout[-4000:]
    assert drill_env.evidence()["scratch_database"] != kept[0] and drill_env.scratch_databases() == kept
    staging.psql(f'DROP DATABASE "{kept[0]}" WITH (FORCE)')


def test_guarded_production_restore(tmp_path, pg, sample_db, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = tmp_path / "host.conf"
    config.write_text(f"[pgdrill]\nbackup_dir = {tmp_path / 'b'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n[database {sample_db}]\n")
    run_cli("--config", str(config))
    expected = pg.psql("SELECT count(*) FROM invoices", sample_db)
    pg.psql("TRUNCATE invoices CASCADE", sample_db)  # the disaster
    base = {"pgdrill_config_path": str(config), "pgdrill_restore_database": sample_db, "pgdrill_restore_target": sample_db,
            "pgdrill_restore_terminate_connections": True}
    refused = playbook_run(tmp_path, "restore_database.yml", base)
    assert refused.status == "failed"
    assert "the database this backup was taken from" in refused.task("Restore the backup set")["res"]["msg"]
    wrong = playbook_run(tmp_path, "restore_database.yml", dict(base, pgdrill_restore_confirm="yes"))
    assert wrong.status == "failed" and "must equal pgdrill_restore_target" in wrong.task("Check the request")["res"]["msg"]
    assert pg.psql("SELECT count(*) FROM invoices", sample_db) != expected  # nothing was touched
    done = playbook_run(tmp_path, "restore_database.yml", dict(base, pgdrill_restore_confirm=sample_db, pgdrill_restore_post_commands=[
        {"name": "check", "command": [sys.executable, "manage.py", "check", "--database", "default"], "chdir": DJANGO}]))
    assert done.status == "successful", done.stdout[-4000:]
    assert pg.psql("SELECT count(*) FROM invoices", sample_db) == expected
    shown = done.task("Show what was run, to follow or repeat by hand")["res"]["msg"]
    assert any("pg_restore --exit-on-error" in " ".join(map(str, entry)) for entry in shown if isinstance(entry, list))
    fresh = playbook_run(tmp_path, "restore_database.yml", {"pgdrill_config_path": str(config), "pgdrill_restore_database": sample_db,
                                                            "pgdrill_restore_target": sample_db + "_copy", "pgdrill_restore_globals": True})
    assert fresh.status == "successful" and pg.psql("SELECT count(*) FROM invoices", sample_db + "_copy") == expected
    shown = fresh.task("Show what was run, to follow or repeat by hand")["res"]["msg"]
    assert any(" -f - < " in line for line in shown[2])  # the globals went to psql first
    assert shown[3].startswith("globals: replayed without the statements for roles this server already has: ") and "postgres" in shown[3]
    pg.psql(f'DROP DATABASE "{sample_db}_copy" WITH (FORCE)')


def test_drill_replays_globals_for_owners_and_grants(tmp_path, pg, staging, monkeypatch):
    """A source whose tables belong to its own roles: restored with ownership and GRANTs, the copy
    fails while staging lacks those roles, and passes once the set's globals are replayed first."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    tag = os.urandom(3).hex()
    owner, reader, dbname = f"pgdrill_owner_{tag}", f"pgdrill_reader_{tag}", f"roles_{tag}"
    pg.psql(f"CREATE ROLE {owner} NOLOGIN")
    pg.psql(f"CREATE ROLE {reader} LOGIN PASSWORD 'reader-{tag}'")
    pg.psql(f"CREATE DATABASE {dbname} OWNER {owner}")
    pg.psql(f"CREATE TABLE ledger AS SELECT g AS id FROM generate_series(1, 50) g; ALTER TABLE ledger OWNER TO {owner};"
            f" GRANT SELECT ON ledger TO {reader}", dbname)
    config = tmp_path / "roles.conf"
    config.write_text(f"[pgdrill]\nbackup_dir = {tmp_path / 'b'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
                      f"[database {dbname}]\n")
    run_cli("--config", str(config))
    drill = {
        "pgdrill_drill_source_host": "source", "pgdrill_drill_database": dbname, "pgdrill_drill_source_config": str(config),
        "pgdrill_drill_work_dir": str(tmp_path / "work"), "pgdrill_drill_host": staging.host, "pgdrill_drill_port": staging.port,
        "pgdrill_drill_login_user": "postgres", "pgdrill_drill_passfile": staging.passfile,
        "pgdrill_drill_controller_dir": str(tmp_path / "controller"), "pgdrill_drill_log": str(tmp_path / "controller" / "log.md"),
        "pgdrill_drill_no_owner": False, "pgdrill_drill_no_privileges": False,
        "pgdrill_drill_checks": [
            {"name": "owner kept", "sql": f"SELECT 1 FROM pg_tables WHERE tablename = 'ledger' AND tableowner = '{owner}'", "expect": "rows"},
            {"name": "grant kept", "sql": f"SELECT 1 WHERE has_table_privilege('{reader}', 'public.ledger', 'SELECT')", "expect": "rows"},
        ],
    }
    try:
        without = playbook_run(tmp_path, "run_restore_drill.yml", drill)
        assert without.status == "failed"
        message = without.task("Fail the play when the drill failed")["res"]["msg"]
        assert "failed at step 'restore'" in message and f'role "{owner}" does not exist' in message, message
        done = playbook_run(tmp_path, "run_restore_drill.yml", dict(drill, pgdrill_drill_restore_globals=True))
        assert done.status == "successful", done.stdout[-5000:]
        record = json.load(open(sorted(glob.glob(str(tmp_path / "controller" / "evidence" / "staging" / "*.json")), key=os.path.getmtime)[-1]))
        assert record["outcome"] == "passed" and [c["ok"] for c in record["checks"]] == [True, True, True]
        assert record["restore_timings"]["globals"] > 0 and any(" -f - < " in line and line.endswith(".sql") for line in record["restore_commands"])
        # Staging's own superuser was left alone: the drill's connection still works with staging's password.
        assert record["globals_roles_left_alone"] == ["postgres"] and staging.psql("SELECT 1") == "1"
        # The roles now exist on staging, the login role with the source's password hash.
        assert staging.psql(f"SELECT rolname, rolpassword IS NOT NULL FROM pg_authid WHERE rolname IN ('{owner}', '{reader}') ORDER BY 1").split() == \
            [f"{owner}|f", f"{reader}|t"]
        # Replaying them again over existing roles is not an error.
        again = playbook_run(tmp_path, "run_restore_drill.yml", dict(drill, pgdrill_drill_restore_globals=True))
        assert again.status == "successful", again.stdout[-5000:]
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        for cluster in (pg, staging):
            cluster.psql(f"DROP ROLE IF EXISTS {reader}; DROP ROLE IF EXISTS {owner}")
