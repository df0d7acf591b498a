"""A drill's PASSED means the restore is the database: an object-rich source (roles owning schemas
and tables, GRANTs, column privileges, default privileges, row-level security, large objects, three
extensions, partitions, identity and generated columns, odd names) is drilled onto a separate,
fresh cluster that has never seen its roles, across majors, and with a doctored set that lost a
GRANT. Real clusters, real pg_dump and pg_restore, real ansible-playbook runs."""

import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest

from helpers import REPO, playbook_run, run_cli
from pgdrill import db, scratch
from pgdrill.config import Connection
from pgdrill.errors import PgdrillError
from pgdrill_lab.cluster import Cluster, embedded_bindir

RICH_SQL = os.path.join(REPO, "tests", "data", "rich.sql")
ROLES = ("rich_owner", "rich_reader", "rich_writer")


def create_rich(cluster, dbname):
    cluster.psql(
        "CREATE ROLE rich_owner NOLOGIN; CREATE ROLE rich_reader LOGIN PASSWORD 'reader-secret'; CREATE ROLE rich_writer; GRANT rich_reader TO rich_writer"
    )
    cluster.psql(f'CREATE DATABASE "{dbname}" OWNER rich_owner')
    env = dict(os.environ, **cluster.env(dbname))
    subprocess.run(
        [
            cluster.bin("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "owner=rich_owner",
            "-v",
            "reader=rich_reader",
            "-v",
            "writer=rich_writer",
            "-f",
            RICH_SQL,
        ],
        env=env,
        check=True,
        capture_output=True,
    )


def schema_dump(cluster, dbname, bindir=None):
    """pg_dump --schema-only of a database, without the per-run \\restrict keys."""
    env = dict(os.environ, **cluster.env(dbname))
    out = subprocess.run([os.path.join(bindir or cluster.bindir, "pg_dump"), "--schema-only"], env=env, capture_output=True, check=True).stdout
    return b"\n".join(line for line in out.splitlines() if not line.startswith((b"\\restrict", b"\\unrestrict")))


class Source:
    """An object-rich database on a cluster, backed up by pgdrill with the cluster's own client."""

    def __init__(self, cluster, tmp_path, name="rich"):
        self.cluster, self.db = cluster, name
        create_rich(cluster, name)
        self.config = tmp_path / f"{name}.conf"
        self.backups = tmp_path / f"backups-{name}"
        self.config.write_text(
            f"[pgdrill]\nbackup_dir = {self.backups}\nhost = {cluster.host}\nport = {cluster.port}\nuser = postgres\n"
            f"passfile = {cluster.passfile}\npg_bin_dir = {cluster.bindir}\n[database {name}]\n"
        )
        run_cli("--config", str(self.config))

    def manifest(self):
        return json.load(open(glob.glob(str(self.backups / f"{self.db}_manifest_*.json"))[0]))

    def drop(self):
        self.cluster.psql(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        self.cluster.psql("; ".join(f"DROP ROLE IF EXISTS {role}" for role in reversed(ROLES)))


@pytest.fixture(scope="module")
def fresh_staging():
    """A staging server that has never seen the source's roles."""
    with Cluster(name="fresh-staging") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def staging18():
    with Cluster(bindir=embedded_bindir(), name="staging18") as cluster:
        yield cluster


@pytest.fixture
def rich(pg, tmp_path):
    source = Source(pg, tmp_path)
    yield source
    source.drop()


def drill(tmp_path, source, staging, **overrides):
    extravars = {
        "pgdrill_drill_source_host": "source",
        "pgdrill_drill_database": source.db,
        "pgdrill_drill_source_config": str(source.config),
        "pgdrill_drill_work_dir": str(tmp_path / "work"),
        "pgdrill_drill_host": staging.host,
        "pgdrill_drill_port": staging.port,
        "pgdrill_drill_login_user": "postgres",
        "pgdrill_drill_passfile": staging.passfile,
        "pgdrill_drill_controller_dir": str(tmp_path / "controller"),
        "pgdrill_drill_log": str(tmp_path / "controller" / "log.md"),
        **overrides,
    }
    run = playbook_run(tmp_path, "run_restore_drill.yml", extravars)
    files = sorted(glob.glob(str(tmp_path / "controller" / "evidence" / "staging" / "*.json")), key=os.path.getmtime)
    record = json.load(open(files[-1])) if files else None
    line = (tmp_path / "controller" / "log.md").read_text().strip().splitlines()[-1]
    return run, record, line


def admin(cluster):
    return db.connect(Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile), "postgres", autocommit=True)


def drop_scratch(cluster, name):
    conn = admin(cluster)
    try:
        return scratch.drop(conn, name)
    finally:
        conn.close()


def source_roles_on(cluster):
    return cluster.psql(f"SELECT rolname FROM pg_roles WHERE rolname IN ({', '.join(repr(r) for r in ROLES)})").split()


def test_rich_database_drilled_onto_fresh_staging_is_the_database(rich, fresh_staging, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    manifest = rich.manifest()
    fingerprint = manifest["fingerprint"]
    objects = fingerprint["objects"]
    # What the backup recorded: owners, GRANTs, column and default privileges, RLS, policies, large objects, odd names.
    assert objects["schema app"]["owner"] == "rich_owner" and "rich_reader=U/rich_owner" in objects["schema app"]["acl"]
    assert objects["table app.customers"]["rls"] and objects["table app.customers"]["force_rls"]
    assert objects["table app.customers"]["column_acls"] == {"id": ["rich_writer=r/rich_owner"], "name": ["rich_writer=r/rich_owner"]}
    assert objects["policy tenant_rows on app.invoices"]["roles"] == ["rich_reader"]
    assert objects["default privileges of rich_owner in schema app on tables"]["acl"] == ["rich_reader=r/rich_owner", "rich_writer=arw/rich_owner"]
    assert objects["table app.invoices_2025"]["partition_of"] == "app.invoices"
    assert 'table "a.b".c' in objects and 'table a."b.c"' in objects and 'table "Rechnungsbüro Ω"."Kunden Liste"' in objects
    assert objects["sequence app.receipt_no"]["last_value"] == 1234
    assert fingerprint["large_objects"]["count"] == 2 and fingerprint["large_objects"]["owners"] == {"postgres": 1, "rich_owner": 1}
    assert {"extension citext", "extension hstore", "extension pg_trgm"} <= set(objects)
    assert '"a.b".c' in manifest["row_counts"] and 'a."b.c"' in manifest["row_counts"]  # two tables, two keys

    assert source_roles_on(fresh_staging) == []
    run, record, line = drill(tmp_path, rich, fresh_staging, pgdrill_drill_keep="always")
    assert run.status == "successful", run.stdout[-5000:]
    assert record["outcome"] == "passed" and line.endswith("· PASSED"), line
    assert record["fidelity"]["ok"] and record["fidelity"]["objects"] == len(objects) and record["fidelity"]["large_objects"] == 2
    scratch = record["scratch_database"]
    try:
        # The restore is the database: the same schema dump, and the same fingerprint taken afresh.
        assert schema_dump(fresh_staging, scratch) == schema_dump(rich.cluster, rich.db)
        assert fresh_staging.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()", scratch) == "rich_owner"
        assert fresh_staging.psql("SELECT count(*) FROM pg_largeobject_metadata", scratch) == "2"
        # Roles the drill made: no password, no login.
        assert (
            fresh_staging.psql(
                "SELECT string_agg(rolname || ':' || rolcanlogin || ':' || (rolpassword IS NULL), ',' ORDER BY rolname)"
                " FROM pg_authid WHERE rolname LIKE 'rich\\_%'"
            )
            == "rich_owner:false:true,rich_reader:false:true,rich_writer:false:true"
        )
    finally:
        dropped = drop_scratch(fresh_staging, scratch)
    assert dropped["dropped"] and sorted(dropped["roles_dropped"]) == sorted(ROLES)
    assert source_roles_on(fresh_staging) == []  # the kept roles went with their database

    # The same drill with defaults keeps nothing of the source on staging.
    run, record, line = drill(tmp_path, rich, fresh_staging)
    assert run.status == "successful" and record["outcome"] == "passed"
    assert source_roles_on(fresh_staging) == [] and sorted(record["roles_dropped"]) == sorted(ROLES)


def test_scratch_cleanup_refuses_a_database_pgdrill_did_not_make(rich):
    with pytest.raises(PgdrillError, match="not a scratch database made by pgdrill"):
        drop_scratch(rich.cluster, rich.db)
    assert rich.cluster.psql("SELECT count(*) FROM app.customers", rich.db) == "300"


def test_owners_and_privileges_left_out_are_named_in_the_outcome(rich, fresh_staging, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    # Globals stay on: a policy names its roles, so even a restore without owners and GRANTs needs them.
    run, record, line = drill(tmp_path, rich, fresh_staging, pgdrill_drill_no_owner=True, pgdrill_drill_no_privileges=True)
    assert run.status == "successful", run.stdout[-5000:]
    assert record["not_restored"] == ["ownership", "privileges"]
    assert line.endswith("PASSED (ownership and privileges not restored)"), line
    fingerprint_check = record["checks"][0]
    assert fingerprint_check["ok"] and "(ownership and privileges not compared)" in fingerprint_check["detail"]


def test_a_set_that_lost_a_grant_fails_naming_it(rich, fresh_staging, tmp_path, monkeypatch):
    """A doctored set: its archive lacks one GRANT (as if pg_dump or the restore had lost it), its
    checksums are right, its fingerprint is the database's. The drill must not pass."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    pg = rich.cluster
    pg.psql('CREATE DATABASE "rich_doctored" TEMPLATE "rich"')
    try:
        pg.psql('REVOKE SELECT ON "Rechnungsbüro Ω"."Kunden Liste" FROM rich_reader', "rich_doctored")
        env = dict(os.environ, **pg.env("rich_doctored"))
        archive = subprocess.run([pg.bin("pg_dump"), "--format=custom", "--compress=0"], env=env, capture_output=True, check=True).stdout
    finally:
        pg.psql('DROP DATABASE "rich_doctored" WITH (FORCE)')
    manifest_path = glob.glob(str(rich.backups / "rich_manifest_*.json"))[0]
    manifest = json.load(open(manifest_path))
    entry = next(f for f in manifest["files"] if f["kind"] == "db")
    path = rich.backups / entry["name"]
    if entry["name"].endswith(".zst"):
        archive = subprocess.run(["zstd", "-q", "-c"], input=archive, capture_output=True, check=True).stdout
    path.write_bytes(archive)
    entry.update(size=len(archive), sha256=hashlib.sha256(archive).hexdigest())
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    run, record, line = drill(tmp_path, rich, fresh_staging)
    assert run.status == "failed"
    message = run.task("Fail the play when the drill failed")["res"]["msg"]
    assert "failed at step 'restore'" in message and "differs from the backup's fingerprint" in message, message
    assert 'table "Rechnungsbüro Ω"."Kunden Liste": acl differs' in message and "rich_reader=r/rich_owner" in message
    assert record["outcome"] == "failed" and record["fidelity"]["ok"] is False
    assert [d["object"] for d in record["fidelity"]["differences"]] == ['table "Rechnungsbüro Ω"."Kunden Liste"']
    assert line.endswith("FAILED at restore") and source_roles_on(fresh_staging) == []


def test_pg18_source_needs_and_gets_a_client_that_reads_its_archive(tmp_path, pg18, staging18, monkeypatch):
    """A PostgreSQL 18 source backed up with pg_dump 18. Staging's default client (15) cannot read
    the archive: the drill says so and how to fix it; with pgdrill_drill_pg_bin_dir it passes."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    source = Source(pg18, tmp_path, name="rich18")
    try:
        assert source.manifest()["client"]["pg_dump_major"] == 18
        run, record, line = drill(tmp_path, source, staging18, pgdrill_drill_pg_bin_dir="")
        assert run.status == "failed"
        message = run.task("Fail the play when the drill failed")["res"]["msg"]
        assert "failed at step 'verify on arrival'" in message and "written by pg_dump 18" in message, message
        assert "pgdrill_drill_pg_bin_dir" in message and "postgresql-client-18" in message
        run, record, line = drill(tmp_path, source, staging18, pgdrill_drill_pg_bin_dir=staging18.bindir)
        assert run.status == "successful", run.stdout[-5000:]
        assert record["pg_restore"] == os.path.join(staging18.bindir, "pg_restore") and record["fidelity"]["ok"]
        assert record["server_majors"] == {"source": 18, "target": 18, "note": ""} and line.endswith("· PASSED")
    finally:
        source.drop()


def test_pg15_set_drilled_into_pg18_is_an_upgrade_rehearsal(rich, staging18, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    run, record, line = drill(tmp_path, rich, staging18)
    assert run.status == "successful", run.stdout[-5000:]
    assert record["server_majors"] == {"source": rich.cluster.major, "target": 18, "note": f"upgrade rehearsal {rich.cluster.major} -> 18"}
    assert record["fidelity"]["ok"]
    # What the newer major explains is noted, not failed: citext's default version moved, and owners
    # hold the MAINTAIN privilege that PostgreSQL 17 introduced.
    notes = {n["object"]: n for n in record["fidelity"]["notes"]}
    assert notes["extension citext"]["what"] == "version differs"
    assert notes["table app.customers"]["what"] == "acl differs" and "rich_owner=arwdDxtm/rich_owner" in notes["table app.customers"]["found"]
    assert {n["what"] for n in notes.values()} == {"version differs", "acl differs"}
    assert f"upgrade rehearsal {rich.cluster.major} -> 18" in line and line.startswith("- ") and "PASSED (" in line
    assert source_roles_on(staging18) == []


def test_partial_restore_of_tables_and_schemas(rich, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    pg = rich.cluster
    base = {"pgdrill_config_path": str(rich.config), "pgdrill_restore_database": rich.db}
    tables = playbook_run(
        tmp_path, "restore_database.yml", dict(base, pgdrill_restore_target="rich_invoices", pgdrill_restore_tables=["app.invoices", '"a.b".c', "app.user"])
    )
    schemas = playbook_run(tmp_path, "restore_database.yml", dict(base, pgdrill_restore_target="rich_app", pgdrill_restore_schemas=["app"]))
    try:
        assert tables.status == "successful", tables.stdout[-5000:]
        restored = pg.psql(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')", "rich_invoices"
        )
        assert set(restored.splitlines()) == {'"a.b".c', "app.invoices", "app.invoices_2025", "app.invoices_2026", 'app."user"'}
        assert pg.psql("SELECT count(*) FROM app.invoices", "rich_invoices") == "2000"
        assert pg.psql("SELECT count(*) FROM pg_policy", "rich_invoices") == "1"  # its policy came with it
        result = tables.task("Restore the backup set")["res"]
        assert result["fidelity"]["ok"] and result["not_restored"] == ['everything outside table app.invoices, table "a.b".c, table app.user']
        assert result["row_counts"]["tables"] == 4  # the table's partitions, "a.b".c and app."user" (a keyword, quoted)
        assert schemas.status == "successful", schemas.stdout[-5000:]
        assert pg.psql("SELECT count(*) FROM app.customers", "rich_app") == "300"
        assert pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname <> 'app' AND schemaname NOT IN ('pg_catalog', 'information_schema')", "rich_app") == "0"
        unknown = playbook_run(tmp_path, "restore_database.yml", dict(base, pgdrill_restore_target="rich_none", pgdrill_restore_tables=["app.nope"]))
        assert unknown.status == "failed" and "the archive has no table app.nope" in unknown.task("Restore the backup set")["res"]["msg"]
    finally:
        for name in ("rich_invoices", "rich_app", "rich_none"):
            pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
