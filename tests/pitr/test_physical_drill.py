"""The physical drill (issue 20, item 5), for real: a PostgreSQL 15 cluster archives its WAL with
pgBackRest from the distribution into SeaweedFS over TLS, encrypted, while a writer commits; drills
restore it into new private data directories on throwaway servers, to the latest WAL, a saved restore
point, a time and a logical set's restore point, and prove what they got, or fail when the proof does
not hold; a staging host of another major version is refused before anything is restored."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import pytest

from helpers import playbook_run, run_cli, write_config
from pgdrill import db, operations, pitr, throwaway
from pgdrill.config import Connection
from pgdrill.errors import PgdrillError
from pgdrill.drill_config import DrillConfig
from pgdrill.pitr_drill import PhysicalDrill
from pgdrill_lab.cluster import Cluster, pgserver_bindir
from pgdrill_lab.pgbackrest_lab import PgBackRestRepo
from pgdrill_lab.s3server import S3Server

STANZA = "main"


def _connection(cluster, dbname=None):
    return Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile, dbname=dbname)


class Writer(threading.Thread):
    """Commits one small transaction after another until stopped."""

    def __init__(self, connection):
        super().__init__(daemon=True)
        self.connection, self.stop, self.commits, self.error = connection, threading.Event(), 0, None

    def run(self):
        try:
            conn = db.connect(self.connection, "app")
            while not self.stop.is_set():
                conn.execute("INSERT INTO ledger (amount) VALUES (%s)", (self.commits % 97,))
                conn.execute("UPDATE totals SET total = total + 1 WHERE id = 1")
                conn.commit()
                self.commits += 1
                time.sleep(0.002)
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def halt(self):
        self.stop.set()
        self.join(30)
        assert self.error is None, self.error

    def run_for(self, commits):
        wanted = self.commits + commits
        while self.commits < wanted and self.error is None:
            time.sleep(0.02)
        assert self.error is None, self.error


@pytest.fixture(scope="module")
def repo():
    # Under /tmp and passable: the cluster's OS user runs pgBackRest and the throwaway servers in it.
    base = pathlib.Path(tempfile.mkdtemp(prefix="pgdrill-physical-"))
    os.chmod(base, 0o711)
    with S3Server(name="drill-s3", tls=True) as s3, Cluster(name="pitrdrill") as pg:
        # Commit timestamps let the drill measure a latest restore's RPO; no autovacuum commits behind the test's back.
        pg.psql("ALTER SYSTEM SET track_commit_timestamp = on")
        pg.psql("ALTER SYSTEM SET autovacuum = off")
        pg.psql("CREATE DATABASE app")
        pg.psql(
            "CREATE TABLE ledger (id bigserial PRIMARY KEY, amount int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());"
            "CREATE INDEX ledger_amount ON ledger (amount);"
            "CREATE TABLE totals (id int PRIMARY KEY, total bigint NOT NULL);"
            "INSERT INTO totals VALUES (1, 0);"
            "INSERT INTO ledger (amount) SELECT g % 50 FROM generate_series(1, 5000) g;",
            dbname="app",
        )
        # A tablespace (restored inside the drill's own directory, never at the source's path, which
        # here is on the same machine and in use) and an UNLOGGED table (empty after any physical
        # restore: not counted against the point).
        tablespace = base / "tablespace"
        tablespace.mkdir()
        if pg.os_user:
            shutil.chown(tablespace, pg.os_user, pg.os_user)
        pg.psql(f"CREATE TABLESPACE drill_space LOCATION '{tablespace}'")
        pg.psql(
            "CREATE TABLE archived (id int PRIMARY KEY, note text) TABLESPACE drill_space;"
            "INSERT INTO archived SELECT g, 'row ' || g FROM generate_series(1, 500) g;"
            "CREATE UNLOGGED TABLE sessions (id int PRIMARY KEY, token text);"
            "INSERT INTO sessions SELECT g, md5(g::text) FROM generate_series(1, 10) g;",
            dbname="app",
        )
        archive = PgBackRestRepo(pg, s3, "drill-tests", stanza=STANZA).setup()
        archive.backup("full")
        time.sleep(1.1)  # pgBackRest picks a time target's backup by whole-second stop times: the targets come later
        writer = Writer(_connection(pg))
        writer.start()
        yield pg, archive, writer, base
        writer.stop.set()
        writer.join(30)
    shutil.rmtree(base, ignore_errors=True)


def _config(pg, base, name, **extra):
    values = dict(
        database="app",
        prefix="app",
        connection=_connection(pg),
        evidence_dir=str(base / name / "evidence"),
        metrics_dir=str(base / name / "metrics"),
        work_dir=str(base / name / "work"),
        source_host="db1",
    )
    os.makedirs(values["metrics_dir"], exist_ok=True)
    os.makedirs(values["work_dir"], mode=0o711, exist_ok=True)
    values.update(extra)
    return DrillConfig(**values)


def _drill(pg, archive, base, name, target, **extra):
    config = _config(pg, base, name, **extra)
    physical = PhysicalDrill(target=target, stanza=STANZA, pgbackrest_config=archive.config_file, source=_connection(pg), recovery_timeout=120)
    return operations.scheduled_drill(config, physical)


def _metrics(directory):
    text = "".join(open(path).read() for path in glob.glob(os.path.join(directory, "*.prom")))
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def _save_point(point, directory):
    """A point record saved where pgdrill-backup mark saves it (``directory`` is <backup_dir>/points)."""
    return pitr.save_point(os.path.dirname(directory), dict(point, database="app", stanza=STANZA))


def _switch_and_wait(pg, archive):
    wal = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    pg.psql("SELECT pg_switch_wal()")
    archive.wait_archived(wal)


def test_drills_to_a_point_a_time_and_the_latest_wal_prove_what_they_restored(repo):
    pg, archive, writer, base = repo
    writer.run_for(100)
    point = pitr.mark(_connection(pg), "app", "pgdrill_drill_20261205T010000Z")
    point_file = _save_point(point, str(base / "points"))
    writer.run_for(100)
    moment = pg.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    writer.run_for(100)
    writer.halt()
    _switch_and_wait(pg, archive)
    source_rows = int(pg.psql("SELECT count(*) FROM ledger", dbname="app"))

    # A saved point: the restored database holds exactly the point's fingerprint and row counts.
    done = _drill(pg, archive, base, "point", f"point:{point_file}")
    record = done["record"]
    assert done["exit_code"] == 0, (record["failed_step"], record["error"], record["problems"])
    assert record["kind"] == "physical" and record["passed"] is True and record["outcome"] == "passed"
    assert record["target"] == {"type": "name", "value": point_file, "restore_point": point["name"], "point_file": point_file}
    assert record["proofs"]["fingerprint"] == "identical" and record["proofs"]["row_counts"] == "identical"
    assert record["proofs"]["amcheck"]["indexes"] > 3 and record["proofs"]["amcheck"]["failed"] == []
    assert record["backup_label"].endswith("F") and record["wal_range"]["start"] <= record["wal_range"]["stop"]
    assert record["reached"]["lsn"] and record["reached"]["commit_time"] <= point["created_at"]
    assert record["rpo_seconds"] is None and "restore point" in record["rpo_basis"]
    assert record["rto_seconds"] >= record["timings"]["restore"] + record["timings"]["recovery"] > 0
    assert not os.listdir(base / "point" / "work"), "the data directory is removed after the drill"
    [evidence] = glob.glob(str(base / "point" / "evidence" / "drill_app_*.json"))
    assert json.load(open(evidence))["passed"] is True and oct(os.stat(evidence).st_mode & 0o777) == "0o600"
    metrics = _metrics(base / "point" / "metrics")
    assert metrics['pgdrill_pitr_drill_last_passed{database="app",stanza="main"}'] == 1
    assert metrics['pgdrill_pitr_drill_last_rto_seconds{database="app",stanza="main"}'] == record["rto_seconds"]

    # A time: nothing inserted after it is there, and the RPO is the target against the newest commit recovered.
    check = {"name": "nothing after the target", "sql": f"SELECT 1 FROM ledger WHERE at > '{moment}' LIMIT 1", "expect": "none"}
    done = _drill(pg, archive, base, "time", f"time:{moment}", checks=(check,))
    record = done["record"]
    assert done["exit_code"] == 0, (record["failed_step"], record["error"], record["problems"])
    assert record["target"]["type"] == "time" and record["reached"]["commit_time"] <= record["target"]["value"]
    assert record["proofs"]["smoke"] == "passed" and record["proofs"]["fingerprint"] == "n/a"
    assert 0 <= record["rpo_seconds"] < 60 and record["rpo_basis"].startswith("the target time")

    # The latest WAL, through the command: every committed row is there, and nothing was lost (RPO 0).
    config_path = write_config(base / "pgdrill.conf", pg, "app", base / "backups")
    extra = {
        "database": "app",
        "source_dir": base / "backups",
        "source_host": "db1",
        "host": pg.host,
        "port": pg.port,
        "user": "postgres",
        "passfile": pg.passfile,
        "evidence_dir": base / "latest" / "evidence",
        "work_dir": base / "latest" / "work",
        "pitr_source": f"host={pg.host} port={pg.port} user=postgres passfile={pg.passfile}",
        "checks": json.dumps([{"name": "every row", "sql": f"SELECT 1 FROM ledger HAVING count(*) = {source_rows}", "expect": "rows"}]),
    }
    with open(config_path, "a", encoding="utf-8") as handle:
        handle.write("\n[drill]\n" + "".join(f"{key} = {value}\n" for key, value in extra.items()))
    done = run_cli("--config", config_path, "drill", "--physical", "--stanza", STANZA, "--pgbackrest-config", archive.config_file, "--json")
    outcome = json.loads(done.stdout)
    record = outcome["record"]
    assert "physical to latest" in outcome["log_line"] and "RPO 0.0 s" in outcome["log_line"] and "PASSED" in outcome["log_line"]
    assert record["passed"] and record["target"] == {"type": "latest", "value": None}
    assert record["rpo_seconds"] == 0 and "newest commit" in record["rpo_basis"]
    assert record["proofs"]["smoke"] == "passed" and writer.commits > 300


def test_a_point_whose_record_does_not_match_fails_the_drill(repo):
    pg, archive, writer, base = repo
    point = pitr.mark(_connection(pg), "app", "pgdrill_drill_20261205T020000Z")
    _switch_and_wait(pg, archive)
    archive.run("backup", "--type=incr", "--start-fast")  # a newer backup than the point: the drill must start from the one before it
    labels = [backup["label"] for backup in archive.info()["backups"]]
    first, newest = labels[0], labels[-1]
    point["row_counts"]["public.ledger"] += 1
    [index] = [key for key in point["fingerprint"]["objects"] if key.endswith("ledger_amount")]
    del point["fingerprint"]["objects"][index]
    done = _drill(pg, archive, base, "altered", f"point:{_save_point(point, str(base / 'altered-points'))}", keep="on_failure")
    record = done["record"]
    assert done["exit_code"] != 0 and record["passed"] is False and record["failed_step"] == "checks"
    assert record["proofs"]["row_counts"] == "different" and any("public.ledger:" in problem for problem in record["problems"])
    assert record["proofs"]["fingerprint"] == "different" and any("ledger_amount" in problem for problem in record["problems"])
    assert "not proved" in record["error"] and record["backup_label"] == first != newest
    # keep = on_failure: the failed drill's data directory stays, its server stopped, marked kept (never swept).
    assert record["data_directory_kept"] is True and os.path.isfile(os.path.join(record["data_directory"], "PG_VERSION"))
    assert not os.path.exists(os.path.join(record["data_directory"], "postmaster.pid"))
    assert throwaway.sweep_leftovers(str(base / "altered" / "work"), pg.bindir, None, now=time.time() + 2 * 86400) == []
    assert _metrics(base / "altered" / "metrics")['pgdrill_pitr_drill_last_passed{database="app",stanza="main"}'] == 0


def test_a_set_target_restores_the_logical_set_beside_the_physical_one_and_they_must_agree(repo, tmp_path):
    pg, archive, _writer, base = repo
    # A real backup with pitr_stanza: it marks its own restore point and dumps in that point's
    # snapshot while the writer keeps committing; the physical restore to the point must hold the
    # same rows as the logical set.
    backups = tmp_path / "backups"
    config_path = write_config(tmp_path / "pgdrill.conf", pg, "app", backups, pitr_stanza=STANZA, pitr_config=archive.config_file)
    writer = Writer(_connection(pg))
    writer.start()
    writer.run_for(20)
    commits = writer.commits
    run_cli("--config", config_path)
    after = writer.commits
    writer.halt()
    [manifest_path] = glob.glob(str(backups / "*_manifest_*.json"))
    manifest = json.load(open(manifest_path))
    assert manifest["restore_point"]["stanza"] == STANZA and after > commits  # the writer committed through the backup
    _switch_and_wait(pg, archive)

    record = _drill(pg, archive, base, "set", f"set:{manifest['set']}", source_dir=str(backups))["record"]
    assert record["outcome"] == "passed", (record["failed_step"], record["error"], record["problems"])
    assert record["target"]["type"] == "set" and record["target"]["restore_point"] == manifest["restore_point"]["name"] and record["set"] == manifest["set"]
    assert record["proofs"]["logical_equal"] == "equal" and record["proofs"]["row_counts"] == "identical"
    assert record["fidelity"]["ok"] and record["row_counts"]

    # A set whose recorded restore point is not the instant its dump holds (here: a later point):
    # the two restores disagree, and the drill says where.
    pg.psql("INSERT INTO ledger (amount) VALUES (-1)", dbname="app")  # a row the set cannot hold
    later = pitr.mark(_connection(pg), "app", "pgdrill_app_20261205T030000Z")
    archive.wait_archived(later["wal_file"])
    manifest["restore_point"] = {key: later[key] for key in ("name", "lsn", "wal_file", "created_at")} | {"stanza": STANZA}
    json.dump(manifest, open(manifest_path, "w"))
    record = _drill(pg, archive, base, "set-mismatch", f"set:{manifest['set']}", source_dir=str(backups))["record"]
    assert record["outcome"] == "failed" and record["proofs"]["logical_equal"] == "different"
    assert any(problem.startswith("table public.ledger: physical ") for problem in record["problems"]), record["problems"]


def test_a_staging_host_of_another_major_version_is_refused_before_any_restore(repo):
    pg, archive, _writer, base = repo
    done = _drill(pg, archive, base, "major", "latest", pg_bin_dir=pgserver_bindir())
    record = done["record"]
    assert done["exit_code"] != 0 and record["failed_step"] == "check versions"
    assert "PostgreSQL 15" in record["error"] and "PostgreSQL 16" in record["error"] and "pg_bin_dir" in record["error"]
    assert record["repository_major"] == 15 and record["staging_major"] == 16
    assert not os.path.exists(base / "major" / "work") or not os.listdir(base / "major" / "work")


def test_the_drill_module_in_check_mode_only_resolves_and_checks_versions_then_the_playbook_drills_for_real(repo, run_module, tmp_path, monkeypatch):
    pg, archive, _writer, base = repo
    args = {
        "kind": "physical",
        "stanza": STANZA,
        "pgbackrest_config": archive.config_file,
        "database": "app",
        "work_dir": str(base / "module-work"),
        "login_host": pg.host,
        "login_port": pg.port,
        "login_user": "postgres",
    }
    result, failed, _commands = run_module("pgdrill_drill", args, check_mode=True)
    assert not failed and result["msg"].startswith("would restore stanza main to latest"), result
    assert result["record"]["repository_major"] == result["record"]["staging_major"] == 15
    assert not os.path.exists(base / "module-work"), "check mode never restores"
    result, failed, _commands = run_module("pgdrill_drill", dict(args, pg_bin_dir=pgserver_bindir()), check_mode=True)
    assert failed and result["failed_step"] == "check versions" and "install postgresql-15 on staging" in result["msg"]
    # For real, through the playbook and the drill role (kind physical): restored, proved, removed,
    # the evidence collected on the controller and the log line saying what could not be measured.
    controller = base / "controller"
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))  # runner's ansible-playbook: this venv's
    extravars = {
        "pgdrill_drill_kind": "physical",
        "pgdrill_drill_database": "app",
        "pgdrill_drill_source_host": "source",
        "pgdrill_drill_pitr_stanza": STANZA,
        "pgdrill_drill_pitr_config": archive.config_file,
        "pgdrill_drill_work_dir": str(base / "play-work"),
        "pgdrill_drill_login_user": "postgres",
        "pgdrill_drill_controller_dir": str(controller),
        "pgdrill_drill_log": str(controller / "drill-log.md"),
        "pgdrill_drill_checks": [{"name": "ledger has rows", "sql": "SELECT 1 FROM ledger LIMIT 1", "expect": "rows"}],
    }
    done = playbook_run(tmp_path, "run_restore_drill.yml", extravars)
    assert done.rc == 0, done.stdout[-3000:]
    [evidence] = glob.glob(str(controller / "evidence" / "staging" / "*.json"))
    record = json.load(open(evidence))
    assert record["kind"] == "physical" and record["outcome"] == "passed" and record["proofs"]["smoke"] == "passed", record
    assert record["rpo_seconds"] is None and "pitr_source" in record["rpo_basis"] and record["proofs"]["amcheck"]["failed"] == []
    assert set(record["timings"]) >= {"resolve target", "check versions", "restore", "recovery", "checks", "cleanup"}
    line = (controller / "drill-log.md").read_text()
    assert "physical to latest" in line and "RPO n/a" in line and "PASSED" in line
    assert os.listdir(base / "play-work" / "pitr") == []
    # A pgdrill point whose record staging does not hold: the play fails naming the step, and says so in the evidence.
    done = playbook_run(tmp_path, "run_restore_drill.yml", dict(extravars, pgdrill_drill_target="name:pgdrill_app_20261205T040000Z"))
    assert done.rc != 0 and "failed at step 'resolve target'" in done.stdout and "its record is not" in done.stdout
    records = [json.load(open(path)) for path in glob.glob(str(controller / "evidence" / "staging" / "*.json"))]
    assert sorted(r["outcome"] for r in records) == ["failed", "passed"]


def test_directories_left_by_a_killed_drill_are_swept_after_a_day_unless_kept(tmp_path):
    """Only the drill's own directories: real directories carrying its mark, never a symlink planted
    under a shared parent (it could point at a live cluster) and never an unmarked directory."""
    elsewhere = tmp_path / "elsewhere"
    for name in ("pitr-drill-old", "pitr-drill-kept", "pitr-drill-new", "pitr-drill-unmarked", "other-old"):
        os.makedirs(tmp_path / name / "data")
        if name != "pitr-drill-unmarked":
            (tmp_path / name / throwaway.OWNED_MARK).write_text("a drill's")
    os.makedirs(elsewhere / "victim" / "data")
    (elsewhere / "victim" / throwaway.OWNED_MARK).write_text("looks like a drill's")
    os.symlink(elsewhere / "victim", tmp_path / "pitr-drill-planted")
    (tmp_path / "pitr-drill-kept" / throwaway.KEPT_MARK).write_text("kept")
    day_old = time.time() - throwaway.LEFTOVER_GRACE_SECONDS - 60
    for name in ("pitr-drill-old", "pitr-drill-kept", "pitr-drill-unmarked", "other-old"):
        os.utime(tmp_path / name, (day_old, day_old))
    os.utime(elsewhere / "victim", (day_old, day_old))
    os.utime(tmp_path / "pitr-drill-planted", (day_old, day_old), follow_symlinks=False)
    assert throwaway.sweep_leftovers(str(tmp_path), "/nonexistent", None) == [str(tmp_path / "pitr-drill-old")]
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "other-old", "pitr-drill-kept", "pitr-drill-new", "pitr-drill-planted", "pitr-drill-unmarked"]
    assert os.path.isdir(elsewhere / "victim" / "data")


def test_a_name_target_proves_the_saved_point_of_that_name_when_there_is_one(tmp_path):
    from pgdrill.drill_steps import DrillRun
    from pgdrill.physical_steps import resolve
    from pgdrill.pitr_drill import parse_target

    point = {
        "name": "pgdrill_app_20261205T010000Z",
        "lsn": "0/5000028",
        "wal_file": "000000010000000000000005",
        "created_at": "2026-12-05T01:00:00.000000Z",
        "fingerprint": {},
        "row_counts": {"t": 1},
    }
    _save_point(point, str(tmp_path / "points"))
    config = DrillConfig(database="app", prefix="app", connection=Connection(), evidence_dir=str(tmp_path / "evidence"))
    found = resolve(config, DrillRun({}), parse_target(f"name:{point['name']}"), str(tmp_path))
    assert found.point["row_counts"] == {"t": 1} and found.point["database"] == "app" and found.point_name == point["name"]
    # A point pgdrill marked has a record: without it the drill would prove nothing, so it refuses.
    with pytest.raises(PgdrillError, match="marked by pgdrill but its record is not"):
        resolve(config, DrillRun({}), parse_target("name:pgdrill_app_20261205T020000Z"), str(tmp_path))
    # A point someone else made (pg_create_restore_point by hand) is reached without that proof.
    unsaved = resolve(config, DrillRun({}), parse_target("name:before_migration_42"), str(tmp_path))
    assert unsaved.point is None and unsaved.point_name == "before_migration_42"


def test_a_latest_drill_over_a_gap_in_the_archive_fails_naming_it(repo):
    """Last in this module: it deletes a WAL file from the repository. Recovery ends at the gap and
    promotes; the drill must not call that the latest point."""
    pg, archive, _writer, base = repo
    for _ in range(3):
        pg.psql("INSERT INTO ledger (amount) VALUES (7)", dbname="app")
        _switch_and_wait(pg, archive)
    client = archive.s3.client()
    wal = sorted(
        item["Key"]
        for item in client.list_objects_v2(Bucket=archive.bucket)["Contents"]
        if "/archive/" in item["Key"] and len(item["Key"].rsplit("/", 1)[-1]) > 40 and ".backup" not in item["Key"]
    )
    client.delete_object(Bucket=archive.bucket, Key=wal[-2])  # the next to last archived WAL file: lost
    record = _drill(pg, archive, base, "gap", "latest")["record"]
    assert record["outcome"] == "failed" and record["failed_step"] == "recovery", (record["failed_step"], record["error"])
    # (The archive may have grown since the listing: the newest file pgBackRest names is at least the one listed.)
    assert "missing or unreadable" in record["error"] and record["archive_max"][8:] >= wal[-1].rsplit("/", 1)[-1][8:24]
