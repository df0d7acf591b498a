"""A scheduled drill (``pgdrill-backup drill`` on staging) counts in the report: report_status.yml
collects its evidence from staging, and the row shows the drill; a failed one shows as the last drill."""

import json
import os
import sys

from helpers import playbook_run, run_cli


def test_report_counts_the_drills_the_staging_timer_ran(tmp_path, pg, sample_db, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = tmp_path / "source.conf"
    scheduled = tmp_path / "pgdrill-drill"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'backups'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\n"
        f"passfile = {pg.passfile}\n[database {sample_db}]\n"
        f"[drill]\ndatabase = {sample_db}\nsource_dir = {tmp_path / 'backups'}\nsource_host = source\n"
        f"host = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
        f"evidence_dir = {scheduled / 'evidence'}\n"
    )
    run_cli("--config", str(config))
    run_cli("--config", str(config), "drill")
    controller = tmp_path / "controller"
    reports = tmp_path / "reports"
    base = {
        "pgdrill_config_path": str(config),
        "pgdrill_backup_databases": [{"name": sample_db}],
        "pgdrill_report_dir": str(reports),
        "pgdrill_report_evidence_dir": str(controller / "evidence"),
        "pgdrill_drill_schedule_dir": str(scheduled),
    }
    passing = playbook_run(tmp_path, "report_status.yml", base)
    assert passing.status == "successful", passing.stdout[-4000:]
    assert len(os.listdir(controller / "evidence" / "scheduled" / "staging")) == 1
    (row,) = json.loads((reports / "pgdrill-report.json").read_text())["rows"]
    assert row["ok"] and [d["outcome"] for d in row["drills"]] == ["passed"], row

    # The next scheduled drill fails (the newest set is too old for it): the report names the drill.
    with open(config, "a", encoding="utf-8") as handle:
        handle.write("max_age_hours = 0.00001\n")
    run_cli("--config", str(config), "drill", check=1)
    again = playbook_run(tmp_path, "report_status.yml", base)
    assert again.status == "successful", again.stdout[-4000:]  # the passed drill is still within 35 days
    (row,) = json.loads((reports / "pgdrill-report.json").read_text())["rows"]
    assert [d["outcome"] for d in row["drills"]] == ["passed", "failed"], row
    assert len(os.listdir(controller / "evidence" / "scheduled" / "staging")) == 2
    assert '<span class="muted">failed</span>' in (reports / "pgdrill-report.html").read_text()  # the last drill, shown failed


def test_installing_the_drill_timer_in_check_mode_says_what_it_would_do_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    units = ["/etc/systemd/system/pgdrill-drill.service", "/etc/systemd/system/pgdrill-drill.timer", "/etc/systemd/system/pgdrill-drill-notify@.service"]
    assert not any(os.path.exists(unit) for unit in units), "this machine must not have a drill timer of its own"
    paths = {
        "pgdrill_drill_schedule_config_dir": tmp_path / "etc",
        "pgdrill_drill_schedule_dir": tmp_path / "var",
        "pgdrill_backup_install_dir": tmp_path / "opt",
        "pgdrill_backup_command": tmp_path / "bin" / "pgdrill-backup",
    }
    try:
        run = playbook_run(
            tmp_path,
            "schedule_restore_drills.yml",
            {
                **{key: str(value) for key, value in paths.items()},
                "pgdrill_drill_hosts": "staging",
                "pgdrill_drill_database": "shop",
                "pgdrill_drill_schedule_source_dir": str(tmp_path / "sets"),
                "pgdrill_drill_schedule_user": "root",
                "pgdrill_drill_ping_url": "https://hc-ping.example/k",
                "pgdrill_drill_password": "s3cret-drill",
                "pgdrill_drill_on_failure_command": "echo failed",
            },
            check=True,
        )
        assert run.status == "successful", run.stdout[-4000:]
        for task in (
            "Write the drill's config",
            "Install the drill service and timer",
            "Install the notification unit (systemd)",
            "Create the drill's directory for evidence and its log",
        ):
            assert run.task(task)["changed"], task
        assert run.task("Load the changed units and restart the drill timer")["event"] == "runner_on_skipped"
        assert [path for path in paths.values() if os.path.exists(path)] == []
        assert not any(os.path.exists(unit) for unit in units)
        assert "s3cret-drill" not in run.everything()
    finally:
        for unit in units:
            if os.path.exists(unit):
                os.unlink(unit)
