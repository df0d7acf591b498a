"""The metrics file's text and the report page's content: pure rendering."""

import json
import os
from datetime import datetime, timezone

from pgdrill import metrics, report

SETS = [
    {
        "set": "shop_20261127_021500_utc",
        "state": "complete",
        "time": "2026-11-27T02:15:00+00:00",
        "finished_at": "2026-11-27T02:15:09Z",
        "sizes": {"db": 1200, "globals": 300},
        "verification": {"ok": True, "restored": True, "checked_at": "2026-11-27T03:00:00Z"},
    },
    {
        "set": "shop_20261126_021500_utc",
        "state": "complete",
        "time": "2026-11-26T02:15:00+00:00",
        "finished_at": "2026-11-26T02:15:08Z",
        "sizes": {"db": 1100},
        "verification": {"ok": True, "restored": False, "checked_at": "2026-11-26T03:00:00Z"},
    },
    {"set": "shop_20261125_021500_utc", "state": "damaged", "time": "2026-11-25T02:15:00+00:00"},
]


def test_metrics_text_is_prometheus_format_with_units_and_labels():
    state = {"backup": {"started": 1764209700.0, "exit_code": 1, "duration": 3.25}}
    text = metrics.render(metrics.series_samples('shop "main"', SETS, state))
    lines = text.splitlines()
    assert "# TYPE pgdrill_backup_last_success_timestamp_seconds gauge" in lines
    assert 'pgdrill_backup_last_success_timestamp_seconds{series="shop \\"main\\""} 1795745709' in lines
    assert 'pgdrill_backup_last_exit_code{series="shop \\"main\\""} 1' in lines
    assert 'pgdrill_backup_last_duration_seconds{series="shop \\"main\\""} 3.25' in lines
    assert 'pgdrill_backup_last_size_bytes{kind="db",series="shop \\"main\\""} 1200' in lines
    assert 'pgdrill_sets{series="shop \\"main\\"",state="damaged"} 1' in lines and 'pgdrill_sets{series="shop \\"main\\"",state="complete"} 2' in lines
    assert 'pgdrill_verify_last_success_timestamp_seconds{level="restore",series="shop \\"main\\""} 1795748400' in lines
    assert 'pgdrill_verify_last_success_timestamp_seconds{level="checksums",series="shop \\"main\\""} 1795662000' in lines
    assert any(line.startswith('pgdrill_info{version="') and line.endswith("} 1") for line in lines)
    helps = [line for line in lines if line.startswith("# HELP")]
    assert len(helps) == len({line.split()[2] for line in helps})  # one HELP per metric


def test_metrics_without_any_set_say_so_and_no_success():
    text = metrics.render(metrics.series_samples("shop", [], {}))
    assert "pgdrill_backup_last_success_timestamp_seconds" not in text and 'pgdrill_sets{series="shop",state="complete"} 0' in text


def test_metrics_files_are_replaced_whole(tmp_path):
    path = metrics.update(str(tmp_path), "shop", SETS, command="backup", started=1.0, exit_code=0, duration=2.0)
    assert path.endswith("pgdrill_shop.prom") and "pgdrill_backup_last_exit_code" in open(path).read()
    metrics.update(str(tmp_path), "shop", SETS, command="backup", started=5.0, exit_code=1, duration=2.0)
    assert 'pgdrill_backup_last_exit_code{series="shop"} 1' in open(path).read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgdrill_shop.prom", "pgdrill_shop.state.json"]


ROWS = [
    {
        "host": "db2",
        "database": "crm",
        "ok": True,
        "age_hours": 3.2,
        "newest": {"set": "crm_x", "time": "2026-11-27T02:15:00Z", "size": 10_000_000, "verified": "ok"},
        "sets": [
            {"time": "2026-11-26T02:15:00Z", "size": 9_000_000, "duration_seconds": 4.0},
            {"time": "2026-11-27T02:15:00Z", "size": 10_000_000, "duration_seconds": 5.0},
        ],
        "drills": [{"time": "2026-11-20T04:00:00Z", "outcome": "passed", "restore_seconds": 12.5}],
    },
    {
        "host": "db1",
        "database": "shop <main>",
        "ok": False,
        "age_hours": 30.2,
        "problems": ["newest backup is 30.2 h old (limit 26 h)"],
        "newest": {"set": "shop_y", "time": "2026-11-26T00:00:00Z", "size": 20_000_000, "verified": "failed"},
        "sets": [],
        "drills": [],
    },
]


def test_report_page_puts_failing_rows_first_escapes_and_charts():
    page = report.render_html(ROWS, datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc))
    assert page.index("db1") < page.index("db2") and "1 of 2 failing" in page
    assert "shop &lt;main&gt;" in page and "<main>" not in page
    assert "newest backup is 30.2 h old (limit 26 h)" in page and "generated 2026-11-27 06:00:00 UTC" in page
    assert page.count('<rect class="bar"') == 4 and page.count('<rect class="drill"') == 1  # sizes and durations for 2 days; 1 drill
    assert "src=" not in page and "<link" not in page and "<script" not in page


def test_report_json_has_the_same_rows_in_the_same_order():
    document = json.loads(report.render_json(ROWS, datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)))
    assert document["generated_at"] == "2026-11-27T06:00:00Z" and [r["host"] for r in document["rows"]] == ["db1", "db2"]


def test_per_day_keeps_the_last_value_of_each_day():
    points = [("2026-11-26T23:00:00Z", 2), ("2026-11-26T01:00:00Z", 1), ("2026-11-27T00:30:00+01:00", 3), ("bad", 9), ("2026-11-27T08:00:00Z", None)]
    # 00:30 at +01:00 is 23:30 UTC on the 26th: the day's last value; listing order does not matter
    assert report.per_day(points) == [("2026-11-26", 3.0)]


NOW = datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)


def test_judging_a_row_names_every_problem():
    fresh = {"newest": {"set": "s1", "time": "2026-11-27T02:15:00Z", "verified": "ok"}, "drills": [{"time": "2026-11-20T04:00:00Z", "outcome": "passed"}]}
    assert report.judge(fresh, NOW, 26, 35) == dict(fresh, age_hours=3.8, ok=True, problems=[])
    stale = dict(
        fresh,
        newest={"set": "s0", "time": "2026-11-25T02:15:00Z", "verified": "failed"},
        drills=[{"time": "2026-10-01T04:00:00Z", "outcome": "passed"}, {"time": "2026-11-26T04:00:00Z", "outcome": "failed"}],
    )
    judged = report.judge(stale, NOW, 26, 35)
    assert not judged["ok"] and judged["problems"] == [
        "newest backup s0 is 51.8 h old (limit 26 h)",
        "newest backup s0 failed verification",
        "last passed restore drill is 57 days old (limit 35 days)",
    ]
    assert report.judge({"newest": None, "drills": []}, NOW, 26, 35)["problems"] == ["no complete backup at all", "no passed restore drill (limit 35 days)"]
    assert report.judge(dict(fresh, drills=[]), NOW, 26, 0)["ok"]  # 0: drills are not judged
    # A verify that could not run blames nothing, but fails the row until someone looks.
    blocked = dict(fresh, newest=dict(fresh["newest"], could_not_verify="could not verify: no identity matched"))
    assert report.judge(blocked, NOW, 26, 35)["problems"] == ["newest backup s1 could not be verified: could not verify: no identity matched"]


def test_drills_come_from_evidence_records_of_that_host_and_database():
    records = [
        {"source_host": "db1", "database": "shop", "outcome": "passed", "finished_at": "2026-11-20T04:00:00Z", "timings": {"restore": 9.5}},
        {"source_host": "db1", "database": "shop", "outcome": "checked", "finished_at": "2026-11-21T04:00:00Z"},
        {"source_host": "db2", "database": "shop", "outcome": "passed", "finished_at": "2026-11-22T04:00:00Z"},
        {"source_host": "db1", "database": "shop", "outcome": "failed", "finished_at": "2026-11-19T04:00:00Z", "failed_step": "restore"},
    ]
    assert report.drills_of(records, "db1", "shop") == [
        {"time": "2026-11-19T04:00:00Z", "outcome": "failed", "restore_seconds": None, "failed_step": "restore"},
        {"time": "2026-11-20T04:00:00Z", "outcome": "passed", "restore_seconds": 9.5, "failed_step": None},
    ]


def test_drill_metrics_keep_the_last_success_through_a_failed_drill(tmp_path):
    metrics.update_drill(str(tmp_path), "shop", "db1", 1000.0, True, 16.5)
    path = metrics.update_drill(str(tmp_path), "shop", "db1", 2000.0, False, None)
    lines = open(path).read().splitlines()
    assert 'pgdrill_drill_last_success_timestamp_seconds{series="shop",source="db1"} 1000' in lines
    assert 'pgdrill_drill_last_restore_seconds{series="shop",source="db1"} 16.5' in lines
    assert 'pgdrill_drill_last_attempt_timestamp_seconds{series="shop",source="db1"} 2000' in lines
    assert 'pgdrill_drill_last_passed{series="shop",source="db1"} 0' in lines
    assert path.endswith("pgdrill_drill_shop.prom")


def test_a_row_with_an_off_host_copy_fails_when_the_newest_set_is_not_complete_there():
    row = {
        "remote": "s3://b/p",
        "newest": {"set": "s1", "time": "2026-11-27T02:15:00Z", "verified": "ok", "remote": "partial"},
        "drills": [{"time": "2026-11-20T04:00:00Z", "outcome": "passed"}],
    }
    assert report.judge(row, NOW, 26, 35)["problems"] == ["newest backup s1 has no complete off-host copy (partial on s3://b/p)"]
    row["newest"]["remote"] = "complete"
    assert report.judge(row, NOW, 26, 35)["ok"]
    assert report.judge(dict(row, remote=None, newest=dict(row["newest"], remote=None)), NOW, 26, 35)["ok"]  # no remote: not judged


def test_drills_of_the_off_host_copy_count_for_the_host():
    records = [
        {"source_host": "s3://b/p", "database": "shop", "outcome": "passed", "finished_at": "2026-11-20T04:00:00Z"},
        {"source_host": "s3://other/p", "database": "shop", "outcome": "passed", "finished_at": "2026-11-21T04:00:00Z"},
    ]
    assert [drill["time"] for drill in report.drills_of(records, "db1", "shop", "s3://b/p")] == ["2026-11-20T04:00:00Z"]
    assert report.drills_of(records, "db1", "shop") == []


def test_remote_metrics_say_when_the_newest_set_is_off_host():
    sets = [{"set": "shop_20261127_021500_utc", "state": "complete", "finished_at": "2026-11-27T02:16:00Z", "sizes": {"db": 10}}]
    state = {"remote": {"s3://b/p": {"last_success": 1800000000.0, "uploaded_sets": ["shop_20261127_021500_utc"]}}}
    text = metrics.render(metrics.series_samples("shop", sets, state))
    assert 'pgdrill_remote_last_success_timestamp_seconds{series="shop",target="s3://b/p"} 1800000000' in text
    assert 'pgdrill_remote_newest_set_uploaded{series="shop",target="s3://b/p"} 1' in text
    state["remote"]["s3://b/p"]["uploaded_sets"] = []
    assert 'pgdrill_remote_newest_set_uploaded{series="shop",target="s3://b/p"} 0' in metrics.render(metrics.series_samples("shop", sets, state))


def test_last_success_and_sizes_come_from_the_newest_complete_set_not_the_newest_set():
    newest_damaged = {"set": "shop_20261128_021500_utc", "state": "damaged", "finished_at": "2026-11-28T02:15:09Z", "sizes": {"db": 7}}
    newest_incomplete = {"set": "shop_20261129_021500_utc", "state": "incomplete", "time": "2026-11-29T02:15:00+00:00", "sizes": {"db": 3}}
    lines = metrics.render(metrics.series_samples("shop", [newest_incomplete, newest_damaged] + SETS, {})).splitlines()
    assert 'pgdrill_backup_last_success_timestamp_seconds{series="shop"} 1795745709' in lines  # 2026-11-27T02:15:09Z
    assert 'pgdrill_backup_last_size_bytes{kind="db",series="shop"} 1200' in lines
    assert not any(line.endswith(" 7") or line.endswith(" 3") for line in lines if "size_bytes" in line)


def test_the_metrics_file_is_replaced_never_rewritten_in_place(tmp_path):
    """A collector that opened the file before a run reads the old file whole; the new one is a new file."""
    path = metrics.update(str(tmp_path), "shop", SETS, command="backup", started=1.0, exit_code=0, duration=2.0)
    before = open(path).read()
    with open(path) as reader:
        inode = os.fstat(reader.fileno()).st_ino
        metrics.update(str(tmp_path), "shop", SETS[1:], command="backup", started=5.0, exit_code=1, duration=2.0)
        assert reader.read() == before  # the old file, whole, to whoever holds it
    assert os.stat(path).st_ino != inode and open(path).read() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgdrill_shop.prom", "pgdrill_shop.state.json"]
