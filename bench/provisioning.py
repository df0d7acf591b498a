"""How provisioning time grows with the number of hosts (Ansible forks = 4).

    .venv/bin/python bench/provisioning.py [--sizes 1 4] [--rounds 1]

For each size N: N fresh Debian 12 hosts (podman containers with systemd, the role tests' database
image), playbooks/provision_backups.yml against all of them (first run), then again (the idempotent
run), then the hosts are removed. Prints wall times and the ratio to the one-host time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOSTS = os.path.join(REPO, "tests", "hosts")
BIN = os.path.dirname(sys.executable)
IMAGE = "localhost/pgdrill-dbhost:bookworm"


def env():
    return dict(
        os.environ,
        CONTAINERS_CONF=os.path.join(HOSTS, "containers.conf"),
        PATH=BIN + os.pathsep + os.environ["PATH"],
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_FORKS="4",
        ANSIBLE_NOCOLOR="1",
    )


def podman(*args):
    return subprocess.run(["podman", *args], env=env(), check=True, capture_output=True, text=True)


def provision(inventory):
    started = time.monotonic()
    done = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", "provision_backups.yml")],
        env=env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(done.stdout[-5000:])
    return round(time.monotonic() - started, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    subprocess.run(["bash", os.path.join(HOSTS, "build-image.sh")], env=env(), check=True, capture_output=True)
    results = {}
    for size in args.sizes:
        names = [f"pgdrill-bench-{size}-{i}" for i in range(1, size + 1)]
        try:
            for name in names:
                podman("run", "-d", "--name", name, "--systemd=always", "--privileged", IMAGE, "/sbin/init")
            with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
                handle.write("all:\n  children:\n    pgdrill_databases:\n      hosts:\n")
                for name in names:
                    handle.write(f"        {name}:\n          ansible_connection: containers.podman.podman\n")
                handle.write("      vars:\n        pgdrill_backup_databases: [{name: app}]\n        pgdrill_backup_password: bench\n")
                inventory = handle.name
            first = provision(inventory)
            second = provision(inventory)
            results[size] = {"first_run_s": first, "idempotent_run_s": second}
            print(f"{size} host(s): first run {first} s, idempotent run {second} s", flush=True)
        finally:
            for name in names:
                subprocess.run(["podman", "rm", "-f", name], env=env(), capture_output=True)
    if 1 in results:
        for size, figures in results.items():
            print(f"{size} host(s): {figures['first_run_s'] / results[1]['first_run_s']:.2f}x the one-host first run")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
