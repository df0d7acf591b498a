"""Restore drills and the guarded restore, in real ansible-playbook runs against two real clusters on
this machine: a source (the production stand-in) and a staging server.

The checks are the ez360pm inventory's own (inventories/ez360pm/group_vars/pgdrill_staging.yml), and
the post-restore commands are a minimal Django project's migrate and check, run against the restored
database the way the seed's procedure runs them."""

import glob
import json
import os
import shutil
import stat
import sys
import tempfile

import pytest
import yaml

from helpers import REPO, DJANGO, database_fingerprint as fingerprint, playbook_run, run_cli

EZ360PM = yaml.safe_load(open(os.path.join(REPO, "inventories", "ez360pm", "group_vars", "pgdrill_staging.yml")))


@pytest.fixture(scope="module")
def staging():
    from pgdrill_lab.cluster import Cluster

    with Cluster(name="staging") as cluster:
        yield cluster


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

        def drill(self, check=False, source_user=None, **overrides):
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
            return playbook_run(tmp_path, "run_restore_drill.yml", extravars, check=check, source_user=source_user)

        def evidence(self):
            files = sorted(glob.glob(str(self.controller / "evidence" / "staging" / "*.json")), key=os.path.getmtime)
            return json.load(open(files[-1]))

        def leftovers(self, run):
            """What the transfer made on its way and left: in the controller's transfer directory, a tar
            on staging, the source's private directory."""
            transfer = self.controller / "transfer" / "staging"
            found = [str(transfer / name) for name in (os.listdir(transfer) if transfer.is_dir() else [])]
            found += glob.glob(str(tmp_path / "staging-work" / "*.tar"))
            made = run.task("Make a private directory on the source for the tar")["res"].get("path")
            return found + ([made] if made and os.path.exists(made) else [])

        def scratch_databases(self):
            return staging.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drill_%'").split()

    return Env()


def test_drill_passes_and_leaves_evidence(drill_env, tmp_path):
    before = fingerprint(drill_env.source, drill_env.db)
    run = drill_env.drill(pgdrill_drill_metrics_dir=str(tmp_path))
    assert run.status == "successful", run.stdout[-5000:]
    # The connection's own user (root here) reads the set: it is fetched without become, streamed, not
    # read whole into memory (what fetch does under become).
    assert run.task("Can the source's connection user read the set without become")["res"]["stat"]["readable"] is True
    # A custom-format set it can read travels as it is, file by file: no tar, no extra copy on the source.
    fetched = [result["item"] for result in run.task("Fetch the set to the controller, streamed (without become)")["res"]["results"]]
    assert (
        run.task("Pack the set into one uncompressed tar")["event"] == "runner_on_skipped" and len(fetched) == 3 and any("_db_" in name for name in fetched)
    ), fetched
    assert drill_env.leftovers(run) == []  # nothing of the set stays on the controller
    record = drill_env.evidence()
    assert record["outcome"] == "passed" and record["failed_step"] is None
    assert record["source_host"] == "source" and record["database"] == drill_env.db and record["set"].startswith("ez360pm_")
    assert record["transfer"] == "controller"  # auto, with no off-host copy and no leave to pull directly
    manifest = json.load(open(glob.glob(str(drill_env.backups / "ez360pm_manifest_*.json"))[0]))
    dump = next(f for f in manifest["files"] if f["kind"] == "db")
    assert record["sha256"] == dump["sha256"]
    assert record["tool_version"] == manifest["tool"]["version"] and record["pg_dump_version"] == manifest["client"]["pg_dump_version"]
    assert set(record["timings"]) >= {"pick the set", "verify at the source", "transfer", "verify on arrival", "restore", "smoke checks", "cleanup"}
    assert record["timings"]["restore"] > 0 and record["restore_timings"]["pg_restore"] > 0
    names = [check["name"] for check in record["checks"]]
    assert names[:4] == ["fingerprint against the backup", "row counts against the manifest", "migrate", "check"]
    assert record["fidelity"]["ok"] and record["fidelity"]["objects"] > 20 and record["not_restored"] == []
    assert record["started_at"].endswith("Z") and record["finished_at"].endswith("Z")
    majors = record["server_majors"]
    assert majors["source"] == majors["target"] == drill_env.source.major and majors["note"] == ""
    # The exact commands, as argument lists: the globals went to psql on stdin, filtered, then pg_restore.
    psql, pg_restore = record["restore_commands"][0], record["restore_commands"][-1]
    assert psql["argv"][0].endswith("psql") and psql["argv"][-2:] == ["-f", "-"] and "_globals_" in psql["stdin"]
    assert "left out the statements for roles the target already has: postgres" in psql["stdin"]
    assert os.path.basename(pg_restore["argv"][0]) == "pg_restore" and "--exit-on-error" in pg_restore["argv"]
    assert {"login", "company switch", "create client", "create project", "create invoice", "P&L report", "balance sheet report"} <= set(names)
    assert all(check["ok"] for check in record["checks"])
    line = drill_env.log.read_text().strip().splitlines()[-1]
    assert line.startswith("- 20") and record["set"] in line and line.endswith("PASSED") and f"{len(names)}/{len(names)} checks ok" in line
    assert drill_env.scratch_databases() == []  # dropped on success
    assert fingerprint(drill_env.source, drill_env.db) == before  # the source is never touched
    drill_metrics = (tmp_path / "pgdrill_drill_ez360pm.prom").read_text()
    assert 'pgdrill_drill_last_passed{series="ez360pm",source="source"} 1' in drill_metrics
    assert f'pgdrill_drill_last_restore_seconds{{series="ez360pm",source="source"}} {record["timings"]["restore"]}' in drill_metrics


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


@pytest.mark.parametrize(
    "case,overrides,step,words",
    [
        (
            "failing SQL check",
            {"pgdrill_drill_checks": [{"name": "impossible", "sql": "SELECT 1 WHERE false", "expect": "rows"}]},
            "smoke checks",
            "'impossible' failed",
        ),
        (
            "failing post-restore command",
            {"pgdrill_drill_post_restore_commands": [{"name": "migrate", "command": [sys.executable, "-c", "raise SystemExit(3)"]}]},
            "smoke checks",
            "'migrate' failed: exit 3",
        ),
        ("missing set", {"pgdrill_drill_set": "ez360pm_20200101_000000_utc"}, "pick the set", "there is no complete backup set ez360pm_20200101_000000_utc"),
        ("stale set", {"pgdrill_drill_max_age_hours": 0.0001}, "pick the set", "h old (limit"),
    ],
)
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


def test_drill_fails_at_a_controller_transfer_it_cannot_make(drill_env):
    drill_env.controller.mkdir()
    (drill_env.controller / "transfer").write_text("a file where the controller's transfer directory should be")
    run = drill_env.drill()
    assert run.status == "failed"
    message = run.task("Fail the play when the drill failed")["res"]["msg"]
    assert "failed at step 'transfer'" in message, message
    assert drill_env.evidence()["failed_step"] == "transfer" and drill_env.log.read_text().strip().endswith("FAILED at transfer")
    assert drill_env.scratch_databases() == []


def test_a_set_only_root_can_read_travels_as_one_tar_fetched_without_become(drill_env):
    """The source is reached as an unprivileged user (as over SSH) who cannot read the backups: the set
    is packed under become into one tar in that user's private directory, given to that user, and
    fetched without become, streamed (under become, fetch reads a file whole into memory). A drill
    that fails after the transfer leaves no tar on the source, the controller or staging."""
    from pgdrill_lab.cluster import LAB_USER

    impossible = [{"name": "impossible", "sql": "SELECT 1 WHERE false", "expect": "rows"}]
    spool = tempfile.mkdtemp(prefix="pgdrill-spool-")  # the source's temporary directory for the tar, as /tmp is
    os.chmod(spool, 0o1777)
    try:
        run = drill_env.drill(
            source_user=LAB_USER, pgdrill_drill_checks=impossible, pgdrill_drill_post_restore_commands=[], pgdrill_drill_source_temp_dir=spool
        )
        assert os.listdir(spool) == []
    finally:
        shutil.rmtree(spool)
    assert run.status == "failed"
    read = run.task("Can the source's connection user read the set without become")["res"]
    assert read.get("msg") == "Permission denied" and "stat" not in read, read
    private = run.task("Make a private directory on the source for the tar")["res"]
    assert private["owner"] == LAB_USER and private["mode"] == "0700" and os.path.dirname(private["path"]) == spool, private
    # The connection user fetched the tar itself (0600): it could only because the tar is its own.
    (fetched,) = run.task("Fetch the set to the controller, streamed (without become)")["res"]["results"]
    record = drill_env.evidence()
    assert fetched["item"] == f"{record['set']}.tar" and fetched["changed"] is True, fetched
    assert record["transfer"] == "controller" and record["failed_step"] == "smoke checks", record["error"]
    assert record["timings"]["verify on arrival"] > 0 and record["timings"]["restore"] > 0  # the set arrived whole and restored
    assert drill_env.leftovers(run) == [] and drill_env.scratch_databases() == []


def test_drill_fails_at_cleanup_when_the_scratch_database_is_no_longer_pgdrills(drill_env, staging):
    """A post-restore command removes the scratch mark: the cleanup refuses to drop a database
    pgdrill cannot tell is its own, and the drill fails there, naming it."""
    unmark = "DO $$ BEGIN EXECUTE format('COMMENT ON DATABASE %I IS NULL', current_database()); END $$"
    run = drill_env.drill(
        pgdrill_drill_post_restore_commands=[{"name": "unmark", "command": [drill_env.source.bin("psql"), "-X", "-c", unmark]}], pgdrill_drill_checks=[]
    )
    assert run.status == "failed"
    message = run.task("Fail the play when the drill failed")["res"]["msg"]
    assert "failed at step 'cleanup'" in message and "not a scratch database made by pgdrill" in message, message
    (left,) = drill_env.scratch_databases()
    staging.psql(f'DROP DATABASE "{left}" WITH (FORCE)')


def test_corrupted_set_fails_at_the_source(drill_env):
    dump = glob.glob(str(drill_env.backups / "ez360pm_db_*"))[0]
    with open(dump, "r+b") as handle:
        handle.seek(200)
        handle.write(b"\xff\x00corrupt")
    run = drill_env.drill()
    assert run.status == "failed"
    message = run.task("Fail the play when the drill failed")["res"]["msg"]
    assert "failed at step 'verify at the source'" in message and "checksum" in message


@pytest.mark.parametrize("keep", [{"pgdrill_drill_keep": "on_failure"}, {"pgdrill_drill_keep_on_failure": True}], ids=["keep on_failure", "deprecated switch"])
def test_failed_drill_can_keep_its_database(drill_env, staging, keep):
    run = drill_env.drill(**keep, pgdrill_drill_checks=[{"name": "impossible", "sql": "SELECT 1 WHERE false", "expect": "rows"}])
    assert run.status == "failed"
    kept = drill_env.scratch_databases()
    assert len(kept) == 1 and drill_env.evidence()["scratch_database_kept"] is True
    # The next drill of the same set gets a scratch database of its own, beside the kept one.
    again = drill_env.drill()
    assert again.status == "successful", again.stdout[-4000:]
    assert drill_env.evidence()["scratch_database"] != kept[0] and drill_env.scratch_databases() == kept
    staging.psql(f'DROP DATABASE "{kept[0]}" WITH (FORCE)')


def test_passing_drill_can_keep_its_database_for_inspection(drill_env, staging, tmp_path):
    """Of a directory-format set: it travels through the controller as one tar (one fetch and one copy
    whatever the number of tables), unpacked on staging with the modes of the set, and verify on
    arrival checks every file. Nothing of it stays on the source or the controller."""
    config = tmp_path / "source.conf"
    config.write_text(config.read_text().replace("[pgdrill]\n", "[pgdrill]\nformat = directory\n"))
    run_cli("--config", str(config))
    run = drill_env.drill(pgdrill_drill_keep="always")
    assert run.status == "successful", run.stdout[-4000:]
    record = drill_env.evidence()
    dump = next(entry for entry in record["files"] if entry["kind"] == "db")
    assert record["transfer"] == "controller" and dump["format"] == "directory"
    packed = run.task("Pack the set into one uncompressed tar")["res"]
    assert sorted(name for name in packed["members"] if "/" in name) == sorted(f"{dump['name']}/{member['name']}" for member in dump["members"])
    fetched = [result["item"] for result in run.task("Fetch the set to the controller, streamed (without become)")["res"]["results"]]
    assert fetched == [f"{record['set']}.tar"] and packed["archive"].endswith(fetched[0])
    assert drill_env.leftovers(run) == []  # the tar is gone from the source, the controller and staging
    kept = drill_env.scratch_databases()
    assert record["outcome"] == "passed" and record["scratch_database_kept"] is True and kept == [record["scratch_database"]]
    assert staging.psql("SELECT count(*) FROM invoices", kept[0]) == drill_env.source.psql("SELECT count(*) FROM invoices", drill_env.db)
    # The copy on staging stays with the database, but never the globals: they hold the source's role
    # password hashes (the source still has them). The evidence and the log line say what was kept and where.
    staging_copy = tmp_path / "staging-work" / record["set"]
    globals_file = next(entry["name"] for entry in record["files"] if entry["kind"] == "globals")
    dump_file = next(entry["name"] for entry in record["files"] if entry["kind"] == "db")
    assert dump_file in os.listdir(staging_copy) and not [name for name in os.listdir(staging_copy) if "_globals_" in name], os.listdir(staging_copy)
    assert sorted(os.listdir(staging_copy / dump_file)) == sorted(member["name"] for member in dump["members"])
    assert stat.S_IMODE(os.stat(staging_copy / dump_file).st_mode) == 0o700
    assert {stat.S_IMODE(os.stat(path).st_mode) for path in (staging_copy / dump_file).iterdir()} == {0o600}
    assert record["kept_copies"] == [f"staging:{staging_copy}"], record["kept_copies"]
    assert record["kept_copies_left_out"] == [globals_file]
    line = drill_env.log.read_text().strip().splitlines()[-1]
    assert f"kept: scratch database {kept[0]}, copy of the set at staging:{staging_copy} without {globals_file}" in line
    assert line.endswith("PASSED"), line
    # Django's migrate ran against the restored copy, and only there.
    assert int(staging.psql("SELECT count(*) FROM django_migrations WHERE app = 'ledger'", kept[0])) >= 1
    assert drill_env.source.psql("SELECT to_regclass('django_migrations') IS NULL", drill_env.db) == "t"
    staging.psql(f'DROP DATABASE "{kept[0]}" WITH (FORCE)')
    # The next drill of the same set starts from an empty transfer directory: what a killed drill left
    # on the controller (a file in the dump's directory, a tar of other bytes) does not travel to staging.
    controller_copy = drill_env.controller / "transfer" / "staging" / record["set"]
    (controller_copy / dump_file).mkdir(parents=True)
    (controller_copy / dump_file / "left-by-an-earlier-drill").write_text("not the set's")
    (controller_copy / fetched[0]).write_text("not the set's tar")
    again = drill_env.drill(pgdrill_drill_checks=[], pgdrill_drill_post_restore_commands=[])
    assert again.status == "successful" and drill_env.evidence()["outcome"] == "passed", again.stdout[-4000:]


def test_a_repeated_drill_of_the_same_set_adds_a_line_of_its_own_to_the_drill_log(drill_env):
    """Each drill is a line: the second drill of the same set (the role appends with lineinfile, which
    adds no line equal to one already there) gets its own line, naming its own evidence's drill id."""
    ids = []
    for _ in range(2):
        run = drill_env.drill(pgdrill_drill_checks=[], pgdrill_drill_post_restore_commands=[])
        assert run.status == "successful", run.stdout[-4000:]
        ids.append(drill_env.evidence()["drill_id"])
    lines = drill_env.log.read_text().strip().splitlines()
    assert len(lines) == 2 and ids[0] != ids[1], lines
    sets = {line.split(" · set ")[1].split(" · ")[0] for line in lines}
    assert len(sets) == 1, lines  # the same set, drilled twice
    for line, drill_id in zip(lines, ids):
        assert f" · drill {drill_id} · " in line, (line, drill_id)


def test_guarded_production_restore(tmp_path, pg, sample_db, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = tmp_path / "host.conf"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'b'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n[database {sample_db}]\n"
    )
    run_cli("--config", str(config))
    expected = pg.psql("SELECT count(*) FROM invoices", sample_db)
    pg.psql("TRUNCATE invoices CASCADE", sample_db)  # the disaster
    base = {
        "pgdrill_config_path": str(config),
        "pgdrill_restore_database": sample_db,
        "pgdrill_restore_target": sample_db,
        "pgdrill_restore_terminate_connections": True,
    }
    refused = playbook_run(tmp_path, "restore_database.yml", base)
    assert refused.status == "failed"
    assert "the database this backup was taken from" in refused.task("Restore the backup set")["res"]["msg"]
    wrong = playbook_run(tmp_path, "restore_database.yml", dict(base, pgdrill_restore_confirm="yes"))
    assert wrong.status == "failed" and "must equal pgdrill_restore_target" in wrong.task("Check the request")["res"]["msg"]
    # An empty confirmation with an empty target confirms nothing: refused before any restore.
    empty = playbook_run(tmp_path, "restore_database.yml", dict(base, pgdrill_restore_confirm="", pgdrill_restore_target=""))
    assert empty.status == "failed" and "neither may be empty" in empty.task("Check the request")["res"]["msg"]
    assert pg.psql("SELECT count(*) FROM invoices", sample_db) != expected  # nothing was touched
    done = playbook_run(
        tmp_path,
        "restore_database.yml",
        dict(
            base,
            pgdrill_restore_confirm=sample_db,
            pgdrill_restore_post_commands=[{"name": "check", "command": [sys.executable, "manage.py", "check", "--database", "default"], "chdir": DJANGO}],
        ),
    )
    assert done.status == "successful", done.stdout[-4000:]
    assert pg.psql("SELECT count(*) FROM invoices", sample_db) == expected
    shown = done.task("Show what was run, to follow or repeat by hand")["res"]["msg"]
    assert any("pg_restore --exit-on-error" in " ".join(map(str, entry)) for entry in shown if isinstance(entry, list))
    fresh = playbook_run(
        tmp_path,
        "restore_database.yml",
        {
            "pgdrill_config_path": str(config),
            "pgdrill_restore_database": sample_db,
            "pgdrill_restore_target": sample_db + "_copy",
            "pgdrill_restore_globals": True,
        },
    )
    assert fresh.status == "successful" and pg.psql("SELECT count(*) FROM invoices", sample_db + "_copy") == expected
    shown = fresh.task("Show what was run, to follow or repeat by hand")["res"]["msg"]
    assert "-f -  # stdin: " in shown[2][0] and "_globals_" in shown[2][0]  # the globals went to psql first, filtered
    assert shown[-1].startswith("compared with the backup: ") and "objects match its fingerprint" in shown[-1]
    assert shown[3].startswith("globals: replayed without the statements for roles this server already has: ") and "postgres" in shown[3]
    pg.psql(f'DROP DATABASE "{sample_db}_copy" WITH (FORCE)')


def test_drill_replays_globals_for_owners_and_grants(tmp_path, pg, staging, monkeypatch):
    """A source whose tables belong to its own roles: by default the drill replays the set's globals,
    so owners and GRANTs are restored and compared; the roles it made have no password and no
    login, and are gone after the drill. Without globals the restore fails naming the missing role."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    tag = os.urandom(3).hex()
    owner, reader, dbname = f"pgdrill_owner_{tag}", f"pgdrill_reader_{tag}", f"roles_{tag}"
    pg.psql(f"CREATE ROLE {owner} NOLOGIN")
    pg.psql(f"CREATE ROLE {reader} LOGIN PASSWORD 'reader-{tag}'")
    pg.psql(f"CREATE DATABASE {dbname} OWNER {owner}")
    pg.psql(
        f"CREATE TABLE ledger AS SELECT g AS id FROM generate_series(1, 50) g; ALTER TABLE ledger OWNER TO {owner}; GRANT SELECT ON ledger TO {reader}", dbname
    )
    config = tmp_path / "roles.conf"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'b'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n[database {dbname}]\n"
    )
    run_cli("--config", str(config))
    drill = {
        "pgdrill_drill_source_host": "source",
        "pgdrill_drill_database": dbname,
        "pgdrill_drill_source_config": str(config),
        "pgdrill_drill_work_dir": str(tmp_path / "work"),
        "pgdrill_drill_host": staging.host,
        "pgdrill_drill_port": staging.port,
        "pgdrill_drill_login_user": "postgres",
        "pgdrill_drill_passfile": staging.passfile,
        "pgdrill_drill_controller_dir": str(tmp_path / "controller"),
        "pgdrill_drill_log": str(tmp_path / "controller" / "log.md"),
        "pgdrill_drill_checks": [
            {"name": "owner kept", "sql": f"SELECT 1 FROM pg_tables WHERE tablename = 'ledger' AND tableowner = '{owner}'", "expect": "rows"},
            {"name": "grant kept", "sql": f"SELECT 1 WHERE has_table_privilege('{reader}', 'public.ledger', 'SELECT')", "expect": "rows"},
            {
                "name": "no password, no login",
                "sql": f"SELECT 1 FROM pg_authid WHERE rolname = '{reader}' AND rolpassword IS NULL AND NOT rolcanlogin",
                "expect": "rows",
            },
        ],
    }

    def evidence():
        return json.load(open(sorted(glob.glob(str(tmp_path / "controller" / "evidence" / "staging" / "*.json")), key=os.path.getmtime)[-1]))

    def ours(roles):
        """This test's roles among those named: the set's globals hold every role of the shared cluster,
        including what other tests left there, and those are not this test's to count."""
        return sorted(role for role in roles if role in (owner, reader, "postgres"))

    def source_roles_on_staging():
        return staging.psql(f"SELECT rolname FROM pg_roles WHERE rolname IN ('{owner}', '{reader}') ORDER BY 1").split()

    try:
        without = playbook_run(tmp_path, "run_restore_drill.yml", dict(drill, pgdrill_drill_restore_globals=False))
        assert without.status == "failed"
        message = without.task("Fail the play when the drill failed")["res"]["msg"]
        assert "failed at step 'restore'" in message and f'role "{owner}" does not exist on this server' in message, message
        assert "replay the set's globals first" in message and "Command was" not in message.split("Fix:")[0].split("does not exist")[0]
        done = playbook_run(tmp_path, "run_restore_drill.yml", drill)
        assert done.status == "successful", done.stdout[-5000:]
        record = evidence()
        assert record["outcome"] == "passed" and all(c["ok"] for c in record["checks"]) and len(record["checks"]) == 5
        assert record["restore_timings"]["globals"] > 0 and record["not_restored"] == []
        assert ours(record["roles_created"]) == sorted([owner, reader]) == ours(record["roles_dropped"])
        # Staging's own superuser was left alone: the drill's connection still works with staging's password.
        assert ours(record["globals_roles_left_alone"]) == ["postgres"] and staging.psql("SELECT 1") == "1"
        assert source_roles_on_staging() == []  # staging keeps no role of the source after the drill
        assert drill_env_line(tmp_path).endswith("· PASSED")
        # With role passwords asked for, the roles get the source's hash and LOGIN (and are still dropped after).
        with_passwords = playbook_run(
            tmp_path,
            "run_restore_drill.yml",
            dict(
                drill,
                pgdrill_drill_role_passwords=True,
                pgdrill_drill_checks=[
                    {
                        "name": "source's password",
                        "sql": f"SELECT 1 FROM pg_authid WHERE rolname = '{reader}' AND rolpassword LIKE 'SCRAM%' AND rolcanlogin",
                        "expect": "rows",
                    }
                ],
            ),
        )
        assert with_passwords.status == "successful", with_passwords.stdout[-5000:]
        assert source_roles_on_staging() == []
        # A role staging already has is never changed, and never dropped.
        staging.psql(f"CREATE ROLE {reader} LOGIN PASSWORD 'staging-{tag}'")
        before = staging.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{reader}'")
        again = playbook_run(tmp_path, "run_restore_drill.yml", dict(drill, pgdrill_drill_checks=[]))
        assert again.status == "successful", again.stdout[-5000:]
        assert ours(evidence()["globals_roles_left_alone"]) == sorted(["postgres", reader]) and ours(evidence()["roles_dropped"]) == [owner]
        assert source_roles_on_staging() == [reader] and staging.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{reader}'") == before
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        for cluster in (pg, staging):
            cluster.psql(f"DROP ROLE IF EXISTS {reader}; DROP ROLE IF EXISTS {owner}")


def drill_env_line(tmp_path):
    return (tmp_path / "controller" / "log.md").read_text().strip().splitlines()[-1]
