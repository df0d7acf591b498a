"""report_status.yml after a real backup and a real drill: the fleet report page and its JSON on the
controller, opened in a real browser (headless Chromium) for its rows and charts."""

import glob
import json
import os
import subprocess
import sys

import pytest

from helpers import playbook_run, run_cli

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def staging():
    from pgdrill_lab.cluster import Cluster

    with Cluster(name="report-staging") as cluster:
        yield cluster


def browser(*args):
    assert os.path.exists(CHROMIUM), "./run installs Debian's chromium for the report page test"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *args], capture_output=True, text=True, timeout=120
    )


def test_report_page_after_a_backup_and_a_drill(tmp_path, pg, sample_db, staging, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = tmp_path / "source.conf"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'backups'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\n"
        f"passfile = {pg.passfile}\n[database {sample_db}]\n"
    )
    run_cli("--config", str(config))
    run_cli("--config", str(config), "--no-prune")
    controller = tmp_path / "controller"
    drill = playbook_run(
        tmp_path,
        "run_restore_drill.yml",
        {
            "pgdrill_drill_source_host": "source",
            "pgdrill_drill_database": sample_db,
            "pgdrill_drill_source_config": str(config),
            "pgdrill_drill_work_dir": str(tmp_path / "work"),
            "pgdrill_drill_host": staging.host,
            "pgdrill_drill_port": staging.port,
            "pgdrill_drill_login_user": "postgres",
            "pgdrill_drill_passfile": staging.passfile,
            "pgdrill_drill_controller_dir": str(controller),
            "pgdrill_drill_log": str(controller / "log.md"),
        },
    )
    assert drill.status == "successful", drill.stdout[-4000:]
    reports = tmp_path / "reports"
    base = {
        "pgdrill_config_path": str(config),
        "pgdrill_backup_databases": [{"name": sample_db}],
        "pgdrill_report_dir": str(reports),
        "pgdrill_report_evidence_dir": str(controller / "evidence"),
    }

    passing = playbook_run(tmp_path, "report_status.yml", base)
    assert passing.status == "successful", passing.stdout[-4000:]
    data = json.loads((reports / "pgdrill-report.json").read_text())
    (row,) = data["rows"]
    assert row["ok"] and row["host"] == "source" and row["database"] == sample_db and len(row["sets"]) == 2
    assert [d["outcome"] for d in row["drills"]] == ["passed"] and row["drills"][0]["restore_seconds"] > 0
    assert oct(os.stat(reports / "pgdrill-report.html").st_mode & 0o777) == "0o600"

    # The same fleet judged strictly: the row fails, names why, and comes out red on the page.
    failing = playbook_run(tmp_path, "report_status.yml", dict(base, pgdrill_report_max_age_hours=0.0001))
    assert failing.status == "failed"
    message = failing.task("Fail a host with a failing database")["res"]["results"][0]["msg"]
    assert f"source {sample_db}: newest backup " in message and "h old (limit 0.0001 h)" in message

    page = reports / "pgdrill-report.html"
    dom = browser("--dump-dom", f"file://{page}")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<tr class="failing">' in dom.stdout and "FAILING" in dom.stdout and sample_db in dom.stdout
    assert dom.stdout.count('<rect class="bar"') == 2 and dom.stdout.count('<rect class="drill"') == 1  # one day of sets, one drill
    assert "1 of 1 failing" in dom.stdout and " UTC" in dom.stdout
    shot = tmp_path / "report.png"
    done = browser(f"--screenshot={shot}", "--window-size=1400,420", f"file://{page}")
    assert done.returncode == 0 and shot.stat().st_size > 10_000
    kept = os.environ.get("PGDRILL_KEEP_SCREENSHOT")
    if kept:
        shot.rename(kept)
    assert glob.glob(str(controller / "evidence" / "*" / "*.json"))


def test_the_report_module_writes_and_reports_changed_only_when_the_page_changes(run_module, tmp_path):
    reports = tmp_path / "reports"
    row = {"host": "db1", "database": "shop", "info": {"newest": None, "sets": []}}
    args = {"rows": [row], "directory": str(reports), "max_age_hours": 26.0, "max_drill_age_days": 35.0, "_ansible_diff": True}

    planned, failed, _ = run_module("pgdrill_report", args, check_mode=True)
    assert not failed and planned["changed"] is True and not reports.exists()
    assert [d["after_header"] for d in planned["diff"]] == ["pgdrill-report.html", "pgdrill-report.json"]

    first, failed, _ = run_module("pgdrill_report", args)
    assert not failed and first["changed"] is True and first["failing"] == 1
    page = reports / "pgdrill-report.html"
    written = page.stat().st_mtime_ns, page.read_text()

    again, failed, _ = run_module("pgdrill_report", args)
    assert not failed and again["changed"] is False and "diff" not in again and again["rows"] == first["rows"]
    assert (page.stat().st_mtime_ns, page.read_text()) == written
    checked, failed, _ = run_module("pgdrill_report", args, check_mode=True)
    assert not failed and checked["changed"] is False

    other, failed, _ = run_module("pgdrill_report", dict(args, rows=[row, dict(row, host="db2")]))
    assert not failed and other["changed"] is True and "db2" in page.read_text()
    assert [d["after_header"] for d in other["diff"]] == ["pgdrill-report.html", "pgdrill-report.json"]
