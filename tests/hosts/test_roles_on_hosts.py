"""Roles on real hosts: Debian 12 containers with systemd as PID 1, driven by Molecule and podman.

The backup scenario converges pgdrill_client and pgdrill_backup on two hosts (systemd timer and
cron), checks idempotence (zero changes on the second run), then verifies timers, a real backup
run through the unit and through the cron line, restore verification, modes and owners, that the
password is nowhere but .pgpass (units, cron, config, logs, journal, ps), and that bad variables
are rejected by the argument specs. See molecule/backup/verify.yml.
"""

import re

import pytest

from conftest_hosts import build_images, molecule

pytestmark = pytest.mark.hosts


def test_backup_role_scenario():
    build_images()
    done = molecule("test", "-s", "backup", check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    # The recap counts the test sequence's actions: destroy, create, prepare, converge,
    # idempotence, verify, destroy. All seven must have succeeded.
    recap = re.search(r"^backup\s*:\s*actions=(\d+)\s+successful=(\d+).*failed=(\d+)", output, re.M)
    assert recap and recap.groups() == ("7", "7", "0"), output[-4000:]
    assert "idempotence" in output and "verify" in output
    print(f"molecule test -s backup: {done.seconds:.0f} s")
