"""``./run demo --pitr`` end to end: a throwaway PostgreSQL and a throwaway S3 server over TLS,
pgBackRest provisioned by the pgdrill_pitr role through its playbook, a restore point marked while a
writer commits, a PITR drill to that point and one to the latest WAL, the report page, and nothing
left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys

BIN = os.path.dirname(sys.executable)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_pitr_demo_drills_to_its_mark_and_to_the_latest_wal_and_removes_everything():
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")
    done = subprocess.run(
        [os.path.join(BIN, "pgdrill-lab"), "demo", "--pitr", "--scale", "2000"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-3000:]
    # The role provisioned pgBackRest (no restart by it: the demo restarts its own server), and it works.
    assert "PLAY [Provision point-in-time recovery (pgBackRest) on database servers]" in out
    assert re.search(r"TASK \[pgdrill_pitr : Create the stanza\] \**\nchanged: \[localhost\]", out), out[:6000]
    assert "pgdrill_pitr_restart_allowed is false" in out
    assert "pgbackrest check: WAL archiving into the encrypted S3 repository works" in out
    point = re.search(r"restore point (pgdrill_ez360pm_\d{8}T\d{6}(?:\.\d{3})?Z) at LSN", out).group(1)
    assert int(re.search(r"the writer committed (\d+) transactions", out).group(1)) >= 300  # it wrote through the mark

    # Both drills, each PASSED with its RPO, RTO and evidence (a drill that fails makes the demo fail).
    verdicts = out.split("== PITR drills", 1)[1]
    to_point = re.search(rf"physical to name {point} · RPO n/a · RTO [\d.]+ s · .* · PASSED\nevidence: (\S+\.json)", verdicts)
    to_latest = re.search(r"physical to latest · RPO [\d.]+ s · RTO [\d.]+ s · .* · PASSED\nevidence: (\S+\.json)", verdicts)
    assert to_point and to_latest, verdicts
    page = re.search(r"report page: (\S+)", verdicts).group(1)
    assert page.endswith("pgdrill-report.html") and "(0 of 1 failing)" in out and '"window_start"' in out

    # Nothing left behind: the demo's directory (evidence, report, pgBackRest's config and secrets),
    # the cluster's and the S3 server's directories, and their processes.
    work = re.search(r"removed: the cluster, the S3 server and (\S+)", out).group(1)
    cluster_base = re.search(r"socket (\S+)/run;", out).group(1)
    s3_base = re.search(r"\(CA (\S+)/tls/ca\.crt\)", out).group(1)
    for path in (work, cluster_base, s3_base, to_point.group(1), page):
        assert not os.path.exists(path), path
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert cluster_base not in processes and s3_base not in processes and work not in processes
    # The role's secrets stayed in their 0600 file: no_log kept them out of the output.
    assert "repo1-cipher-pass" not in out and "repo1-s3-key-secret" not in out
