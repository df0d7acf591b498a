"""Disaster recovery to the latest point (issue 20, item 6), for real and without podman: a
PostgreSQL 15 cluster archives its WAL with pgBackRest into SeaweedFS over TLS while a writer commits,
each commit recording its id; the writer stops, the last WAL is archived, the source is destroyed
(stopped, its data directory deleted), and restore_database.yml (kind physical, through a real
ansible-playbook run) restores the cluster into a new empty data directory: every committed id is
there, the play reports the LSN and the commit time reached, archiving is off. Its guard: over an
existing data directory without the confirmation it refuses and touches nothing; check mode says
what it would do and does nothing."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

from helpers import playbook_run, run_cli, tree_hash
from pgdrill import db
from pgdrill.config import Connection
from pgdrill_lab.cluster import Cluster
from pgdrill_lab.pgbackrest_lab import PgBackRestRepo
from pgdrill_lab.s3server import S3Server

STANZA = "main"
RESTORE = "Restore the cluster with pgBackRest and recover it to the target"
SHOWN = "Show what the physical restore reached"


class Writer(threading.Thread):
    """Commits one id after another until stopped; ``committed`` holds each id whose COMMIT returned."""

    def __init__(self, connection):
        super().__init__(daemon=True)
        self.connection, self.stop, self.committed, self.error = connection, threading.Event(), [], None

    def run(self):
        try:
            conn = db.connect(self.connection, "app")
            while not self.stop.is_set():
                next_id = len(self.committed) + 1
                conn.execute("INSERT INTO orders (id, note) VALUES (%s, %s)", (next_id, f"order {next_id}"))
                conn.commit()
                self.committed.append(next_id)
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _sql(connection, sql):
    """Run one statement in the restored database; a SELECT's single value."""
    conn = db.connect(connection, "app", autocommit=True)
    try:
        cursor = conn.execute(sql)
        return cursor.fetchone()[0] if sql.startswith("SELECT") else None
    finally:
        conn.close()


def _chown_to(cluster, path):
    if cluster.os_user:
        shutil.chown(path, cluster.os_user, cluster.os_user)


def test_the_source_destroyed_restore_database_brings_back_every_committed_transaction_and_its_guard_holds(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])  # this interpreter's ansible-playbook
    base = pathlib.Path(tempfile.mkdtemp(prefix="pgdrill-dr-"))
    os.chmod(base, 0o711)
    restored_data = base / "newhost" / "data"
    with S3Server(name="dr-s3", tls=True) as s3, Cluster(name="pitrdr") as pg:
        # The cluster's own settings, as a Debian cluster's postgresql.conf holds them, so that the
        # restored server listens where the source did: a socket directory outside the data directory.
        sockets = base / "sockets"
        sockets.mkdir(mode=0o755)
        _chown_to(pg, sockets)
        pg.psql(f"ALTER SYSTEM SET port = {pg.port}")
        pg.psql(f"ALTER SYSTEM SET unix_socket_directories = '{sockets}'")
        pg.psql("ALTER SYSTEM SET listen_addresses = ''")
        pg.psql("ALTER SYSTEM SET track_commit_timestamp = on")
        pg.psql("CREATE DATABASE app")
        pg.psql("CREATE TABLE orders (id bigint PRIMARY KEY, note text NOT NULL)", dbname="app")
        archive = PgBackRestRepo(pg, s3, "dr-tests", stanza=STANZA).setup()
        archive.backup("full")
        passfile = base / "pgpass"  # the source's directory goes with it: the password stays with the operator
        shutil.copy(pg.passfile, passfile)
        os.chmod(passfile, 0o600)
        extravars = {
            "pgdrill_restore_kind": "physical",
            "pgdrill_restore_stanza": STANZA,
            "pgdrill_restore_pgbackrest_config": archive.config_file,
            "pgdrill_restore_login_host": str(sockets),
            "pgdrill_restore_login_port": pg.port,
            "pgdrill_restore_login_user": "postgres",
            "pgdrill_restore_passfile": str(passfile),
            "pgdrill_restore_recovery_timeout": 120,
        }

        writer = Writer(Connection(host=pg.host, port=pg.port, user="postgres", passfile=pg.passfile))
        writer.start()
        try:
            # The guard, while the writer commits: the running source's data directory, without the
            # confirmation (and with one naming another directory), is refused and left as it was.
            before = pg.psql("SELECT pg_postmaster_start_time()")
            refused = playbook_run(tmp_path, "restore_database.yml", dict(extravars, pgdrill_restore_data_dir=pg.data))
            assert refused.status == "failed"
            said = refused.task(RESTORE)["res"]["msg"]
            assert f"{pg.data} holds a cluster's data" in said and "pgdrill_restore_confirm" in said, said
            assert pg.psql("SELECT pg_postmaster_start_time()") == before  # never stopped
            occupied = base / "occupied"
            occupied.mkdir(mode=0o700)
            (occupied / "PG_VERSION").write_text("15\n")
            kept = tree_hash(occupied)
            wrong = playbook_run(tmp_path, "restore_database.yml", dict(extravars, pgdrill_restore_data_dir=str(occupied), pgdrill_restore_confirm=pg.data))
            assert wrong.status == "failed" and "does not name the data directory" in wrong.task(RESTORE)["res"]["msg"]
            assert tree_hash(occupied) == kept
            # Check mode into the new directory: says what it would do, makes nothing.
            restored_data.parent.mkdir(mode=0o711)
            checked = playbook_run(tmp_path, "restore_database.yml", dict(extravars, pgdrill_restore_data_dir=str(restored_data)), check=True)
            assert checked.status == "successful", checked.stdout[-3000:]
            assert f"would restore stanza {STANZA}" in checked.task(RESTORE)["res"]["msg"]
            assert not restored_data.exists()
            # The same engine from the command line, as the cluster's OS user or root would run it by hand.
            flags = ("pitr-restore", "--stanza", STANZA, "--pgbackrest-config", archive.config_file, "--data-dir")
            dry = json.loads(run_cli(*flags, str(restored_data), "--dry-run", "--json").stdout)
            assert dry["ok"] and dry["data_dir_was"] == "absent" and "would restore" in dry["msg"] and not restored_data.exists()
            assert "holds a cluster's data" in run_cli(*flags, pg.data, check=1).stderr
            while len(writer.committed) < 300 and writer.error is None and writer.is_alive():
                writer.join(0.05)
        finally:
            writer.stop.set()
            writer.join(30)
        assert writer.error is None, writer.error
        committed = list(writer.committed)
        newest_commit = pg.psql("SELECT to_char((pg_last_committed_xact()).timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", dbname="app")
        wal = pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        pg.psql("SELECT pg_switch_wal()")
        archive.wait_archived(wal)

        # The disaster: the source stopped and its data directory deleted.
        pg.stop()
        shutil.rmtree(pg.data)

        done = playbook_run(tmp_path, "restore_database.yml", dict(extravars, pgdrill_restore_data_dir=str(restored_data)))
        try:
            assert done.status == "successful", done.stdout[-4000:]
            result = done.task(RESTORE)["res"]
            assert result["changed"] and result["data_dir_was"] == "absent" and not result["replaced"]
            assert result["reached"]["commit_time"] == newest_commit  # nothing committed was lost: an RPO of 0
            shown = done.task(SHOWN)["res"]["msg"]
            assert f"reached LSN {result['reached']['lsn']}" in shown and newest_commit in shown and "provision_pitr.yml" in shown
            restored = Connection(host=str(sockets), port=pg.port, user="postgres", passfile=str(passfile))
            conn = db.connect(restored, "app", autocommit=True)
            try:
                ids = [row[0] for row in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]
                in_recovery, archive_mode = conn.execute("SELECT pg_is_in_recovery(), current_setting('archive_mode')").fetchone()
            finally:
                conn.close()
            assert ids == committed and len(committed) >= 300
            assert in_recovery is False and archive_mode == "off"
            assert oct(os.stat(restored_data).st_mode & 0o777) == "0o700"

            # Over the running restored cluster, confirmed: its server is stopped and the cluster
            # replaced by the repository's (a row written since, never archived, is gone).
            _sql(restored, "INSERT INTO orders VALUES (0, 'written after the restore')")
            again = playbook_run(
                tmp_path, "restore_database.yml", dict(extravars, pgdrill_restore_data_dir=str(restored_data), pgdrill_restore_confirm=str(restored_data))
            )
            assert again.status == "successful", again.stdout[-4000:]
            replaced = again.task(RESTORE)["res"]
            assert replaced["data_dir_was"] == "holds data" and replaced["replaced"] and replaced["server_stopped"]
            assert _sql(restored, "SELECT array_agg(id ORDER BY id) FROM orders") == committed
        finally:
            subprocess.run(
                (["runuser", "-u", pg.os_user, "--"] if pg.os_user else []) + [pg.bin("pg_ctl"), "-D", str(restored_data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
            )
    shutil.rmtree(base, ignore_errors=True)
