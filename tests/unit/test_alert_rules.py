"""The example alert rules (docs/prometheus-alerts.yml) fire when they should and only then, checked
by Prometheus' own promtool against synthetic series (promtool test rules)."""

import os
import shutil
import subprocess

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(REPO, "docs", "prometheus-alerts.yml")
DAY = 86400
NOW = 40 * DAY  # promtool's clock starts at 0: the tests look 40 days in


def alert(name, summary, **labels):
    """An expected alert: its labels, its summary as rendered, and its description as written."""
    rules = {rule["alert"]: rule for group in yaml.safe_load(open(RULES))["groups"] for rule in group["rules"]}
    annotations = {"summary": summary}
    if "description" in rules[name]["annotations"]:
        annotations["description"] = rules[name]["annotations"]["description"]
    return {"exp_labels": dict(labels), "exp_annotations": annotations}


def run_promtool(tmp_path, tests):
    assert shutil.which("promtool"), "./run installs Debian's prometheus package for promtool"
    document = {"rule_files": [RULES], "evaluation_interval": "1h", "tests": tests}
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(document))
    return subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)


def test_rules_parse():
    done = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
    assert done.returncode == 0 and "SUCCESS: 15 rules found" in done.stdout, done.stdout + done.stderr


def test_a_stale_backup_a_failing_run_and_an_overdue_drill_fire_and_a_healthy_series_does_not(tmp_path):
    hours = int(NOW / 3600)
    series = [
        # db1: the last success was 30 hours ago, the last run failed.
        {"series": 'pgdrill_backup_last_success_timestamp_seconds{instance="db1",series="shop"}', "values": f"{NOW - 30 * 3600}x{hours}"},
        {"series": 'pgdrill_backup_last_exit_code{instance="db1",series="shop"}', "values": f"1x{hours}"},
        {"series": 'pgdrill_drill_last_success_timestamp_seconds{instance="db1",series="shop"}', "values": f"{NOW - 36 * DAY}x{hours}"},
        # db2: backed up an hour ago, exit 0, drilled last week.
        {"series": 'pgdrill_backup_last_success_timestamp_seconds{instance="db2",series="crm"}', "values": f"{NOW - 3600}x{hours}"},
        {"series": 'pgdrill_backup_last_exit_code{instance="db2",series="crm"}', "values": f"0x{hours}"},
        {"series": 'pgdrill_drill_last_success_timestamp_seconds{instance="db2",series="crm"}', "values": f"{NOW - 7 * DAY}x{hours}"},
    ]
    at = f"{hours}h"
    tests = [
        {
            "interval": "1h",
            "input_series": series,
            "alert_rule_test": [
                {
                    "eval_time": at,
                    "alertname": "PgdrillBackupStale",
                    "exp_alerts": [
                        alert("PgdrillBackupStale", "No new backup of shop on db1 for 1d 6h 0m 0s", instance="db1", series="shop", severity="critical")
                    ],
                },
                {
                    "eval_time": at,
                    "alertname": "PgdrillBackupFailing",
                    "exp_alerts": [
                        alert("PgdrillBackupFailing", "The last backup run of shop on db1 exited 1", instance="db1", series="shop", severity="critical")
                    ],
                },
                {
                    "eval_time": at,
                    "alertname": "PgdrillDrillOverdue",
                    "exp_alerts": [
                        alert("PgdrillDrillOverdue", "shop has not passed a restore drill for 36d 0h 0m 0s", instance="db1", series="shop", severity="warning")
                    ],
                },
            ],
        }
    ]
    done = run_promtool(tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr
    # And the same rules against a healthy fleet: nothing fires (an expectation of db1 alone would fail if db2 fired).
    healthy = [dict(s) for s in series if 'instance="db2"' in s["series"]]
    done = run_promtool(
        tmp_path,
        [
            {
                "interval": "1h",
                "input_series": healthy,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": name, "exp_alerts": []} for name in ("PgdrillBackupStale", "PgdrillBackupFailing", "PgdrillDrillOverdue")
                ],
            }
        ],
    )
    assert done.returncode == 0, done.stdout + done.stderr


PITR_ALERTS = (
    "PgdrillPitrArchiveStale",
    "PgdrillPitrArchiveFailing",
    "PgdrillPitrBackupFailing",
    "PgdrillPitrNoFullBackup",
    "PgdrillPitrNoDiffBackup",
    "PgdrillPitrDrillFailed",
    "PgdrillPitrDrillOverdue",
    "PgdrillPitrRpoAboveTarget",
)


def pitr_series(instance, database, *, status_at, archived_at, failures, last_failure, exit_code, full, diff, drill_passed, drilled, rpo):
    """One host's pgdrill_pitr_* metrics (stanza main) and its database's physical drill metrics on staging (labels database
    and stanza), as promtool input."""
    hours = int(NOW / 3600)
    steady = lambda value: f"{value}x{hours}"  # noqa: E731
    host = f'instance="{instance}",stanza="main"'
    drill = f'instance="staging",database="{database}",stanza="main"'
    return [
        {
            "series": f'node_textfile_mtime_seconds{{instance="{instance}",file="/var/lib/prometheus/node-exporter/pgdrill_pitr_main.prom"}}',
            "values": steady(status_at),
        },
        {
            "series": f'node_textfile_mtime_seconds{{instance="{instance}",file="/var/lib/prometheus/node-exporter/pgdrill_shop.prom"}}',
            "values": steady(NOW - 60),
        },
        {"series": f"pgdrill_pitr_archive_last_success_timestamp_seconds{{{host}}}", "values": steady(archived_at)},
        {"series": f"pgdrill_pitr_archive_failed_total{{{host}}}", "values": failures},
        {"series": f"pgdrill_pitr_archive_last_failure_timestamp_seconds{{{host}}}", "values": steady(last_failure)},
        {"series": f"pgdrill_pitr_backup_last_exit_code{{{host}}}", "values": steady(exit_code)},
        {"series": f'pgdrill_pitr_backup_last_success_timestamp_seconds{{{host},type="full"}}', "values": steady(full)},
        {"series": f'pgdrill_pitr_backup_last_success_timestamp_seconds{{{host},type="diff"}}', "values": steady(diff)},
        {"series": f"pgdrill_pitr_drill_last_passed{{{drill}}}", "values": steady(drill_passed)},
        {"series": f"pgdrill_pitr_drill_last_success_timestamp_seconds{{{drill}}}", "values": steady(drilled)},
        {"series": f"pgdrill_pitr_drill_last_rpo_seconds{{{drill}}}", "values": steady(rpo)},
    ]


def test_pitr_rules_fire_on_a_stale_failing_archive_old_backups_and_a_bad_drill_and_stay_quiet_on_a_healthy_host(tmp_path):
    hours = int(NOW / 3600)
    # db1: its status, read 10 minutes ago, says the last WAL was archived 2 hours before that, and 3 archive
    # attempts failed in the last hour (the newest after the last success); its last backup run failed; the full is
    # 9 days old, the diff 3; its last drill failed, the last passed one is 36 days old and lost 30 minutes.
    bad = pitr_series(
        "db1",
        "shop",
        status_at=NOW - 600,
        archived_at=NOW - 600 - 2 * 3600,
        failures=f"0x{hours - 1} 3",
        last_failure=NOW - 300,
        exit_code=1,
        full=NOW - 9 * DAY,
        diff=NOW - 3 * DAY,
        drill_passed=0,
        drilled=NOW - 36 * DAY,
        rpo=1800,
    )
    # db2: its status was read 20 hours ago (the daily backup) with the archive a minute old then; old failures, none
    # since; a full yesterday and the last diff 6 days ago (the full is newer: no diff is due); drilled last week, RPO 4 s.
    good = pitr_series(
        "db2",
        "crm",
        status_at=NOW - 20 * 3600,
        archived_at=NOW - 20 * 3600 - 60,
        failures=f"5x{hours}",
        last_failure=NOW - 10 * DAY,
        exit_code=0,
        full=NOW - DAY,
        diff=NOW - 6 * DAY,
        drill_passed=1,
        drilled=NOW - 7 * DAY,
        rpo=4,
    )
    at = f"{hours}h"
    host = {"instance": "db1", "stanza": "main"}
    drill = {"instance": "staging", "database": "shop", "stanza": "main"}
    full = dict(host, type="full")
    wanted = [
        ("PgdrillPitrArchiveStale", "No WAL of stanza main on db1 archived for 2h 0m 0s before its last status", "critical", host),
        ("PgdrillPitrArchiveFailing", "WAL archiving of stanza main on db1 is failing", "critical", host),
        ("PgdrillPitrBackupFailing", "The last pgBackRest backup of stanza main on db1 exited 1", "critical", host),
        ("PgdrillPitrNoFullBackup", "No full pgBackRest backup of stanza main on db1 for 9d 0h 0m 0s", "critical", full),
        ("PgdrillPitrNoDiffBackup", "No full or differential pgBackRest backup of stanza main on db1 for 3d 0h 0m 0s", "warning", host),
        ("PgdrillPitrDrillFailed", "The last point-in-time recovery drill of shop (stanza main) failed", "critical", drill),
        ("PgdrillPitrDrillOverdue", "shop (stanza main) has not passed a point-in-time recovery drill for 36d 0h 0m 0s", "warning", drill),
        (
            "PgdrillPitrRpoAboveTarget",
            "The last point-in-time recovery drill of shop (stanza main) lost 30m 0s of commits (target 15 minutes)",
            "warning",
            drill,
        ),
    ]
    expected = {name: [alert(name, summary, severity=severity, **labels)] for name, summary, severity, labels in wanted}
    assert sorted(expected) == sorted(PITR_ALERTS)
    # Both hosts together: each rule fires for db1 alone (an expectation of db1 alone fails if db2 fires too).
    tests = [
        {
            "interval": "1h",
            "input_series": bad + good,
            "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": alerts} for name, alerts in expected.items()],
        }
    ]
    done = run_promtool(tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr
    # A host that only ever archived, and whose archive count never moved: nothing fires either.
    quiet = [dict(s, values=s["values"].replace(f"0x{hours - 1} 3", f"0x{hours}")) for s in bad if "failed_total" in s["series"]]
    done = run_promtool(
        tmp_path,
        [
            {
                "interval": "1h",
                "input_series": quiet,
                "alert_rule_test": [{"eval_time": at, "alertname": "PgdrillPitrArchiveFailing", "exp_alerts": []}],
            }
        ],
    )
    assert done.returncode == 0, done.stdout + done.stderr
