"""The pgdrill_pitr role on real hosts (Molecule scenario 'pitr'): a Debian 12 database host with
PostgreSQL 15 archiving WAL through pgBackRest into an S3 host (SeaweedFS's weed, telemetry off,
serving HTTPS with a certificate for the S3 host's name from a CA this test makes).

converge runs the backup role and the pitr role (first without permission to restart: the role
says so and installs no timer; then allowed), idempotence wants zero changes, and verify checks
archiving (a WAL switch is archived), the full timer's service (a full backup in `pgbackrest info`),
modes and owners, and that no secret is in the main config, the units, the journal or ps. Then,
on the converged hosts: change_retention.yml --check --diff shows the retention lines changing and
no secret, check mode of provision_pitr.yml reports no change (so the preview wrote nothing), and
the retention change applied runs pgBackRest's expire. See molecule/pitr/verify.yml.

Then the disaster (issue 20, item 6): a writer commits numbered rows on the database host, a WAL
switch is archived midway, the writer goes on, and the host is destroyed abruptly (podman rm -f -t 0:
the partial WAL segment is lost, as in a crash). restore_database.yml (physical kind) recovers it
onto the replacement host, which has only the repository's settings and a Debian cluster that was
never started: refused without the confirmation, changed nothing in check mode, then restored to
the latest archived WAL and handed to its systemd unit. Every row committed before the archived
switch is back, with no hole; the commit time the play reports is that of the last row recovered;
the RPO is measured against the writer's last commit."""

import json
import os
import re
import subprocess
import threading
import time
from datetime import datetime

import pytest
from pgdrill_lab.s3server import weed_binary
from pgdrill_lab.tls import make_certificates

from conftest_hosts import BIN, REPO, build_images, host_env, inventory_of, molecule

pytestmark = pytest.mark.hosts

SECRETS = ["pitr-secret-8c2b47a9", "pitr-passphrase-0b5c7e9f1a3d", "pitr-access-5d1e"]


def _recap(output: str, host: str) -> dict:
    found = re.findall(rf"^{re.escape(host)}\s*:\s*(.*)$", output, re.M)
    assert found, output[-4000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", found[-1])}


def _playbook(playbook: str, *args: str, must_pass: bool = True) -> str:
    """A playbook of playbooks/ against the scenario's hosts, as an operator runs it (ansible.cfg of the checkout)."""
    started = time.monotonic()
    command = [os.path.join(BIN, "ansible-playbook"), "-i", inventory_of("pitr"), os.path.join(REPO, "playbooks", playbook), *args]
    done = subprocess.run(command, cwd=REPO, env=host_env(), capture_output=True, text=True)
    assert done.returncode == 0 or not must_pass, done.stdout[-6000:] + done.stderr[-3000:]
    print(f"{playbook} {' '.join(args)}: {time.monotonic() - started:.0f} s")
    return done.stdout + done.stderr


DB, NEW, DATA = "pgdrill-pitr-db", "pgdrill-pitr-new", "/var/lib/postgresql/15/main"
COMMIT_TIME = """to_char(pg_xact_commit_timestamp(xmin) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _on(host: str, *argv: str, stdin: str = "") -> str:
    """A command on a host of the scenario, as root; its stdout."""
    done = subprocess.run(["podman", "exec", "-i", host, *argv], input=stdin, env=host_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"{argv} on {host}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    return done.stdout.strip()


def _sql(host: str, sql: str) -> str:
    return _on(host, "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "shop", stdin=sql)


class Writer(threading.Thread):
    """psql on the database host, fed one numbered row after another. A row counts as committed when
    the SELECT sent after its INSERT (autocommit: it runs only once the INSERT's commit returned)
    answers with it and its commit time; psql prints each result as it arrives (a pipe does not hold
    its output back: checked), so ``committed`` holds each row as it commits. ``attempted``: the last
    number sent. It ends when its host is gone."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        argv = ["podman", "exec", "-i", DB, "runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", "shop"]
        self.psql = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1, env=host_env())
        self.committed: list = []
        self.attempted, self.error = 0, None

    def run(self) -> None:
        try:
            while True:
                self.attempted += 1
                self.psql.stdin.write(f"INSERT INTO dr_rows VALUES ({self.attempted});\nSELECT n, {COMMIT_TIME} FROM dr_rows WHERE n = {self.attempted};\n")
                self.psql.stdin.flush()
                line = self.psql.stdout.readline()
                if not line:
                    return
                number, at = line.strip().split("|")
                if int(number) != self.attempted:
                    self.error = f"row {self.attempted} answered {line!r}"
                    return
                self.committed.append((self.attempted, at))
        except (BrokenPipeError, OSError):
            return


def _when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def _data_hash() -> str:
    return _on(NEW, "bash", "-c", f"cd {DATA} && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum")


def _disaster_recovery() -> None:
    """The database host destroyed while a writer commits, recovered onto the replacement host."""
    _sql(DB, "CREATE TABLE dr_rows (n bigint PRIMARY KEY) WITH (autovacuum_enabled = off)")
    writer = Writer()
    writer.start()
    while len(writer.committed) < 200 and writer.is_alive():
        time.sleep(0.05)
    # Every row committed before the switch is in the segment it closes, which must be archived.
    before = list(writer.committed)
    segment = _on(
        DB, "runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-c", "SELECT pg_walfile_name(pg_current_wal_lsn())", "-c", "SELECT pg_switch_wal()"
    )
    segment = segment.splitlines()[0]
    for _ in range(60):
        if _on(DB, "runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-c", "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= segment:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"segment {segment} was never archived")
    time.sleep(3)  # the writer goes on: what it commits now is in the segment the crash takes
    subprocess.run(["podman", "rm", "-f", "-t", "0", DB], env=host_env(), check=True, capture_output=True)
    writer.join(30)
    assert writer.error is None and not writer.is_alive() and len(writer.committed) > len(before), (writer.error, len(before), len(writer.committed))
    last_commit = _when(writer.committed[-1][1])

    flags = ("-l", NEW, "-e", f"pgdrill_restore_hosts={NEW}", "-e", "pgdrill_restore_kind=physical", "-e", f"pgdrill_restore_data_dir={DATA}")
    flags += ("-e", "pgdrill_restore_config_dir=/etc/postgresql/15/main", "-e", "pgdrill_restore_recovery_timeout=300")
    kept = _data_hash()
    refused = _playbook("restore_database.yml", *flags, must_pass=False)
    assert f"{DATA} holds a cluster's data" in refused and f"confirm with {DATA} (pgdrill_restore_confirm)" in refused, refused[-4000:]
    assert _recap(refused, NEW)["failed"] == 1
    confirmed = (*flags, "-e", f"pgdrill_restore_confirm={DATA}")
    checked = _playbook("restore_database.yml", *confirmed, "--check")
    assert "then stop that server and start postgresql@15-main" in checked, checked[-4000:]
    assert _data_hash() == kept and _on(NEW, "bash", "-c", "systemctl is-active postgresql@15-main || true") == "inactive"

    started = time.monotonic()
    done = _playbook("restore_database.yml", *confirmed)
    print(f"restore_database.yml physical onto {NEW}: {time.monotonic() - started:.0f} s")
    [reached] = re.findall(r"last commit (\S+) \(UTC\)", done)
    assert "now run by postgresql@15-main" in done and "archiving is off in the restored cluster" in done, done[-4000:]
    assert _on(NEW, "systemctl", "is-active", "postgresql@15-main") == "active"
    count, first, k, k_time, archive_mode, recovering = _sql(
        NEW,
        f"SELECT count(*), min(n), max(n), (SELECT {COMMIT_TIME} FROM dr_rows WHERE n = (SELECT max(n) FROM dr_rows)),"
        " current_setting('archive_mode'), pg_is_in_recovery() FROM dr_rows",
    ).split("|")
    assert (int(count), int(first)) == (int(k), 1), (count, first, k)  # 1..K, no hole
    assert len(before) <= int(k) <= writer.attempted, (len(before), k, writer.attempted)
    assert reached == k_time, (reached, k_time)
    assert (archive_mode, recovering) == ("off", "f")
    _sql(NEW, "INSERT INTO dr_rows VALUES (0)")  # promoted: it takes writes
    assert [secret for secret in SECRETS if secret in refused + checked + done] == []  # the repository's secrets written with no_log
    rpo = (last_commit - _when(reached)).total_seconds()
    after_switch = (last_commit - _when(before[-1][1])).total_seconds()
    print(
        f"DR: {len(before)} rows committed before the archived switch, {len(writer.committed)} committed, {writer.attempted} attempted, "
        f"{k} recovered; RPO {rpo:.3f} s (the writer ran {after_switch:.3f} s after the switch)"
    )
    assert 0 <= rpo <= after_switch, (rpo, after_switch)


def test_pitr_role_scenario(tmp_path, monkeypatch):
    build_images()
    tls = tmp_path / "tls"
    make_certificates(str(tls), dns_names=["pgdrill-pitr-s3"])
    os.chmod(tmp_path, 0o755)
    os.chmod(tls / "server.key", 0o644)  # read by weed inside the S3 host's container
    monkeypatch.setenv("PGDRILL_PITR_TLS", str(tls))
    monkeypatch.setenv("PGDRILL_PITR_WEED", weed_binary())
    seconds = {}
    molecule("destroy", "-s", "pitr", check=False)
    try:
        for step in ("create", "prepare", "converge", "idempotence", "verify"):
            seconds[step] = round(molecule(step, "-s", "pitr").seconds)

        # The retention preview (--tags pitr: the physical retention only): the two lines of
        # pgbackrest.conf change, no secret is shown.
        preview = ("change_retention.yml", "--tags", "pitr", "-e", "pgdrill_pitr_retention_full=3", "-e", "pgdrill_pitr_retention_diff=5")
        output = _playbook(*preview, "--check", "--diff")
        for line in ("-repo1-retention-full=2", "+repo1-retention-full=3", "-repo1-retention-diff=7", "+repo1-retention-diff=5"):
            assert line in output, output[-6000:]
        assert [secret for secret in SECRETS if secret in output] == []

        # Check mode on the converged host (after the preview, which wrote nothing): no change.
        output = _playbook("provision_pitr.yml", "--check", "--diff")
        assert _recap(output, "pgdrill-pitr-db")["changed"] == 0 and "repo1-retention" not in output, output[-6000:]

        # Applied: the file changes and pgBackRest's expire runs with it.
        output = _playbook(*preview)
        assert _recap(output, "pgdrill-pitr-db")["changed"] == 2 and "Expire what the new retention no longer keeps" in output, output[-4000:]

        # The status report: the stanza is read as the cluster's OS user (the backup user may not
        # read pgBackRest's secrets) and the row shows it ok, with its window and newest full backup.
        reports = tmp_path / "reports"
        # (The play fails the row all the same: this host has never had a restore drill.)
        _playbook("report_status.yml", "-e", f"pgdrill_report_dir={reports}", "-e", f"pgdrill_report_evidence_dir={tmp_path / 'evidence'}", must_pass=False)
        [row] = [row for row in json.load(open(reports / "pgdrill-report.json"))["rows"] if row.get("pitr")]
        assert row["pitr"]["stanza"] == "main" and row["pitr"]["ok"] is True, row["pitr"]
        assert row["pitr"]["window_start"] and row["pitr"]["window_end"] and row["pitr"]["newest_full"]["label"], row["pitr"]

        started = time.monotonic()
        _disaster_recovery()
        seconds["disaster recovery"] = round(time.monotonic() - started)
    finally:
        molecule("destroy", "-s", "pitr", check=False)
    print(f"molecule scenario pitr (s): {seconds}")
