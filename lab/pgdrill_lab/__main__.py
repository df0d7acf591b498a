"""``pgdrill-lab``: the README's main command.

``pgdrill-lab demo`` starts a throwaway PostgreSQL with an EZ360PM-shaped sample database, provisions
pgdrill on localhost (into a temporary directory, as the current user, with no schedule), takes a
backup with ``playbooks/run_backup.yml``, runs a restore drill with ``playbooks/run_restore_drill.yml``
(the seed's smoke tests on a scratch copy), prints the drill's evidence, and removes the cluster
again (``--keep`` leaves it running and prints how to reach it).
"""

from __future__ import annotations

import argparse
import glob
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile

from . import checkout
from .cluster import Cluster
from .demo_pitr import demo_pitr
from .sample import create_sample, smoke_checks


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def demo(keep: bool, scale: int) -> int:
    repo = checkout()  # the demo runs the checkout's playbooks and inventories
    _step("starting a throwaway PostgreSQL cluster")
    cluster = Cluster(name="demo").start()
    work = None
    try:
        print(f"PostgreSQL {cluster.major} from {cluster.bindir}, socket {cluster.socket_dir}")
        _step(f"creating the sample database 'ez360pm' ({scale} invoices)")
        create_sample(cluster, "ez360pm", scale)
        work = tempfile.mkdtemp(prefix="pgdrill-demo-")
        os.chmod(work, 0o755)
        account = pwd.getpwuid(os.getuid())
        demo_vars = {
            # Provision into the demo's own directory, as the current user, with no schedule and no
            # packages: ./run has installed the tools, and the demo must not take over the machine.
            "pgdrill_provision_client": False,
            "pgdrill_provision_become": False,
            "pgdrill_backup_manage_user": False,
            "pgdrill_backup_user": account.pw_name,
            "pgdrill_backup_group": grp.getgrgid(account.pw_gid).gr_name,
            "pgdrill_backup_install_owner": account.pw_name,
            "pgdrill_backup_install_group": grp.getgrgid(account.pw_gid).gr_name,
            "pgdrill_backup_scheduler": "none",
            "pgdrill_backup_install_dir": os.path.join(work, "opt"),
            "pgdrill_backup_config_dir": os.path.join(work, "etc"),
            "pgdrill_backup_command": os.path.join(work, "bin", "pgdrill-backup"),
            "pgdrill_backup_python": sys.executable,
            "pgdrill_backup_dir": os.path.join(work, "backups"),
            "pgdrill_backup_host": cluster.host,
            "pgdrill_backup_port": cluster.port,
            "pgdrill_backup_login_user": "postgres",
            "pgdrill_backup_password": cluster.password,
            "pgdrill_backup_databases": [{"name": "ez360pm", "prefix": "ez360pm"}],
            "pgdrill_config_path": os.path.join(work, "etc", "pgdrill.conf"),
            # The restore drill: from this machine to this machine's server, into a scratch database.
            "pgdrill_drill_source_host": "localhost",
            "pgdrill_drill_database": "ez360pm",
            "pgdrill_drill_source_config": os.path.join(work, "etc", "pgdrill.conf"),
            "pgdrill_drill_work_dir": os.path.join(work, "staging"),
            "pgdrill_drill_host": cluster.host,
            "pgdrill_drill_port": cluster.port,
            "pgdrill_drill_login_user": "postgres",
            "pgdrill_drill_passfile": os.path.join(work, "etc", "pgpass"),
            "pgdrill_drill_controller_dir": os.path.join(work, "controller"),
            "pgdrill_drill_log": os.path.join(work, "controller", "drill-log.md"),
            "pgdrill_drill_checks": smoke_checks(),
            # The fleet report page, on the "controller" (this machine), with the drill just run.
            "pgdrill_report_dir": os.path.join(work, "controller", "reports"),
            # The demo's metrics, in node_exporter's textfile format.
            "pgdrill_backup_metrics_dir": os.path.join(work, "metrics"),
        }
        os.makedirs(os.path.join(work, "bin"))
        vars_file = os.path.join(work, "demo-vars.json")
        with open(vars_file, "w", encoding="utf-8") as handle:
            json.dump(demo_vars, handle)
        os.chmod(vars_file, 0o600)
        bindir = os.path.dirname(sys.executable)
        playbook = [os.path.join(bindir, "ansible-playbook"), "-i", os.path.join(repo, "inventories", "local", "hosts.yml"), "-e", f"@{vars_file}"]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(repo, "ansible.cfg"), PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        for title, command in (
            (
                "ansible-playbook playbooks/provision_backups.yml  (the engine, pgdrill-backup, its config and .pgpass, on localhost)",
                playbook + [os.path.join(repo, "playbooks", "provision_backups.yml")],
            ),
            (
                "ansible-playbook playbooks/run_backup.yml  (pgdrill_dump: dump, globals, manifest)",
                playbook + [os.path.join(repo, "playbooks", "run_backup.yml")],
            ),
            (
                "ansible-playbook playbooks/run_restore_drill.yml  (verify, transfer, restore into a scratch database, smoke checks, evidence)",
                playbook + [os.path.join(repo, "playbooks", "run_restore_drill.yml")],
            ),
            (
                "pgdrill-backup list  (the provisioned host command, on the same backups)",
                [demo_vars["pgdrill_backup_command"], "--config", demo_vars["pgdrill_config_path"], "list"],
            ),
            (
                "ansible-playbook playbooks/report_status.yml  (the fleet report page, with the drill)",
                playbook + [os.path.join(repo, "playbooks", "report_status.yml")],
            ),
        ):
            _step(title)
            done = subprocess.run(command, env=env, cwd=repo)
            if done.returncode != 0:
                print(f"\ndemo failed at: {title} (exit {done.returncode})", file=sys.stderr)
                return done.returncode
        _step("the drill's evidence")
        evidence = sorted(glob.glob(os.path.join(work, "controller", "evidence", "*", "*.json")))
        with open(evidence[-1], encoding="utf-8") as handle:
            record = json.load(handle)
        print(json.dumps({key: record[key] for key in ("outcome", "set", "sha256", "pg_dump_version", "timings", "checks")}, indent=2))
        print(f"\nevidence: {evidence[-1]}")
        with open(demo_vars["pgdrill_drill_log"], encoding="utf-8") as handle:
            print("drill log: " + handle.read().strip().splitlines()[-1])
        print(f"report page: {os.path.join(demo_vars['pgdrill_report_dir'], 'pgdrill-report.html')}")
        if keep:
            print(f"\nEverything is under {work}: backups/, etc/pgdrill.conf, controller/ (evidence, drill log, report page).")
            print(f"The cluster keeps running: PGHOST={cluster.host} PGPORT={cluster.port} PGUSER=postgres PGPASSFILE={cluster.passfile}")
        return 0
    finally:
        if not keep:
            cluster.destroy()
            if work:
                shutil.rmtree(work, ignore_errors=True)
                print(f"\nremoved the cluster and {work} (--keep keeps them: the backups, the evidence, the drill log, the report page)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pgdrill-lab", description="Throwaway PostgreSQL for trying pgdrill.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_demo = sub.add_parser("demo", help="back up, verify by restore, and list, on a throwaway cluster")
    run_demo.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    run_demo.add_argument("--scale", type=int, default=20000, help="invoices in the sample database (default 20000)")
    run_demo.add_argument(
        "--pitr", action="store_true", help="point-in-time recovery instead: pgBackRest provisioned by the role, a restore point, two PITR drills"
    )
    args = parser.parse_args(argv)
    if args.pitr:
        return demo_pitr(args.keep, args.scale)
    return demo(args.keep, args.scale)


if __name__ == "__main__":
    sys.exit(main())
