"""Fleet work at scale: the playbooks against N hosts, seconds per host, at two fork counts.

    .venv/bin/python bench/fleet.py [--hosts 100] [--forks 5 20] [--scale 200]

N inventory hosts, each an Ansible host with a local connection (no SSH, so what is measured is
pgdrill's playbooks, modules and role, not the network), each with its own small database on one
throwaway cluster, its own backup directory, config and command, as the demo provisions localhost.
For each fork count, in order:

  provision   playbooks/provision_backups.yml, first run (the role writes the engine, command, config)
  idempotent  the same again: the role's idempotent run (nothing may change)
  backup      playbooks/run_backup.yml
  verify      playbooks/verify_backups.yml
  report      playbooks/report_status.yml (pgdrill_info on every host, one report page)

Prints wall seconds and seconds per host, and writes bench/results/fleet-<time>.json. Targets
(bench/README.md; never in the test suite): report <= 0.3 s per host; the idempotent run <= 10 s
per host. With local connections every host's work runs on this machine's 2 cores: a real fleet's
hosts do their own dumps, so these figures are an upper bound for the controller's share.
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
sys.path.insert(0, HERE)

from common import write_results  # noqa: E402
from pgdrill_lab.cluster import Cluster  # noqa: E402
from pgdrill_lab.sample import create_sample  # noqa: E402

TARGETS = {"report_seconds_per_host": 0.3, "idempotent_seconds_per_host": 10.0}
STEPS = [
    ("provision", "provision_backups.yml"),
    ("idempotent", "provision_backups.yml"),
    ("backup", "run_backup.yml"),
    ("verify", "verify_backups.yml"),
    ("report", "report_status.yml"),
]


def inventory(work: str, cluster: Cluster, hosts: int) -> dict:
    """Every host local, each with its own database, directories, config and command."""
    account = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(account.pw_gid).gr_name
    members = {}
    for number in range(1, hosts + 1):
        name = f"fleet{number:03d}"
        home = os.path.join(work, name)
        members[name] = {
            "pgdrill_backup_install_dir": os.path.join(home, "opt"),
            "pgdrill_backup_config_dir": os.path.join(home, "etc"),
            "pgdrill_backup_command": os.path.join(home, "bin", "pgdrill-backup"),
            "pgdrill_backup_dir": os.path.join(home, "backups"),
            "pgdrill_backup_metrics_dir": os.path.join(home, "metrics"),
            "pgdrill_config_path": os.path.join(home, "etc", "pgdrill.conf"),
            "pgdrill_backup_databases": [{"name": name, "prefix": name}],
        }
    shared = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "pgdrill_provision_client": False,
        "pgdrill_provision_become": False,
        "pgdrill_backup_manage_user": False,
        "pgdrill_backup_user": account.pw_name,
        "pgdrill_backup_group": group,
        "pgdrill_backup_install_owner": account.pw_name,
        "pgdrill_backup_install_group": group,
        "pgdrill_backup_scheduler": "none",
        "pgdrill_backup_python": sys.executable,
        "pgdrill_backup_host": cluster.host,
        "pgdrill_backup_port": cluster.port,
        "pgdrill_backup_login_user": "postgres",
        "pgdrill_backup_password": cluster.password,
        "pgdrill_drill_controller_dir": os.path.join(work, "controller"),
    }
    return {"all": {"children": {"pgdrill_databases": {"hosts": members, "vars": shared}, "pgdrill_staging": {"hosts": {}}}}}


def run_playbook(inventory_path: str, playbook: str, forks: int) -> float:
    env = dict(
        os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORKS=str(forks), ANSIBLE_NOCOLOR="1", PATH=BIN + os.pathsep + os.environ["PATH"]
    )
    started = time.monotonic()
    done = subprocess.run(
        # No drills run here: the report judges backups only (play variables outrank the inventory's).
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory_path, "-e", "pgdrill_report_max_drill_age_days=0", os.path.join(REPO, "playbooks", playbook)],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{playbook} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return seconds


def changed_count(inventory_path: str, forks: int) -> int:
    """How many tasks the idempotent run changed (must be 0): from the recap of one more run."""
    env = dict(
        os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_FORKS=str(forks), ANSIBLE_NOCOLOR="1", PATH=BIN + os.pathsep + os.environ["PATH"]
    )
    done = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory_path, os.path.join(REPO, "playbooks", "provision_backups.yml")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(int(part.split("=")[1]) for line in done.stdout.splitlines() if "changed=" in line for part in line.split() if part.startswith("changed="))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--forks", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--scale", type=int, default=200, help="invoices in each host's database (small: the fleet, not the dump, is measured)")
    args = parser.parse_args()
    cluster = Cluster(name="fleet").start()
    results = {"hosts": args.hosts, "scale": args.scale, "runs": []}
    try:
        create_sample(cluster, "fleet_template", args.scale)
        for number in range(1, args.hosts + 1):
            cluster.psql(f"CREATE DATABASE fleet{number:03d} TEMPLATE fleet_template")
        for forks in args.forks:
            work = tempfile.mkdtemp(prefix="pgdrill-fleet-", dir="/var/tmp")
            os.chmod(work, 0o755)
            path = os.path.join(work, "inventory.json")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(inventory(work, cluster, args.hosts), handle)
            os.chmod(path, 0o600)
            row = {"forks": forks}
            for label, playbook in STEPS:
                seconds = run_playbook(path, playbook, forks)
                row[label] = round(seconds, 1)
                row[f"{label}_per_host"] = round(seconds / args.hosts, 3)
                print(f"forks {forks:>2}  {label:<11} {seconds:7.1f} s  {seconds / args.hosts:6.3f} s/host", flush=True)
            row["idempotent_changed"] = changed_count(path, forks)
            print(f"forks {forks:>2}  a third provisioning run changed {row['idempotent_changed']} task(s)", flush=True)
            results["runs"].append(row)
            subprocess.run(["rm", "-rf", work])
    finally:
        cluster.destroy()
    worst_report = max(run["report_per_host"] for run in results["runs"])
    worst_idempotent = max(run["idempotent_per_host"] for run in results["runs"])
    results["targets"] = {
        "report_seconds_per_host": {
            "target": TARGETS["report_seconds_per_host"],
            "measured": worst_report,
            "met": worst_report <= TARGETS["report_seconds_per_host"],
        },
        "idempotent_seconds_per_host": {
            "target": TARGETS["idempotent_seconds_per_host"],
            "measured": worst_idempotent,
            "met": worst_idempotent <= TARGETS["idempotent_seconds_per_host"],
        },
    }
    print(json.dumps(results["targets"], indent=2))
    write_results("fleet", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
