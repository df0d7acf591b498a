"""Restore points that are exact (issue 20, step one): pgBackRest from the distribution archives a
real PostgreSQL 15 cluster's WAL into a real S3 server over TLS (a CA the lab makes), encrypted;
a restore point is marked while a writer commits the whole time; pgBackRest restores to it into a
new data directory, a throwaway server replays and is promoted, and the restored database holds
exactly the fingerprint and row counts recorded at the point."""

from __future__ import annotations

import json
import os
import shutil
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
from helpers import cli_env


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


def test_a_restore_point_marked_while_a_writer_runs_restores_exactly(archived):
    pg, repo = archived
    writer = Writer(_connection(pg))
    writer.start()
    try:
        while writer.commits < 200 and writer.error is None:
            time.sleep(0.05)
        point = pitr.mark(_connection(pg), "app", "pgdrill_exact_1")
        marked_at = writer.commits
        while writer.commits < marked_at + 200 and writer.error is None:
            time.sleep(0.05)
    finally:
        writer.stop.set()
        writer.join(30)
    assert writer.error is None, writer.error
    assert point["row_counts"]["public.ledger"] > 5000 and point["lsn"] and point["wal_file"]
    # The writer went on after the mark: the source moved past the point (the proof is not vacuous).
    assert int(pg.psql("SELECT count(*) FROM ledger", dbname="app")) > point["row_counts"]["public.ledger"]
    repo.wait_archived(point["wal_file"])
    restored = repo.restore("pitr-restored", "name", point["name"])
    try:
        conn = db.connect(_connection(restored), "app", autocommit=True)
        try:
            counts = db.count_rows(conn)
            actual = fp.take(conn)
            total = conn.execute("SELECT total FROM totals WHERE id = 1").fetchone()[0]
        finally:
            conn.close()
    finally:
        restored.destroy()
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
    command = pgbackrest.restore_argv("/etc/pgbackrest/pgbackrest.conf", "main", "/srv/drill/data", "name", "pgdrill_1")
    assert command == [
        "pgbackrest",
        "--config=/etc/pgbackrest/pgbackrest.conf",
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
    # pgBackRest not installed: said so, with the package to install.
    done = _as_cluster_user(pg, "pitr-backup", "--type", "full", *flags, path="/nonexistent")
    assert done.returncode == 1 and "pgBackRest is not installed" in done.stderr and "apt-get install pgbackrest" in done.stderr

    # pitr-status: pgBackRest's info and the server's archiver, as JSON.
    done = _as_cluster_user(pg, "pitr-status", *flags, "--json")
    assert done.returncode == 0, done
    status = json.loads(done.stdout)
    assert status["ok"] and status["newest_full"]["label"].endswith("F") and status["archive"]["archived_count"] > 0
    assert status["archive"]["last_archived_wal"] and status["archive"]["failed_count"] == 0
