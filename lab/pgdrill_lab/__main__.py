"""``pgdrill-lab``: the README's main command.

``pgdrill-lab demo`` starts a throwaway PostgreSQL with a sample database, takes a backup with
``playbooks/run_backup.yml`` against localhost, verifies it by restoring it into a scratch database
with ``playbooks/verify_backups.yml``, lists the sets with ``pgdrill-backup list``, and removes
everything again (``--keep`` leaves the cluster running and prints how to reach it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from .cluster import Cluster

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from .sample import create_sample


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def demo(keep: bool, scale: int) -> int:
    _step("starting a throwaway PostgreSQL cluster")
    cluster = Cluster(name="demo").start()
    try:
        print(f"PostgreSQL {cluster.major} from {cluster.bindir}, socket {cluster.socket_dir}")
        _step(f"creating the sample database 'ez360pm' ({scale} invoices)")
        create_sample(cluster, "ez360pm", scale)
        work = tempfile.mkdtemp(prefix="pgdrill-demo-")
        config = os.path.join(work, "pgdrill.conf")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(
                "[pgdrill]\n"
                f"backup_dir = {os.path.join(work, 'backups')}\n"
                f"host = {cluster.host}\nport = {cluster.port}\nuser = postgres\npassfile = {cluster.passfile}\n"
                "retention_days = 14\nkeep_last = 14\n\n"
                "[database ez360pm]\nprefix = ez360pm\n"
            )
        os.chmod(config, 0o600)
        bindir = os.path.dirname(sys.executable)
        playbook = [os.path.join(bindir, "ansible-playbook"), "-i", os.path.join(REPO, "inventories", "local", "hosts.yml"), "-e", f"pgdrill_config_path={config}"]
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
        for title, command in (
            ("ansible-playbook playbooks/run_backup.yml  (pgdrill_dump on localhost: dump, globals, manifest)",
             playbook + [os.path.join(REPO, "playbooks", "run_backup.yml")]),
            ("ansible-playbook playbooks/verify_backups.yml -e pgdrill_verify_restore=true  (checksums, archive, restore into a scratch database, row counts)",
             playbook + ["-e", "pgdrill_verify_restore=true", os.path.join(REPO, "playbooks", "verify_backups.yml")]),
            ("pgdrill-backup list  (the host command, on the same backups)",
             [os.path.join(bindir, "pgdrill-backup"), "--config", config, "list"]),
        ):
            _step(title)
            done = subprocess.run(command, env=env, cwd=REPO)
            if done.returncode != 0:
                print(f"\ndemo failed at: {title} (exit {done.returncode})", file=sys.stderr)
                return done.returncode
        print(f"\nThe backup set is in {os.path.join(work, 'backups')}; the config is {config}.")
        if keep:
            print(f"The cluster keeps running: PGHOST={cluster.host} PGPORT={cluster.port} PGUSER=postgres PGPASSFILE={cluster.passfile}")
        return 0
    finally:
        if not keep:
            cluster.destroy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pgdrill-lab", description="Throwaway PostgreSQL for trying pgdrill.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_demo = sub.add_parser("demo", help="back up, verify by restore, and list, on a throwaway cluster")
    run_demo.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    run_demo.add_argument("--scale", type=int, default=20000, help="invoices in the sample database (default 20000)")
    args = parser.parse_args(argv)
    return demo(args.keep, args.scale)


if __name__ == "__main__":
    sys.exit(main())
