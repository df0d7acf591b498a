"""The pgdrill_pitr role on real hosts (Molecule scenario 'pitr'): a Debian 12 database host with
PostgreSQL 15 archiving WAL through pgBackRest into an S3 host (SeaweedFS's weed, telemetry off,
serving HTTPS with a certificate for the S3 host's name from a CA this test makes).

converge runs the backup role and the pitr role (first without permission to restart: the role
says so and installs no timer; then allowed), idempotence wants zero changes, and verify checks
archiving (a WAL switch is archived), the full timer's service (a full backup in `pgbackrest info`),
modes and owners, and that no secret is in the main config, the units, the journal or ps. Then,
on the converged hosts: change_retention.yml --check --diff shows the retention lines changing and
no secret, check mode of provision_pitr.yml reports no change (so the preview wrote nothing), and
the retention change applied runs pgBackRest's expire. See molecule/pitr/verify.yml."""

import os
import re
import subprocess
import time

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


def _playbook(playbook: str, *args: str) -> str:
    """A playbook of playbooks/ against the scenario's hosts, as an operator runs it (ansible.cfg of the checkout)."""
    started = time.monotonic()
    command = [os.path.join(BIN, "ansible-playbook"), "-i", inventory_of("pitr"), os.path.join(REPO, "playbooks", playbook), *args]
    done = subprocess.run(command, cwd=REPO, env=host_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    print(f"{playbook} {' '.join(args)}: {time.monotonic() - started:.0f} s")
    return done.stdout + done.stderr


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
    finally:
        molecule("destroy", "-s", "pitr", check=False)
    print(f"molecule scenario pitr (s): {seconds}")
