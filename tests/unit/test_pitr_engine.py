"""The engine's pure decisions for point-in-time recovery: point names and records, pgBackRest's
errors turned into fixes, the stanza's metrics, and the manifest's restore point."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from pgdrill import manifest, metrics, pgbackrest, pitr
from pgdrill.errors import PgdrillError


def test_point_names_carry_the_prefix_and_the_utc_time():
    moment = datetime(2026, 12, 4, 2, 15, 0, tzinfo=timezone.utc)
    assert pitr.point_name("shop", moment) == "pgdrill_shop_20261204T021500Z"
    # A mark's name carries the millisecond: a mark and a backup in the same second never share a name.
    assert pitr.point_name("shop", moment.replace(microsecond=437_900), milliseconds=True) == "pgdrill_shop_20261204T021500.437Z"
    assert pitr.point_name("shop", moment, milliseconds=True) != pitr.point_name("shop", moment)
    # Any prefix gives a usable name: shortened to PostgreSQL's 63 characters, odd characters replaced.
    long = pitr.point_name("x" * 60, moment, milliseconds=True)
    assert len(long) == 63 and long.startswith("pgdrill_xxx") and long.endswith("_20261204T021500.000Z")
    assert pitr.point_name("my shop/eu", moment) == "pgdrill_my-shop-eu_20261204T021500Z"


def test_a_point_record_is_read_back_only_when_it_holds_what_a_drill_needs(tmp_path):
    good = {
        "name": "pgdrill_shop_20261204T021500Z",
        "lsn": "0/3000090",
        "wal_file": "000000010000000000000003",
        "created_at": "2026-12-04T02:15:00.1Z",
        "fingerprint": {},
        "row_counts": {},
    }
    path = tmp_path / "points" / "p.json"
    saved = pitr.save_point(str(tmp_path), {**good, "stanza": "main", "database": "shop"})
    assert pitr.load_point(saved)["stanza"] == "main" and pitr.points(str(tmp_path)) == [pitr.load_point(saved)]
    for bad, words in (
        (b"{", "not JSON"),
        (b"[]", "lacks name"),
        (json.dumps({**good, "lsn": None}).encode(), "lacks lsn"),
        (json.dumps({k: v for k, v in good.items() if k != "fingerprint"}).encode(), "lacks fingerprint"),  # a point that proves nothing
    ):
        path.write_bytes(bad)
        with pytest.raises(PgdrillError, match=words):
            pitr.load_point(str(path))
    assert pitr.points(str(tmp_path / "nowhere")) == []


@pytest.mark.parametrize(
    "output, words",
    [
        ("ERROR: [037]: backup command requires option: pg1-path\n HINT: does this stanza exist?", "stanza is not defined"),
        ("ERROR: [049]: unable to load info file\n HostConnectError: unable to connect to '127.0.0.1:9': [111]", "repository cannot be reached"),
        ("ERROR: [087]: archive_mode must be enabled", "archiving is off"),
        ("ERROR: [055]: unable to open missing file '/etc/pgbackrest/pgbackrest.conf' for read", "--pgbackrest-config"),
        ("ERROR: [055]: unable to load info file: missing stanza path", "stanza-create"),
        ("ERROR: [048]: unable to open file '/etc/pgbackrest/pgbackrest.conf' for read: [13] Permission denied", "the cluster's OS user's"),
        ("ERROR: [050]: unable to acquire lock on file '/tmp/lock/main-backup.lock': Resource temporarily unavailable", "try again when it has ended"),
        ("ERROR: [999]: something else", "its log is under log-path"),
    ],
)
def test_pgbackrests_errors_come_with_their_fix(output, words):
    assert words in pgbackrest.fix_for(output)


def test_the_stanzas_metrics_come_from_its_status_and_its_last_run():
    status = {
        "oldest_restorable_at": "2026-12-01T01:00:00Z",
        "backups": [
            {"type": "full", "stopped_at": "2026-12-01T01:00:00Z"},
            {"type": "diff", "stopped_at": "2026-12-02T01:00:00Z"},
            {"type": "full", "stopped_at": "2026-12-03T01:00:00Z"},
        ],
        "archive": {"failed_count": 2, "last_archived_at": "2026-12-04T02:00:00Z", "last_failed_at": None},
    }
    state = {"backup": {"started": 1733277600.0, "exit_code": 1, "duration": 3.5}}
    text = metrics.render(metrics.pitr_samples("main", status, state))
    assert 'pgdrill_pitr_backup_last_success_timestamp_seconds{stanza="main",type="full"} 1796259600' in text
    assert 'pgdrill_pitr_backup_last_success_timestamp_seconds{stanza="main",type="diff"} 1796173200' in text
    assert 'pgdrill_pitr_archive_failed_total{stanza="main"} 2' in text and 'pgdrill_pitr_backup_last_exit_code{stanza="main"} 1' in text
    assert 'pgdrill_pitr_window_start_timestamp_seconds{stanza="main"} 1796086800' in text
    assert "pgdrill_pitr_archive_last_failure_timestamp_seconds" not in text  # never failed: no sample, not 0
    assert "pgdrill_pitr_backup_last_attempt" not in metrics.render(metrics.pitr_samples("main", {}, {}))


def test_a_manifests_restore_point_is_checked_like_every_field():
    point = {
        "name": "pgdrill_shop_20261204T021500Z",
        "lsn": "0/3000090",
        "wal_file": "000000010000000000000003",
        "created_at": "2026-12-04T02:15:00.1Z",
        "stanza": "main",
    }
    assert manifest.schema_problems({"restore_point": point}, manifest.SCHEMA, "") == []
    assert manifest.schema_problems({"restore_point": {**point, "lsn": 7}}, manifest.SCHEMA, "") == ["field restore_point.lsn: expected a string"]


def test_archiving_whose_last_failure_is_newer_than_its_last_success_is_failing():
    ok = {"last_archived_at": "2026-12-05T01:00:00Z", "last_failed_at": "2026-12-05T00:00:00Z", "last_failed_wal": "A", "failed_count": 1}
    assert pitr.archive_failing(ok) is None and pitr.archive_failing(None) is None
    assert pitr.archive_failing({**ok, "last_failed_at": None}) is None
    failing = pitr.archive_failing({**ok, "last_failed_at": "2026-12-05T02:00:00Z", "last_failed_wal": "000000010000000000000007"})
    assert failing and "000000010000000000000007" in failing and "failing" in failing
    assert pitr.archive_failing({**ok, "last_archived_at": None})  # failed, never archived


def test_a_point_name_is_saved_once(tmp_path):
    good = {"name": "pgdrill_shop_20261204T021500Z", "lsn": "0/3000090", "wal_file": "000000010000000000000003", "created_at": "2026-12-04T02:15:00Z"}
    pitr.save_point(str(tmp_path), {**good, "fingerprint": {}, "row_counts": {}})
    with pytest.raises(PgdrillError, match="already saved"):
        pitr.refuse_saved(str(tmp_path), good["name"])
    with pytest.raises(PgdrillError, match="already saved"):
        pitr.save_point(str(tmp_path), {**good, "fingerprint": {}, "row_counts": {}})
