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
    rules = {rule["alert"]: rule for rule in yaml.safe_load(open(RULES))["groups"][0]["rules"]}
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
    assert done.returncode == 0 and "SUCCESS: 7 rules found" in done.stdout, done.stdout + done.stderr


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
