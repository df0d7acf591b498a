"""The fleet on real hosts: three database servers and a staging server, provisioned by
playbooks/provision_backups.yml (Molecule scenario 'fleet'), then the operator's story with the
real playbooks: backups; restore drills from the staging host (through the controller and by direct
pull, then each way a drill can fail, naming its step, with the source database unchanged); a
retention change previewed with --check --diff and then applied; and the status report, which fails
on a host made stale on purpose."""

import json
import os
import shutil
import time
from pathlib import Path

import ansible_runner
import pytest

from conftest_hosts import REPO, build_images, host_env, inventory_of, molecule

pytestmark = pytest.mark.hosts

DBS = ["pgdrill-fleet-db1", "pgdrill-fleet-db2", "pgdrill-fleet-db3"]
TIMINGS = {}


# The off-host store: a directory of the test machine, bind-mounted into db3 and staging as
# /srv/offsite (molecule/fleet/molecule.yml), served to pgdrill by rclone's local backend. It
# outlives db3's container, as a bucket outlives a lost host.
OFFSITE = "/var/tmp/pgdrill-fleet-offsite"
REMOTE = "rclone::local:/srv/offsite/pgdrill"
# Each host pushes into its own folder under the fleet's remote (the backup role's default).
DB3_REMOTE = REMOTE + "/pgdrill-fleet-db3"


@pytest.fixture(scope="module")
def fleet():
    build_images()
    shutil.rmtree(OFFSITE, ignore_errors=True)
    os.makedirs(OFFSITE, mode=0o777)
    os.chmod(OFFSITE, 0o777)  # the backup user inside db3 writes here
    started = time.monotonic()
    molecule("destroy", "-s", "fleet", check=False)
    try:
        for step in ("create", "prepare", "converge"):
            TIMINGS[step] = round(molecule(step, "-s", "fleet").seconds, 1)
        yield inventory_of("fleet")
    finally:
        molecule("destroy", "-s", "fleet", check=False)
        shutil.rmtree(OFFSITE, ignore_errors=True)
        TIMINGS["total"] = round(time.monotonic() - started, 1)
        print(f"\nfleet scenario timings (s): {json.dumps(TIMINGS)}")


def run(inventory, tmp_path, playbook=None, module=None, args=None, pattern="pgdrill_databases", extravars=None, cmdline=None):
    private = tmp_path / f"runner-{len(os.listdir(tmp_path))}"
    private.mkdir()
    env = host_env()
    kwargs = dict(
        private_data_dir=str(private),
        inventory=inventory,
        extravars=extravars or {},
        cmdline=cmdline,
        quiet=True,
        envvars={"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "ANSIBLE_FORKS": "4", "CONTAINERS_CONF": env["CONTAINERS_CONF"]},
    )
    os.environ["PATH"] = env["PATH"]
    os.environ["CONTAINERS_CONF"] = env["CONTAINERS_CONF"]
    if playbook:
        result = ansible_runner.run(playbook=os.path.join(REPO, "playbooks", playbook), **kwargs)
    else:
        result = ansible_runner.run(module=module, module_args=args, host_pattern=pattern, **kwargs)
    events = list(result.events)
    return result, events, result.stdout.read()


def per_host(events, event_name="runner_on_ok", task=None):
    out = {}
    for event in events:
        data = event.get("event_data", {})
        if event["event"] == event_name and (task is None or data.get("task") == task):
            out.setdefault(data["host"], []).append(data.get("res", {}))
    return out


def backup_files(inventory, tmp_path):
    _, events, _ = run(
        inventory, tmp_path, module="ansible.builtin.shell", args="find /var/backups/pgdrill /var/backups/crm -name '*_utc.*' -printf '%f\\n' | sort"
    )
    return {host: res[0]["stdout_lines"] for host, res in per_host(events).items()}


def age_manifests(inventory, tmp_path, pattern, days_by_rank):
    """Move the manifest times of each database's sets back: rank 0 is the newest set."""
    script = (
        "import glob, json, datetime\n"
        f"days = {days_by_rank!r}\n"
        "for prefix in ('ez360pm', 'crm-main'):\n"
        "    names = sorted(glob.glob(f'/var/backups/*/{prefix}_manifest_*.json'), reverse=True)\n"
        "    for rank, name in enumerate(names):\n"
        "        if rank in days:\n"
        "            doc = json.load(open(name))\n"
        "            when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days[rank])\n"
        "            doc['started_at'] = when.isoformat().replace('+00:00', 'Z')\n"
        "            json.dump(doc, open(name, 'w'))\n"
    )
    result, _, out = run(inventory, tmp_path, module="ansible.builtin.shell", args=f'python3 -c "{script}"', pattern=pattern)
    assert result.status == "successful", out


def test_provisioning_is_idempotent(fleet):
    done = molecule("idempotence", "-s", "fleet")
    TIMINGS["idempotence"] = round(done.seconds, 1)


def test_backups_retention_change_and_status_report(fleet, tmp_path):
    inventory = fleet
    # Three backups per database on every host, through the systemd unit the role installed.
    for _ in range(3):
        result, _, out = run(inventory, tmp_path, module="ansible.builtin.command", args="systemctl start pgdrill-backup.service")
        assert result.status == "successful", out
    files = backup_files(inventory, tmp_path)
    assert sorted(files) == DBS
    for host, names in files.items():
        assert len([n for n in names if n.startswith("ez360pm_manifest_")]) == 3, (host, names)
        assert len([n for n in names if n.startswith("crm-main_manifest_")]) == 3, (host, names)
    # A restore drill from the staging host against db1, through the controller; db1 untouched.
    drill_from_staging(inventory, tmp_path)

    # The two older sets of each database become 20 and 40 days old.
    age_manifests(inventory, tmp_path, "pgdrill_databases", {1: 20, 2: 40})
    expected_removed = {}
    for host, names in files.items():
        for prefix in ("ez360pm", "crm-main"):
            stamps = sorted((n.split("_manifest_")[1][: -len("_utc.json")] for n in names if n.startswith(prefix + "_manifest_")), reverse=True)
            expected_removed[(host, prefix)] = sorted(f"{prefix}_{stamp}_utc" for stamp in stamps[1:])

    # Preview: --check --diff names exactly the sets that would go, and deletes nothing.
    retention = {"pgdrill_backup_keep_last": 1, "pgdrill_backup_retention_days": 7}
    started = time.monotonic()
    result, events, out = run(inventory, tmp_path, playbook="change_retention.yml", extravars=retention, cmdline="--check --diff")
    TIMINGS["change_retention_check"] = round(time.monotonic() - started, 1)
    assert result.status == "successful", out[-4000:]
    prunes = per_host(events, "runner_item_on_ok", "Prune each database's backup sets with the new retention")
    assert sorted(prunes) == DBS
    for host, items in prunes.items():
        for res in items:
            prefix = "crm-main" if res["item"]["name"] == "crm" else "ez360pm"
            assert res["changed"] is True
            assert sorted(entry["set"] for entry in res["removed"]) == expected_removed[(host, prefix)], (host, res["removed"])
            assert all(name not in res["diff"]["after"] and name in res["diff"]["before"] for name in expected_removed[(host, prefix)])
    assert "+keep_last = 1" in out and "-keep_last = 14" in out  # the config diff is shown
    assert backup_files(inventory, tmp_path) == files  # nothing deleted

    # For real.
    started = time.monotonic()
    result, events, out = run(inventory, tmp_path, playbook="change_retention.yml", extravars=retention)
    TIMINGS["change_retention_apply"] = round(time.monotonic() - started, 1)
    assert result.status == "successful", out[-4000:]
    after = backup_files(inventory, tmp_path)
    for host, names in after.items():
        for prefix in ("ez360pm", "crm-main"):
            manifests = [n for n in names if n.startswith(prefix + "_manifest_")]
            assert len(manifests) == 1, (host, names)
            kept = prefix + "_" + manifests[0].split("_manifest_")[1][: -len(".json")]
            assert kept not in expected_removed[(host, prefix)]
    # Applying again changes nothing.
    result, events, out = run(inventory, tmp_path, playbook="change_retention.yml", extravars=retention)
    assert result.status == "successful" and all(not r["changed"] for rs in per_host(events, "runner_item_on_ok").values() for r in rs)

    # The status report passes while every backup is fresh (drills are judged after the drills, below) ...
    report = {"pgdrill_report_max_drill_age_days": 0, "pgdrill_report_dir": str(tmp_path / "reports")}
    result, events, out = run(inventory, tmp_path, playbook="report_status.yml", extravars=report)
    assert result.status == "successful", out[-4000:]
    # ... and fails db3 alone, first in the summary, once its newest backups are three days old.
    age_manifests(inventory, tmp_path, "pgdrill-fleet-db3", {0: 3})
    result, events, out = run(inventory, tmp_path, playbook="report_status.yml", extravars=report)
    assert result.status == "failed"
    failed = per_host(events, "runner_item_on_failed")
    assert sorted(failed) == ["pgdrill-fleet-db3"]
    assert all("h old (limit 26 h)" in res["msg"] for res in failed["pgdrill-fleet-db3"])
    summary = per_host(events, "runner_on_ok", "Show the fleet, failing hosts first")
    rows = next(iter(summary.values()))[0]["msg"]
    assert rows[0]["host"] == "pgdrill-fleet-db3" and rows[0]["ok"] is False and all(row["ok"] for row in rows[2:])


def source_fingerprint(inventory, tmp_path, host="pgdrill-fleet-db1", dbname="ez360pm"):
    script = (
        f"set -o pipefail; runuser -u postgres -- pg_dump --schema-only {dbname} | grep -v -e '^.restrict' -e '^.unrestrict' | sha256sum;"
        f" runuser -u postgres -- psql -XAt -d {dbname} -c \"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM invoices t\""
    )
    _, events, _ = run(inventory, tmp_path, module="ansible.builtin.shell", args=f"executable=/bin/bash {script}", pattern=host)
    return per_host(events)[host][0]["stdout"]


def shell_on(inventory, tmp_path, host, script):
    result, events, out = run(inventory, tmp_path, module="ansible.builtin.shell", args=f"executable=/bin/bash {script}", pattern=host)
    assert result.status == "successful", out[-3000:]
    return per_host(events)[host][0]["stdout"]


def drill(inventory, tmp_path, extravars):
    """One run of playbooks/run_restore_drill.yml; its status, output and newest evidence record."""
    result, _, out = run(inventory, tmp_path, playbook="run_restore_drill.yml", extravars=extravars)
    records = sorted((Path(extravars["pgdrill_drill_controller_dir"]) / "evidence" / "pgdrill-fleet-staging").glob("*.json"), key=os.path.getmtime)
    return result.status, out, json.loads(records[-1].read_text()) if records else None


def drill_from_staging(inventory, tmp_path):
    before = source_fingerprint(inventory, tmp_path)
    # Restoring owners and replaying roles needs a superuser on staging (the drill's defaults).
    shell_on(
        inventory,
        tmp_path,
        "pgdrill-fleet-staging",
        "runuser -u postgres -- psql -XAtq -c \"SELECT 1 FROM pg_roles WHERE rolname = 'drill_admin'\" | grep -q 1"
        " || runuser -u postgres -- psql -Xq -c \"CREATE ROLE drill_admin SUPERUSER LOGIN PASSWORD 'staging-secret-5c2'\"",
    )
    controller = tmp_path / "controller"
    log = controller / "drill-log.md"
    base = {
        "pgdrill_drill_source_host": "pgdrill-fleet-db1",
        "pgdrill_drill_database": "ez360pm",
        "pgdrill_drill_host": "127.0.0.1",
        "pgdrill_drill_login_user": "drill_admin",
        "pgdrill_drill_password": "staging-secret-5c2",
        "pgdrill_drill_controller_dir": str(controller),
        "pgdrill_drill_log": str(log),
        "pgdrill_drill_post_restore_commands": [
            {"name": "psql reaches the restored copy", "command": ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1"]}
        ],
        "pgdrill_drill_checks": [
            {"name": "invoices are all there", "sql": "SELECT count(*) FROM invoices", "expect": "value", "value": 200000},
            {"name": "create invoice", "sql": "INSERT INTO invoices (number) VALUES ('INV-DRILL') RETURNING id", "expect": "rows"},
        ],
    }
    started = time.monotonic()
    status, out, record = drill(inventory, tmp_path, base)
    TIMINGS["drill"] = round(time.monotonic() - started, 1)
    assert status == "successful", out[-6000:]
    assert record["outcome"] == "passed" and record["source_host"] == "pgdrill-fleet-db1" and record["staging_host"] == "pgdrill-fleet-staging"
    assert [c["name"] for c in record["checks"]] == [
        "fingerprint against the backup",
        "row counts against the manifest",
        "psql reaches the restored copy",
        "invoices are all there",
        "create invoice",
    ]
    assert record["fidelity"]["ok"] and record["not_restored"] == [] and record["globals_roles_left_alone"] == ["pgdrill", "postgres"]
    assert all(c["ok"] for c in record["checks"]) and record["timings"]["restore"] > 0
    newest = record["set"]
    TIMINGS["drill_steps"] = record["timings"]
    assert log.read_text().strip().splitlines()[-1].endswith("PASSED")
    # After a passed drill no copy of the backup is left on staging or on the controller.
    assert shell_on(inventory, tmp_path, "pgdrill-fleet-staging", "ls -A /var/lib/pgdrill/drills | grep -v '^evidence$' || true") == ""
    assert not any(p.is_file() for p in (controller / "transfer").rglob("*"))

    # Direct transfer: staging pulls the set from db1 with scp, as root with a key of its own.
    public = shell_on(
        inventory,
        tmp_path,
        "pgdrill-fleet-staging",
        "test -f /root/.ssh/id_ed25519 || ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519; cat /root/.ssh/id_ed25519.pub",
    )
    address = shell_on(
        inventory,
        tmp_path,
        "pgdrill-fleet-db1",
        f"install -d -m 0700 /root/.ssh && echo '{public}' >> /root/.ssh/authorized_keys && hostname -I | cut -d' ' -f1",
    )
    direct = dict(
        base,
        pgdrill_drill_transfer="direct",
        pgdrill_drill_direct_address=address,
        pgdrill_drill_direct_user="root",
        pgdrill_drill_direct_ssh_options=["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"],
    )
    shutil.rmtree(controller / "transfer")  # a drill through the controller would make it again
    started = time.monotonic()
    status, out, record = drill(inventory, tmp_path, direct)
    TIMINGS["drill_direct"] = round(time.monotonic() - started, 1)
    assert status == "successful", out[-6000:]
    assert record["outcome"] == "passed" and record["set"] == newest and record["transfer"] == "direct"
    assert not (controller / "transfer").exists()  # never through the controller

    # Each way a drill can fail names its step, in the play's failure, the evidence and the drill log.
    dump = shell_on(inventory, tmp_path, "pgdrill-fleet-db2", "ls /var/backups/pgdrill/ez360pm_db_*.dump* | sort | tail -1")
    shell_on(
        inventory, tmp_path, "pgdrill-fleet-db2", f"cp -p {dump} /root/saved.dump && printf 'XXXXXXXX' | dd of={dump} bs=1 seek=4096 conv=notrunc status=none"
    )
    failures = [
        ("corrupted set", dict(base, pgdrill_drill_source_host="pgdrill-fleet-db2"), "verify at the source", "sha256 does not match the manifest"),
        (
            "missing set",
            dict(base, pgdrill_drill_set="ez360pm_20200101_000000_utc"),
            "pick the set",
            "there is no complete backup set ez360pm_20200101_000000_utc",
        ),
        ("stale newest set", dict(base, pgdrill_drill_max_age_hours=0.0001), "pick the set", "h old (limit 0.0001 h)"),
        (
            "unreachable source for a direct transfer",
            dict(direct, pgdrill_drill_direct_ssh_options=["-P", "1", "-o", "BatchMode=yes"]),
            "transfer",
            "Connection refused",
        ),
        (
            "failing SQL check",
            dict(base, pgdrill_drill_checks=[{"name": "impossible", "sql": "SELECT 1 WHERE false", "expect": "rows"}]),
            "smoke checks",
            "sql 'impossible' failed",
        ),
        (
            "failing post-restore command",
            dict(
                base,
                pgdrill_drill_keep_on_failure=True,
                pgdrill_drill_post_restore_commands=[
                    {"name": "migrate", "command": ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM no_such_table"]}
                ],
            ),
            "smoke checks",
            "command 'migrate' failed",
        ),
    ]
    for case, extravars, step, message in failures:
        status, out, record = drill(inventory, tmp_path, extravars)
        assert status == "failed", case
        assert f"failed at step '{step}'" in out and message in out, (case, out[-4000:])
        assert record["outcome"] == "failed" and record["failed_step"] == step and message in record["error"], (case, record)
        assert log.read_text().strip().splitlines()[-1].endswith(f"FAILED at {step}"), case
    shell_on(inventory, tmp_path, "pgdrill-fleet-db2", f"mv /root/saved.dump {dump}")

    # Only the drill kept on failure left its scratch database (and its copy); every other was dropped.
    kept = shell_on(
        inventory, tmp_path, "pgdrill-fleet-staging", "runuser -u postgres -- psql -XAt -c \"SELECT datname FROM pg_database WHERE datname LIKE 'drill_%'\""
    )
    assert kept == record["scratch_database"] and record["scratch_database_kept"] is True
    assert shell_on(inventory, tmp_path, "pgdrill-fleet-staging", "ls /var/lib/pgdrill/drills") == f"evidence\n{newest}"
    shell_on(inventory, tmp_path, "pgdrill-fleet-staging", f"runuser -u postgres -- dropdb {kept}; rm -r /var/lib/pgdrill/drills/{newest}")
    assert source_fingerprint(inventory, tmp_path) == before

    # With drills judged, only the database that was drilled passes the report; the others name the missing drill.
    result, events, out = run(
        inventory,
        tmp_path,
        playbook="report_status.yml",
        extravars={"pgdrill_report_dir": str(tmp_path / "reports"), "pgdrill_report_evidence_dir": str(controller / "evidence")},
    )
    assert result.status == "failed"
    rows = json.loads((tmp_path / "reports" / "pgdrill-report.json").read_text())["rows"]
    drilled = [row for row in rows if row["ok"]]
    assert [(row["host"], row["database"]) for row in drilled] == [("pgdrill-fleet-db1", "ez360pm")]
    assert "passed" in [drill["outcome"] for drill in drilled[0]["drills"]]
    assert all("no passed restore drill (limit 35 days)" in row["problems"] for row in rows if not row["ok"])


def test_disaster_recovery_with_a_database_host_removed(fleet, tmp_path):
    """Last, because it removes a host: db3 is provisioned to encrypt its sets and push them off the
    host, backs up, and its container is removed. With an inventory that no longer reaches db3, the
    drill runs on staging from the off-host copy, and the restore playbook brings the database back
    on staging, equal to db3's before it was lost."""
    import subprocess

    inventory = fleet
    keys = tmp_path / "keys"
    keys.mkdir()
    subprocess.run(["age-keygen", "-o", str(keys / "drill.key")], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(keys / "drill.key")], check=True, capture_output=True, text=True).stdout.strip()
    offsite = {"pgdrill_backup_remote": REMOTE, "pgdrill_backup_encrypt_recipients": [recipient]}
    result, _, out = run(inventory, tmp_path, playbook="provision_backups.yml", extravars=offsite, cmdline="-l pgdrill-fleet-db3")
    assert result.status == "successful", out[-5000:]
    result, _, out = run(inventory, tmp_path, playbook="run_backup.yml", cmdline="-l pgdrill-fleet-db3")
    assert result.status == "successful", out[-5000:]
    stored = os.listdir(os.path.join(OFFSITE, "pgdrill", "pgdrill-fleet-db3"))
    assert any(name.startswith("ez360pm_manifest_") for name in stored), stored
    assert all(name.endswith((".age", ".json")) for name in stored), stored  # no plaintext left the host
    before = source_fingerprint(inventory, tmp_path, "pgdrill-fleet-db3")

    subprocess.run(["podman", "rm", "-f", "pgdrill-fleet-db3"], env=host_env(), check=True, capture_output=True)

    # Staging: the drill's identity, and a superuser login for the restores (as in the drills above).
    result, _, out = run(
        inventory, tmp_path, module="ansible.builtin.copy", pattern="pgdrill-fleet-staging", args=f"src={keys / 'drill.key'} dest=/root/drill.key mode=0600"
    )
    assert result.status == "successful", out[-3000:]
    shell_on(
        inventory,
        tmp_path,
        "pgdrill-fleet-staging",
        "runuser -u postgres -- psql -XAtq -c \"SELECT 1 FROM pg_roles WHERE rolname = 'drill_admin'\" | grep -q 1"
        " || runuser -u postgres -- psql -Xq -c \"CREATE ROLE drill_admin SUPERUSER LOGIN PASSWORD 'staging-secret-5c2'\";"
        " umask 077; echo '127.0.0.1:5432:*:drill_admin:staging-secret-5c2' > /root/.pgpass-drill",
    )
    controller = tmp_path / "controller"
    status, out, record = drill(
        inventory,
        tmp_path,
        {
            "pgdrill_drill_database": "ez360pm",
            "pgdrill_drill_transfer": "remote",
            "pgdrill_drill_remote": DB3_REMOTE,
            "pgdrill_drill_remote_prefix": "ez360pm",
            "pgdrill_drill_identity_file": "/root/drill.key",
            "pgdrill_drill_host": "127.0.0.1",
            "pgdrill_drill_login_user": "drill_admin",
            "pgdrill_drill_password": "staging-secret-5c2",
            "pgdrill_drill_controller_dir": str(controller),
            "pgdrill_drill_log": str(controller / "drill-log.md"),
            "pgdrill_drill_checks": [{"name": "invoices", "sql": "SELECT 1 FROM invoices LIMIT 1", "expect": "rows"}],
        },
    )
    assert status == "successful", out[-6000:]
    assert record["outcome"] == "passed" and record["source_host"] == DB3_REMOTE and record["fidelity"]["ok"], record

    result, _, out = run(
        inventory,
        tmp_path,
        playbook="restore_database.yml",
        extravars={
            "pgdrill_restore_hosts": "pgdrill-fleet-staging",
            "pgdrill_restore_database": "ez360pm",
            "pgdrill_restore_target": "ez360pm_recovered",
            "pgdrill_restore_remote": DB3_REMOTE,
            "pgdrill_restore_identity_file": "/root/drill.key",
            "pgdrill_restore_globals": True,
            "pgdrill_restore_login_host": "127.0.0.1",
            "pgdrill_restore_login_user": "drill_admin",
            "pgdrill_restore_passfile": "/root/.pgpass-drill",
        },
    )
    assert result.status == "successful", out[-6000:]
    assert source_fingerprint(inventory, tmp_path, "pgdrill-fleet-staging", "ez360pm_recovered") == before
