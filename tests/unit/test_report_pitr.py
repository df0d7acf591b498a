"""The report page's point-in-time column: the PITR window, the newest full and differential, the
last physical drill's RPO and RTO, from pgdrill_info's ``pitr`` and the physical drills' evidence.
Pure rendering with fixed examples, and the report module on them."""

import json
from datetime import datetime, timezone

from pgdrill import report

NOW = datetime(2026, 12, 5, 6, 0, tzinfo=timezone.utc)

# What pgdrill_info returns as ``pitr`` (operations.pitr_status: pgBackRest's info and pg_stat_archiver).
STATUS = {
    "stanza": "main",
    "ok": True,
    "status": "ok",
    "newest_full": {"label": "20261129-010002F", "type": "full", "started_at": "2026-11-29T01:00:02Z", "stopped_at": "2026-11-29T01:04:10Z"},
    "newest_diff": {"label": "20261129-010002F_20261204-010001D", "type": "diff", "started_at": "2026-12-04T01:00:01Z", "stopped_at": "2026-12-04T01:01:30Z"},
    "oldest_restorable_at": "2026-11-22T01:03:55Z",
    "archive": {
        "archived_count": 4211,
        "failed_count": 2,
        "last_archived_wal": "00000001000000120000004F",
        "last_archived_at": "2026-12-05T05:58:12Z",
        "last_failed_wal": "000000010000000F00000003",
        "last_failed_at": "2026-11-30T10:00:00Z",
    },
}


def physical(finished_at, passed, target_type="latest", value=None, rpo=2.5, rto=41.0, host="db1", database="shop"):
    return {
        "kind": "physical",
        "source_host": host,
        "database": database,
        "stanza": "main",
        "finished_at": finished_at,
        "target": {"type": target_type, "value": value},
        "rpo_seconds": rpo,
        "rto_seconds": rto,
        "passed": passed,
        "outcome": "passed" if passed else "failed",
        "problems": [] if passed else ["fingerprint differs"],
    }


RECORDS = [
    physical("2026-12-04T03:10:00Z", True, "name", "pgdrill_shop_20261204T021500Z", rpo=None, rto=38.25),
    physical("2026-12-01T03:10:00Z", False),
    physical("2026-12-03T03:10:00Z", True, rpo=1.5, host="db2"),  # another host's
    {"source_host": "db1", "database": "shop", "outcome": "passed", "finished_at": "2026-12-02T04:00:00Z", "timings": {"restore": 9.5}},
]

LOGICAL = {"newest": {"set": "shop_1", "time": "2026-12-05T02:15:00Z", "verified": "ok"}, "drills": [{"time": "2026-12-02T04:00:00Z", "outcome": "passed"}]}


def test_pitr_of_gives_the_window_newest_backups_and_the_physical_drills_of_that_host_and_database():
    pitr = report.pitr_of(STATUS, RECORDS, "db1", "shop")
    assert pitr is not None
    assert (pitr["window_start"], pitr["window_end"]) == ("2026-11-22T01:03:55Z", "2026-12-05T05:58:12Z")
    assert pitr["newest_full"] == {"label": "20261129-010002F", "time": "2026-11-29T01:04:10Z"}
    assert pitr["newest_diff"]["time"] == "2026-12-04T01:01:30Z" and pitr["ok"] is True
    assert pitr["drills"] == [
        {"time": "2026-12-01T03:10:00Z", "passed": False, "target": "latest", "rpo_seconds": 2.5, "rpo_basis": None, "rto_seconds": 41.0},
        {
            "time": "2026-12-04T03:10:00Z",
            "passed": True,
            "target": "name:pgdrill_shop_20261204T021500Z",
            "rpo_seconds": None,
            "rpo_basis": None,
            "rto_seconds": 38.25,
        },
    ]
    assert report.pitr_of(None, RECORDS, "db1", "shop") is None  # no PITR: no pitr at all
    # A drill to a point file names the point; one to a logical set names the set.
    from_file = dict(physical("2026-12-04T05:00:00Z", True), target={"type": "name", "value": "/b/points/p.json", "restore_point": "pgdrill_shop_x"})
    of_set = dict(physical("2026-12-04T06:00:00Z", True), target={"type": "set", "value": "shop_20261204_021500_utc", "restore_point": "pgdrill_shop_y"})
    assert [drill["target"] for drill in report.pitr_drills_of([from_file, of_set], "db1", "shop")] == ["name:pgdrill_shop_x", "set:shop_20261204_021500_utc"]
    # The physical drills are not logical drills: they never stand in for a logical restore drill.
    assert [drill["time"] for drill in report.drills_of(RECORDS, "db1", "shop")] == ["2026-12-02T04:00:00Z"]
    assert report.drills_of([physical("2026-12-04T03:10:00Z", True)], "db1", "shop") == []


def test_judging_a_pitr_row_names_a_bad_stanza_a_failing_archive_and_a_failed_last_drill():
    pitr = report.pitr_of(STATUS, RECORDS, "db1", "shop")
    assert report.judge(dict(LOGICAL, pitr=pitr), NOW, 26, 35)["problems"] == []  # an old archive failure, since archived again
    broken = report.pitr_of(
        dict(STATUS, ok=False, status="error (missing stanza path)", archive=dict(STATUS["archive"], last_failed_at="2026-12-05T05:59:00Z")),
        RECORDS[1:],
        "db1",
        "shop",
    )
    judged = report.judge(dict(LOGICAL, pitr=broken), NOW, 26, 35)
    assert not judged["ok"] and judged["problems"] == [
        "PITR stanza main: error (missing stanza path)",
        "WAL archiving is failing: 000000010000000F00000003 failed at 2026-12-05 05:59 UTC",
        "last PITR drill (latest, 2026-12-01 03:10 UTC) failed",
    ]


def test_the_page_shows_the_pitr_column_beside_the_logical_sets_and_rows_without_pitr_as_before():
    with_pitr = dict(LOGICAL, host="db1", database="shop", pitr=report.pitr_of(STATUS, RECORDS, "db1", "shop"))
    plain = dict(LOGICAL, host="db3", database="crm")
    rows = [report.judge(row, NOW, 26, 35) for row in (with_pitr, plain)]
    page = report.render_html(rows, NOW)
    assert "<th>point-in-time window</th>" in page
    assert "2026-11-22 01:03 UTC<br>to 2026-12-05 05:58 UTC" in page
    assert "stanza main · full 2026-11-29 01:04 UTC · diff 2026-12-04 01:01 UTC" in page
    assert "drill passed 2026-12-04 03:10 UTC (name:pgdrill_shop_20261204T021500Z): RPO unknown, RTO 38.2 s" in page
    assert page.count("<td") == 2 * 10 and '<td class="muted">not configured</td>' in page  # db3: no PITR, the same columns
    # A fleet without PITR renders as before: no column, the very same page.
    alone = [report.judge(plain, NOW, 26, 35)]
    assert report.render_html(alone, NOW) == report.render_html([dict(alone[0], pitr=None)], NOW)
    assert "point-in-time" not in report.render_html(alone, NOW) and report.render_html(alone, NOW).count("<td") == 9
    document = json.loads(report.render_json(rows, NOW))
    assert document["rows"][0]["pitr"]["drills"][-1]["rto_seconds"] == 38.25 and "pitr" not in document["rows"][1]


def test_the_report_module_reads_pitr_from_the_info_and_the_physical_evidence(run_module, tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for number, record in enumerate(RECORDS):
        (evidence / f"drill_{number}.json").write_text(json.dumps(record))
    info = {"newest": {"set": "shop_1", "time": datetime.now(timezone.utc).isoformat(), "verified": "ok"}, "sets": []}
    rows = [
        {"host": "db1", "database": "shop", "info": dict(info, pitr=STATUS)},
        {"host": "db3", "database": "crm", "info": info},
    ]
    args = {"rows": rows, "evidence_dir": str(evidence), "directory": str(tmp_path / "reports"), "max_age_hours": 26.0, "max_drill_age_days": 0.0}
    result, failed, _ = run_module("pgdrill_report", args)
    assert not failed, result
    by_host = {row["host"]: row for row in result["rows"]}
    assert by_host["db1"]["pitr"]["window_end"] == "2026-12-05T05:58:12Z" and by_host["db1"]["ok"]
    assert [drill["passed"] for drill in by_host["db1"]["pitr"]["drills"]] == [False, True]
    assert "pitr" not in by_host["db3"] and by_host["db3"]["ok"]
    assert "RTO 38.2 s" in (tmp_path / "reports" / "pgdrill-report.html").read_text()
