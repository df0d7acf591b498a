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
    config.write_text(f"[pgdrill]\nbackup_dir = {tmp_path / 'backups'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\n"
                      f"passfile = {pg.passfile}\n[database {sample_db}]\n"
                      f"[drill]\ndatabase = {sample_db}\nsource_dir = {tmp_path / 'backups'}\nsource_host = source\n"
                      f"host = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
                      f"evidence_dir = {scheduled / 'evidence'}\n")
    run_cli("--config", str(config))
    run_cli("--config", str(config), "drill")
    controller = tmp_path / "controller"
    reports = tmp_path / "reports"
    base = {"pgdrill_config_path": str(config), "pgdrill_backup_databases": [{"name": sample_db}], "pgdrill_report_dir": str(reports),
            "pgdrill_report_evidence_dir": str(controller / "evidence"), "pgdrill_drill_schedule_dir": str(scheduled)}
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
