"""Fleet work at scale: the playbooks against N hosts, seconds per host, at two fork counts.

    .venv/bin/python bench/fleet.py [--hosts 100] [--forks 5 20] [--scale 200]

N inventory hosts, each an Ansible host with a local connection (no SSH, so what is measured is
pgdrill's playbooks, modules and role, not the network), each with its own small database on one
throwaway cluster, its own backup directory, config and command, as the demo provisions localhost.
Once, at the largest fork count:

  provision   playbooks/provision_backups.yml, first run (the role writes the engine, command, config)
  idempotent  the same again: the role's idempotent run (its recap must count no change)

then for each fork count, in order:

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
ONCE = [("provision", "provision_backups.yml"), ("idempotent", "provision_backups.yml")]
PER_FORKS = [("backup", "run_backup.yml"), ("verify", "verify_backups.yml"), ("report", "report_status.yml")]


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


def run_playbook(inventory_path: str, playbook: str, forks: int) -> "tuple[float, str]":
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
    return seconds, done.stdout


def changed_count(recap: str) -> int:
    """How many tasks a run changed, from its recap lines."""
    return sum(int(part.split("=")[1]) for line in recap.splitlines() if "changed=" in line for part in line.split() if part.startswith("changed="))


def timed(results: dict, label: str, path: str, playbook: str, forks: int, hosts: int) -> str:
    seconds, output = run_playbook(path, playbook, forks)
    results[label] = round(seconds, 1)
    results[f"{label}_per_host"] = round(seconds / hosts, 3)
    print(f"forks {forks:>2}  {label:<11} {seconds:7.1f} s  {seconds / hosts:6.3f} s/host", flush=True)
    return output


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
        work = tempfile.mkdtemp(prefix="pgdrill-fleet-", dir="/var/tmp")
        os.chmod(work, 0o755)
        path = os.path.join(work, "inventory.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(inventory(work, cluster, args.hosts), handle)
        os.chmod(path, 0o600)
        once = {"forks": max(args.forks)}
        for label, playbook in ONCE:
            output = timed(once, label, path, playbook, once["forks"], args.hosts)
        once["idempotent_changed"] = changed_count(output)
        print(f"forks {once['forks']:>2}  the idempotent run changed {once['idempotent_changed']} task(s)", flush=True)
        results["provisioning"] = once
        for forks in args.forks:
            row = {"forks": forks}
            for label, playbook in PER_FORKS:
                timed(row, label, path, playbook, forks, args.hosts)
            results["runs"].append(row)
        subprocess.run(["rm", "-rf", work])
    finally:
        cluster.destroy()
    worst_report = max(run["report_per_host"] for run in results["runs"])
    worst_idempotent = results["provisioning"]["idempotent_per_host"]
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
