"""Restore points that are exact (issue 20, step one): pgBackRest from the distribution archives a
real PostgreSQL 15 cluster's WAL into a real S3 server over TLS (a CA the lab makes), encrypted;
a restore point is marked while a writer commits the whole time; pgBackRest restores to it into a
new data directory, a throwaway server replays and is promoted, and the restored database holds
exactly the fingerprint and row counts recorded at the point."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import subprocess
import threading
import time

import pytest

from pgdrill import db, fingerprint as fp, pgbackrest, pitr
from pgdrill.config import Connection
from pgdrill.errors import PgdrillError
from pgdrill_lab.cluster import Cluster
from pgdrill_lab.pgbackrest_lab import PgBackRestRepo
from pgdrill_lab.s3server import S3Server
from helpers import cli_env, run_cli, write_config


def _connection(cluster):
    return Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile)


class Writer(threading.Thread):
    """Commits one small transaction after another into two tables until stopped."""

    def __init__(self, connection):
        super().__init__(daemon=True)
        self.connection = connection
        self.stop = threading.Event()
        self.commits = 0
        self.error = None

    def run(self):
        try:
            conn = db.connect(self.connection, "app", autocommit=False)
            while not self.stop.is_set():
                conn.execute("INSERT INTO ledger (amount, note) VALUES (%s, 'x')", (self.commits % 97,))
                conn.execute("UPDATE totals SET total = total + 1, updated = clock_timestamp() WHERE id = 1")
                conn.execute("INSERT INTO events (kind) SELECT 'tick' FROM generate_series(1, 1 + %s %% 3)", (self.commits,))
                conn.commit()
                self.commits += 1
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def around(self, action, commits):
        """``action()`` while this writer commits: after ``commits`` transactions, and until as many more."""
        self.start()
        try:
            while self.commits < commits and self.error is None:
                time.sleep(0.05)
            outcome = action()
            done = self.commits
            while self.commits < done + commits and self.error is None:
                time.sleep(0.05)
        finally:
            self.stop.set()
            self.join(30)
        assert self.error is None, self.error
        return outcome


@pytest.fixture(scope="module")
def archived():
    with S3Server(name="pitr-s3", tls=True) as s3, Cluster(name="pitr") as pg:
        pg.psql("CREATE DATABASE app")
        pg.psql(
            "CREATE TABLE ledger (id bigserial PRIMARY KEY, amount int NOT NULL, note text);"
            "CREATE TABLE totals (id int PRIMARY KEY, total bigint NOT NULL, updated timestamptz);"
            "CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, kind text);"
            "INSERT INTO totals VALUES (1, 0, now());"
            "INSERT INTO ledger (amount, note) SELECT g % 50, md5(g::text) FROM generate_series(1, 5000) g;",
            dbname="app",
        )
        repo = PgBackRestRepo(pg, s3, "pitr-tests").setup()
        repo.backup("full")
        yield pg, repo


def _restored_to(repo, point, name):
    """pgBackRest's restore to ``point`` once archived, on a throwaway server: the row counts, the
    fingerprint and the writer's running total of database app there."""
    repo.wait_archived(point["wal_file"])
    restored = repo.restore(name, "name", point["name"])
    try:
        conn = db.connect(_connection(restored), "app", autocommit=True)
        try:
            return db.count_rows(conn), fp.take(conn), conn.execute("SELECT total FROM totals WHERE id = 1").fetchone()[0]
        finally:
            conn.close()
    finally:
        restored.destroy()


def test_a_restore_point_marked_while_a_writer_runs_restores_exactly(archived):
    pg, repo = archived
    point = Writer(_connection(pg)).around(lambda: pitr.mark(_connection(pg), "app", "pgdrill_exact_1"), 200)
    assert point["row_counts"]["public.ledger"] > 5000 and point["lsn"] and point["wal_file"]
    # The writer went on after the mark: the source moved past the point (the proof is not vacuous).
    assert int(pg.psql("SELECT count(*) FROM ledger", dbname="app")) > point["row_counts"]["public.ledger"]
    counts, actual, total = _restored_to(repo, point, "pitr-restored")
    assert counts == point["row_counts"]
    differences, _notes = fp.compare(point["fingerprint"], actual)
    assert differences == []
    # Each committed transaction added one to the total and one ledger row, from 5000 rows and 0.
    assert total == counts["public.ledger"] - 5000


def test_the_repository_reports_its_backups_and_window(archived):
    _pg, repo = archived
    info = repo.info()
    assert info["ok"] and info["status"] == "ok"
    assert info["newest_full"]["label"].endswith("F") and info["newest_full"]["wal_start"]
    assert info["oldest_restorable_at"] == info["backups"][0]["stopped_at"]


@pytest.mark.parametrize("name", ["", "a b", "x" * 64, "-leading", "semi;colon", "new\nline"])
def test_restore_point_names_are_plain_words(name):
    with pytest.raises(PgdrillError):
        pitr.check_point_name(name)


def test_restores_never_archive_into_the_source_repository_and_name_their_target():
    command = pgbackrest.restore_argv("/nonexistent/pgbackrest/pgbackrest.conf", "main", "/srv/drill/data", "name", "pgdrill_1")
    assert command == [
        "pgbackrest",
        "--config=/nonexistent/pgbackrest/pgbackrest.conf",
        "--stanza=main",
        "--pg1-path=/srv/drill/data",
        "--archive-mode=off",
        "--type=name",
        "--target=pgdrill_1",
        "--target-action=promote",
        "restore",
    ]
    with pytest.raises(PgdrillError):
        pgbackrest.restore_argv("/c", "main", "/d", "time")  # a time target needs a time
    with pytest.raises(PgdrillError):
        pgbackrest.render_conf({"repo1-cipher-pass": "a\nlog-path=/tmp"}, "main", {})


def _as_cluster_user(pg, *args, path=None):
    """pgdrill-backup as the cluster's OS user (as a timer runs it: no pgdrill config), with the
    distribution's python3 and the engine and psycopg where that user can read them."""
    import psycopg

    import pgdrill

    lib = [os.path.dirname(os.path.dirname(os.path.abspath(pgdrill.__file__))), os.path.dirname(os.path.dirname(os.path.abspath(psycopg.__file__)))]
    user = [shutil.which("runuser") or "runuser", "-u", pg.os_user, "--"] if pg.os_user else []
    env = dict(cli_env(), PYTHONPATH=":".join(lib), PGHOST=pg.host, PGPORT=str(pg.port), PGUSER="postgres", PGPASSWORD=pg.password)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([*user, "/usr/bin/python3", "-m", "pgdrill.cli", *args], env=env, capture_output=True, text=True, cwd="/")


def _metrics(directory, stanza):
    with open(os.path.join(directory, f"pgdrill_pitr_{stanza}.prom"), encoding="utf-8") as handle:
        return dict(line.rsplit(" ", 1) for line in handle.read().splitlines() if not line.startswith("#"))


def test_pitr_backup_runs_from_flags_alone_as_the_cluster_user_with_metrics_and_pings(archived, ping_recorder):
    pg, repo = archived
    url, received = ping_recorder
    metrics_dir = os.path.join(pg.base, "metrics")  # pytest's own tmp is root-only
    os.mkdir(metrics_dir, 0o755)
    if pg.os_user:
        shutil.chown(metrics_dir, pg.os_user)
    flags = ["--stanza", repo.stanza, "--pgbackrest-config", repo.config_file, "--metrics-dir", str(metrics_dir)]
    before = time.time()
    done = _as_cluster_user(pg, "pitr-backup", "--type", "diff", *flags, "--ping-url", url + "/check", "--json")
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["status"]["newest_diff"]["label"].endswith("D")
    seen = _metrics(str(metrics_dir), repo.stanza)
    assert float(seen['pgdrill_pitr_backup_last_success_timestamp_seconds{stanza="main",type="diff"}']) >= int(before)
    assert seen['pgdrill_pitr_backup_last_exit_code{stanza="main"}'] == "0"
    assert float(seen['pgdrill_pitr_backup_last_attempt_timestamp_seconds{stanza="main"}']) >= int(before)
    assert float(seen['pgdrill_pitr_window_start_timestamp_seconds{stanza="main"}']) <= before
    assert float(seen['pgdrill_pitr_archive_last_success_timestamp_seconds{stanza="main"}']) > 0
    assert seen['pgdrill_pitr_archive_failed_total{stanza="main"}'] == "0"
    assert [path for path, _body in received] == ["/check/start", "/check"]

    # A stanza pgBackRest does not know: its error line and the fix, a failed run in its own metrics, a failure ping.
    done = _as_cluster_user(pg, "pitr-backup", "--type", "full", *flags[2:], "--stanza", "nope", "--ping-url", url + "/check")
    assert done.returncode == 1
    assert "ERROR: [037]" in done.stderr and "stanza is not defined" in done.stderr and "Traceback" not in done.stderr
    assert _metrics(str(metrics_dir), "nope")['pgdrill_pitr_backup_last_exit_code{stanza="nope"}'] == "1"
    assert [path for path, _body in received][-2:] == ["/check/start", "/check/fail"]
    # Another pgBackRest run holds the stanza's lock: a busy series (75, try again), not a failed backup.
    lock_file = os.path.join(repo.base, "lock", f"{repo.stanza}-backup.lock")
    with open(lock_file, "a") as held:
        if pg.os_user:
            shutil.chown(lock_file, pg.os_user)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = _as_cluster_user(pg, "pitr-backup", "--type", "incr", *flags)
    assert done.returncode == 75 and "ERROR: [050]" in done.stderr and "try again" in done.stderr, done
    assert _metrics(str(metrics_dir), repo.stanza)['pgdrill_pitr_backup_last_exit_code{stanza="main"}'] == "75"
    # No stanza and no pgdrill config this user may read: bad usage, naming the flags.
    done = _as_cluster_user(pg, "pitr-backup", "--type", "full", "--config", "/etc/pgdrill/none.conf")
    assert done.returncode == 2 and "pass --stanza NAME" in done.stderr
    # pgBackRest not installed: said so, with the package to install.
    done = _as_cluster_user(pg, "pitr-backup", "--type", "full", *flags, path="/nonexistent")
    assert done.returncode == 1 and "pgBackRest is not installed" in done.stderr and "apt-get install pgbackrest" in done.stderr

    # pitr-status: pgBackRest's info and the server's archiver, as JSON.
    done = _as_cluster_user(pg, "pitr-status", *flags, "--json")
    assert done.returncode == 0, done
    status = json.loads(done.stdout)
    assert status["ok"] and status["newest_full"]["label"].endswith("F") and status["archive"]["archived_count"] > 0
    assert status["archive"]["last_archived_wal"] and status["archive"]["failed_count"] == 0


def test_a_logical_backup_dumps_in_its_restore_points_snapshot_and_a_physical_restore_there_holds_the_set(archived, tmp_path):
    """With pitr_stanza, a backup marks a restore point in its dump's snapshot while a writer runs:
    pgBackRest's restore to that point holds exactly the set's fingerprint and row counts. A point
    marked on its own is saved under points/, which list and prune neither report nor touch."""
    pg, repo = archived
    backup_dir = str(tmp_path / "backups")
    config = write_config(tmp_path / "pgdrill.conf", pg, "app", backup_dir, pitr_stanza=repo.stanza)
    result, marked = Writer(_connection(pg)).around(
        lambda: [json.loads(run_cli(*command, "--config", config, "--json").stdout)["results"][0] for command in ([], ["mark"])], 100
    )
    document = result["manifest"]
    point = document["restore_point"]
    assert point["stanza"] == repo.stanza and point["name"].startswith("pgdrill_app_") and pitr.check_point_name(point["name"])
    assert document["row_counts"]["public.ledger"] > 5000 and document["fingerprint"]

    # The point marked on its own: 0600 in a 0700 points/ directory, read back whole; not a set, not debris.
    assert marked["stanza"] == repo.stanza and marked["database"] == "app" and marked["fingerprint"]
    assert stat.S_IMODE(os.stat(os.path.join(backup_dir, "points")).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(marked["path"]).st_mode) == 0o600
    assert pitr.points(backup_dir) == [pitr.load_point(marked["path"])] and pitr.load_point(marked["path"])["lsn"] == marked["lsn"]
    listed = json.loads(run_cli("list", "--config", config, "--json").stdout)["results"][0]["sets"]
    assert [row["set"] for row in listed] == [document["set"]]
    pruned = run_cli("prune", "--config", config, "--json")
    assert "points" not in pruned.stdout and os.listdir(os.path.join(backup_dir, "points")) == [marked["name"] + ".json"]

    counts, actual, _total = _restored_to(repo, point, "pitr-set-point")
    assert counts == document["row_counts"]
    assert fp.compare(document["fingerprint"], actual)[0] == []
    # The writer went on past the point: the source holds more than the set (the proof is not vacuous).
    assert int(pg.psql("SELECT count(*) FROM ledger", dbname="app")) > counts["public.ledger"]


def test_a_backup_whose_mark_fails_fails_and_keeps_nothing(archived, tmp_path):
    pg, repo = archived
    pg.psql("DO $$ BEGIN CREATE ROLE weak LOGIN PASSWORD 'weak-pass'; EXCEPTION WHEN duplicate_object THEN NULL; END $$; GRANT pg_read_all_data TO weak")
    passfile = tmp_path / "pgpass"
    passfile.write_text("*:*:*:weak:weak-pass\n")
    passfile.chmod(0o600)
    backup_dir = tmp_path / "backups"
    config = write_config(tmp_path / "pgdrill.conf", pg, "app", backup_dir, pitr_stanza=repo.stanza, user="weak", passfile=passfile, globals="no")
    assert "restore point marked first (stanza main" in run_cli("--config", config, "--dry-run").stdout
    done = run_cli("--config", config, check=1)
    assert "could not be marked" in done.stderr and "may not lock the tables" in done.stderr and "pitr_mark = no" in done.stderr
    assert [name for name in os.listdir(backup_dir) if not name.startswith(".")] == []
    # Marking off, as the message says: the same backup succeeds, without a restore point.
    config = write_config(
        tmp_path / "pgdrill.conf", pg, "app", backup_dir, pitr_stanza=repo.stanza, pitr_mark="no", user="weak", passfile=passfile, globals="no"
    )
    result = json.loads(run_cli("--config", config, "--json").stdout)["results"][0]
    assert result["manifest"]["restore_point"] is None and result["manifest"]["row_counts"]["public.ledger"] >= 5000


def test_pgdrill_info_reports_the_stanza_of_a_database_with_pitr_and_says_why_when_it_cannot(archived, tmp_path, run_module):
    pg, repo = archived
    config = write_config(tmp_path / "pgdrill.conf", pg, "app", tmp_path / "backups", pitr_stanza=repo.stanza, pitr_config=repo.config_file)
    result, failed, _ = run_module("pgdrill_info", {"config": config})
    assert not failed, result
    pitr_state = result["pitr"]
    assert pitr_state["ok"] and pitr_state["stanza"] == repo.stanza and pitr_state["newest_full"]["label"].endswith("F")
    assert pitr_state["oldest_restorable_at"] and pitr_state["archive"]["archived_count"] > 0 and pitr_state["archive"]["failed_count"] == 0
    # A stanza it cannot read: reported with the fix, the listing of the sets still there.
    config = write_config(tmp_path / "other.conf", pg, "app", tmp_path / "backups", pitr_stanza=repo.stanza, pitr_config=str(tmp_path / "missing.conf"))
    result, failed, _ = run_module("pgdrill_info", {"config": config})
    assert not failed and result["sets"] == [] and result["pitr"]["ok"] is False and "--pgbackrest-config" in result["pitr"]["status"]
    # archive_command emptied: archiving is off, said with the fix (and put back).
    command = pg.psql("SHOW archive_command")
    pg.psql("ALTER SYSTEM SET archive_command = ''")
    pg.psql("SELECT pg_reload_conf()")
    try:
        time.sleep(0.2)
        config = write_config(tmp_path / "off.conf", pg, "app", tmp_path / "backups", pitr_stanza=repo.stanza, pitr_config=repo.config_file)
        state = run_module("pgdrill_info", {"config": config})[0]["pitr"]
        assert state["ok"] is False and "WAL archiving is off" in state["status"] and "archive-push" in state["status"]
        assert state["newest_full"]["label"].endswith("F") and state["archive"] is None  # what pgBackRest says stays
        done = _as_cluster_user(pg, "pitr-status", "--stanza", repo.stanza, "--pgbackrest-config", repo.config_file)
        assert done.returncode == 1 and "WAL archiving is off" in done.stderr
    finally:
        pg.psql("ALTER SYSTEM SET archive_command = '" + command.replace("'", "''") + "'")
        pg.psql("SELECT pg_reload_conf()")
    # Without pitr_stanza: no pitr.
    config = write_config(tmp_path / "plain.conf", pg, "app", tmp_path / "backups")
    assert run_module("pgdrill_info", {"config": config})[0]["pitr"] is None
