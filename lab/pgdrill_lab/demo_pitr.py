"""``pgdrill-lab demo --pitr``: point-in-time recovery, as a new user's first look.

A throwaway PostgreSQL with the sample database and a throwaway S3 server over TLS on loopback;
pgBackRest provisioned by the pgdrill_pitr role (playbooks/provision_pitr.yml against localhost, into
the demo's own directory, as the cluster's OS user; no timers: the demo stops the role at its
"restart needed" point, restarts its own server and runs the check itself), a full backup with
``pgdrill-backup pitr-backup``, a logical backup that marks its own restore point, a writer
committing while ``pgdrill-backup mark`` marks another one, a PITR drill to that mark and one to the
latest archived WAL (each PASSED or FAILED, with its RPO, RTO and evidence), and the report page.
Everything is removed afterwards unless ``--keep``.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional

from pgdrill import db, pgbackrest
from pgdrill.config import Connection
from pgdrill.errors import PgdrillError

from . import checkout
from .cluster import Cluster
from .pgbackrest_lab import wait_archived
from .s3server import REGION, S3Server
from .sample import create_sample, smoke_checks

STANZA = "demo"
BUCKET = "pgdrill-pitr"
DATABASE = "ez360pm"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _private(path: str, text: str, owner: Optional[str] = None) -> str:
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        handle.write(text)
    if owner:
        info = pwd.getpwnam(owner)
        os.chown(path, info.pw_uid, info.pw_gid)
    return path


class Writer(threading.Thread):
    """The application: one small ledger entry after another, until stopped."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(daemon=True)
        self.connection, self.halted, self.commits, self.error = connection, threading.Event(), 0, None

    def run(self) -> None:
        try:
            conn = db.connect(self.connection, DATABASE)
            while not self.halted.is_set():
                conn.execute(
                    "INSERT INTO ledger_entries (company_id, account, entry_date, debit, credit, memo, created_at)"
                    " VALUES (1, 'sales', current_date, %s, 0, 'demo writer', clock_timestamp())",
                    (1 + self.commits % 97,),
                )
                conn.commit()
                self.commits += 1
                time.sleep(0.005)
            conn.close()
        except Exception as exc:  # noqa: BLE001 - the demo reports it
            self.error = exc

    def wait_for(self, commits: int) -> None:
        wanted = self.commits + commits
        while self.commits < wanted and self.error is None:
            time.sleep(0.02)

    def stop(self) -> None:
        self.halted.set()
        self.join(30)
        if self.error is not None:
            raise RuntimeError(f"the demo's writer failed: {self.error}")


def role_vars(work: str, cluster: Cluster, s3: S3Server) -> Dict[str, object]:
    """The pgdrill_pitr role's variables for the demo: the throwaway cluster, the demo's own
    directories (never /etc or /var), the TLS S3 server, fresh secrets, no restart by the role."""
    user = cluster.os_user or pwd.getpwuid(os.getuid()).pw_name
    return {
        "pgdrill_provision_become": False,
        "pgdrill_pitr_os_user": user,
        "pgdrill_pitr_os_group": grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name,
        "pgdrill_pitr_pg_version": cluster.major,
        "pgdrill_pitr_pg_path": cluster.data,
        "pgdrill_pitr_pg_port": cluster.port,
        "pgdrill_pitr_pg_socket_path": cluster.socket_dir,
        "pgdrill_pitr_restart_allowed": False,
        "pgdrill_pitr_stanza": STANZA,
        "pgdrill_pitr_config_dir": os.path.join(work, "pgbackrest"),
        "pgdrill_pitr_log_path": os.path.join(work, "pgbackrest", "log"),
        "pgdrill_pitr_spool_path": os.path.join(work, "pgbackrest", "spool"),
        "pgdrill_pitr_lock_path": os.path.join(work, "pgbackrest", "lock"),
        "pgdrill_pitr_s3_endpoint": "127.0.0.1",
        "pgdrill_pitr_s3_port": s3.https_port,
        "pgdrill_pitr_s3_bucket": BUCKET,
        "pgdrill_pitr_s3_region": REGION,
        "pgdrill_pitr_s3_uri_style": "path",
        "pgdrill_pitr_s3_ca_file": s3.ca_file,
        "pgdrill_pitr_s3_key": s3.access_key,
        "pgdrill_pitr_s3_key_secret": s3.secret_key,
        "pgdrill_pitr_cipher_pass": secrets.token_urlsafe(36),
        "pgdrill_pitr_metrics_dir": "",
        # The report playbook's view of this host.
        "pgdrill_backup_databases": [{"name": DATABASE}],
        "pgdrill_backup_user": pwd.getpwuid(os.getuid()).pw_name,
        "pgdrill_config_path": os.path.join(work, "etc", "pgdrill.conf"),
        "pgdrill_drill_controller_dir": os.path.join(work, "controller"),
        "pgdrill_report_dir": os.path.join(work, "controller", "reports"),
    }


def staging_copy(config_file: str, staging_config: str, owner: Optional[str]) -> None:
    """Staging's pgBackRest config: the database host's (with its conf.d secrets), owned by the
    cluster's OS user, as whom a drill run as root runs pgBackRest (it refuses a config of root's)."""
    shutil.copytree(os.path.dirname(config_file), os.path.dirname(staging_config), ignore=shutil.ignore_patterns("log", "spool", "lock"))
    for root, _dirs, files in os.walk(os.path.dirname(staging_config)):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            os.chmod(name, 0o700 if os.path.isdir(name) else 0o600)
            if owner:
                info = pwd.getpwnam(owner)
                os.chown(name, info.pw_uid, info.pw_gid)


def pgdrill_config(work: str, cluster: Cluster, pgbackrest_config: str, staging_config: str) -> str:
    """The pgdrill config of the demo: the database with PITR on, and the [drill] section the
    physical drills read (staging is this machine, with the cluster's own binaries)."""
    connection = f"host = {cluster.host}\nport = {cluster.port}\nuser = postgres\npassfile = {cluster.passfile}\n"
    return (
        f"[pgdrill]\nbackup_dir = {os.path.join(work, 'backups')}\n{connection}pitr_stanza = {STANZA}\npitr_config = {pgbackrest_config}\n\n"
        f"[database {DATABASE}]\nprefix = {DATABASE}\n\n"
        f"[drill]\ndatabase = {DATABASE}\nsource_dir = {os.path.join(work, 'backups')}\nsource_host = localhost\n{connection}"
        f"pg_bin_dir = {cluster.bindir}\nevidence_dir = {os.path.join(work, 'controller', 'evidence')}\n"
        f"work_dir = {os.path.join(work, 'staging')}\npitr_stanza = {STANZA}\npitr_config = {staging_config}\n"
        f"pitr_source = host={cluster.host} port={cluster.port} user=postgres passfile={cluster.passfile}\n"
        f"checks = {json.dumps(smoke_checks())}\n"
    )


def _run(title: str, argv: List[str], env: Dict[str, str], cwd: str, capture: bool = False) -> subprocess.CompletedProcess:
    _step(title)
    done = subprocess.run(argv, env=env, cwd=cwd, text=True, capture_output=capture)
    if capture:
        print(done.stdout, end="", flush=True)
        print(done.stderr, end="", file=sys.stderr, flush=True)
    if done.returncode != 0:
        raise DemoFailed(title, done.returncode)
    return done


class DemoFailed(Exception):
    def __init__(self, title: str, code: int) -> None:
        super().__init__(f"demo failed at: {title} (exit {code})")
        self.code = code


def demo_pitr(keep: bool, scale: int) -> int:
    repo = checkout()
    bindir = os.path.dirname(sys.executable)
    work = tempfile.mkdtemp(prefix="pgdrill-demo-pitr-")
    os.chmod(work, 0o755)  # the cluster's OS user reads pgBackRest's config and writes its logs in here
    cluster: Optional[Cluster] = None
    s3: Optional[S3Server] = None
    writer: Optional[Writer] = None
    try:
        _step("starting a throwaway PostgreSQL cluster and a throwaway S3 server over TLS on loopback")
        cluster = Cluster(name="demo-pitr").start()
        s3 = S3Server(name="demo-pitr-s3", tls=True).start()
        s3.create_bucket(BUCKET)
        print(f"PostgreSQL {cluster.major} from {cluster.bindir}, socket {cluster.socket_dir}; S3 at https://127.0.0.1:{s3.https_port} (CA {s3.ca_file})")
        _step(f"creating the sample database '{DATABASE}' ({scale} invoices)")
        create_sample(cluster, DATABASE, scale)

        owner = cluster.os_user
        variables = role_vars(work, cluster, s3)
        os.makedirs(os.path.join(work, "etc"))
        os.makedirs(os.path.join(work, "staging"), mode=0o711)
        os.chmod(os.path.join(work, "staging"), 0o711)
        config_file = os.path.join(work, "pgbackrest", "pgbackrest.conf")
        # The role's psql and pgBackRest connect as postgres (PGUSER) with this password file of the
        # cluster's OS user (PGPASSFILE): the lab's server asks for a password even on its socket.
        lab_passfile = _private(os.path.join(work, "etc", "pgpass-pgbackrest"), f"*:*:*:postgres:{cluster.password}\n", owner)
        vars_file = _private(os.path.join(work, "pitr-vars.json"), json.dumps(variables))
        inventory = os.path.join(work, "inventory.json")
        local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        with open(inventory, "w", encoding="utf-8") as handle:
            json.dump(
                {"all": {"children": {group: {"hosts": {"localhost": local}} for group in ("pgdrill_pitr", "pgdrill_databases", "pgdrill_staging")}}}, handle
            )
        staging_config = os.path.join(work, "staging-pgbackrest", "pgbackrest.conf")
        pgdrill_conf = _private(str(variables["pgdrill_config_path"]), pgdrill_config(work, cluster, config_file, staging_config))
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(repo, "ansible.cfg"),
            PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
            PGUSER="postgres",
            PGPASSFILE=lab_passfile,
        )
        playbook = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, "-e", f"@{vars_file}"]
        command = os.path.join(bindir, "pgdrill-backup")

        _run(
            "ansible-playbook playbooks/provision_pitr.yml  (role pgdrill_pitr: pgbackrest.conf, 0600 secrets, archiving, stanza-create)",
            playbook + [os.path.join(repo, "playbooks", "provision_pitr.yml")],
            env,
            repo,
        )
        _step("restarting the throwaway server, as the role asked (archive_mode needs a restart), and pgbackrest check")
        cluster.restart()
        pgbackrest.run(pgbackrest.argv(config_file, STANZA, "check"), env=env, user=owner, what="pgbackrest check")
        print("pgbackrest check: WAL archiving into the encrypted S3 repository works")
        _run(
            "pgdrill-backup pitr-backup --type full  (the command the role's weekly timer runs)",
            [command, "pitr-backup", "--type", "full", "--stanza", STANZA, "--pgbackrest-config", config_file],
            env,
            repo,
        )

        staging_copy(config_file, staging_config, owner)
        writer = Writer(Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile))
        writer.start()
        writer.wait_for(50)
        _run(
            "pgdrill-backup backup  (a logical set, dumped in the snapshot of the restore point it marks; the writer keeps committing)",
            [command, "--config", pgdrill_conf],
            env,
            repo,
        )
        # Restore point names carry the second they were made in; two points of one name in the WAL
        # would make recovery stop at the first.
        writer.wait_for(50)
        time.sleep(max(0.0, 1.05 - time.time() % 1))
        _step("pgdrill-backup mark  (a restore point with the fingerprint and row counts exactly at it; the writer keeps committing)")
        done = subprocess.run([command, "--config", pgdrill_conf, "mark"], env=env, cwd=repo, capture_output=True, text=True)
        print(done.stdout + done.stderr, end="", flush=True)
        if done.returncode != 0:
            raise DemoFailed("pgdrill-backup mark", done.returncode)
        point = json.loads(done.stdout)
        print(f"restore point {point['name']} at LSN {point['lsn']}; writers held {point['writers_held_seconds']} s")
        writer.wait_for(200)
        writer.stop()
        print(f"the writer committed {writer.commits} transactions")
        _run(
            "pgdrill-backup drill  (the logical set: verified, restored into a scratch database, smoke checks; the report wants a passed one)",
            [command, "--config", pgdrill_conf, "drill"],
            env,
            repo,
        )
        # Staging is this server, so the scratch database's commits came last. The newest WAL goes
        # to the repository now (a busy server switches segments on its own).
        wait_archived(cluster, cluster.psql("SELECT pg_walfile_name(pg_switch_wal())"))

        verdicts = []
        for target in (f"name:{point['name']}", "latest"):
            done = _run(
                f"pgdrill-backup drill --physical --target {target}  (pgBackRest restores into a throwaway server, which replays WAL to the target; then the proof)",
                [command, "--config", pgdrill_conf, "drill", "--physical", "--target", target],
                env,
                repo,
                capture=True,
            )
            verdicts.append(done.stdout)
        _run(
            "ansible-playbook playbooks/report_status.yml  (the report page: the logical sets, the PITR window, the drills' RPO and RTO)",
            playbook + [os.path.join(repo, "playbooks", "report_status.yml")],
            env,
            repo,
        )
        report = os.path.join(str(variables["pgdrill_report_dir"]), "pgdrill-report.html")
        _step("PITR drills")
        for verdict in verdicts:
            print(verdict.strip())
        print(f"report page: {report}" + ("" if keep else "  (removed with the rest below: --keep keeps it)"))
        if keep:
            print(f"\nEverything is under {work}: pgbackrest/ (the role's pgbackrest.conf, conf.d/ secrets), etc/pgdrill.conf, backups/, controller/.")
            print(f"The cluster keeps running: PGHOST={cluster.host} PGPORT={cluster.port} PGUSER=postgres PGPASSFILE={cluster.passfile}")
            print(f"The S3 server keeps running: https://127.0.0.1:{s3.https_port} (bucket {BUCKET}, CA {s3.ca_file});")
            print(
                f"  pgBackRest: runuser -u {owner} -- pgbackrest --config={config_file} --config-include-path={os.path.dirname(config_file)}/conf.d --stanza={STANZA} info"
            )
        return 0
    except DemoFailed as exc:
        print(f"\n{exc}", file=sys.stderr)
        return exc.code
    except (PgdrillError, RuntimeError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if writer is not None and writer.is_alive():
            writer.halted.set()
            writer.join(30)
        if not keep:
            if s3 is not None:
                s3.destroy()
            if cluster is not None:
                cluster.destroy()
            shutil.rmtree(work, ignore_errors=True)
            print(f"\nremoved: the cluster, the S3 server and {work}")
