"""The physical drill's pure decisions: what a target means, what pgBackRest restores to, the major
version rule, the throwaway server's settings, the RPO and its basis, the WAL range."""

from __future__ import annotations

import pytest

from pgdrill.errors import PgdrillError
from pgdrill.pitr_drill import (
    HBA,
    Target,
    archive_gap,
    archive_max,
    backup_before,
    backup_label,
    count_problems,
    evidence_target,
    lsn_number,
    major_problem,
    parse_target,
    recovery_target,
    repository_major,
    rpo,
    rto,
    server_settings,
    set_restore_point,
    source_connection,
    system_ids,
    wal_file,
)


def test_targets_parse_into_their_kind_and_value():
    assert parse_target(None) == parse_target("latest") == Target("latest", None)
    assert parse_target("time:2026-12-04T02:15:00+01:00") == Target("time", "2026-12-04T01:15:00.000000Z")
    assert parse_target("name:pgdrill_app_20261204T021500Z") == Target("name", "pgdrill_app_20261204T021500Z")
    assert parse_target("point:/var/backups/app/points/p.json") == Target("point", "/var/backups/app/points/p.json")
    assert parse_target("set:app_20261204_021500_utc") == Target("set", "app_20261204_021500_utc")


@pytest.mark.parametrize("text", ["", "now", "latest:x", "time:", "time:yesterday", "time:2026-12-04T02:15:00", "name:a b", "name:-x", "set:", "lsn:0/1"])
def test_bad_targets_are_refused_naming_the_forms(text):
    with pytest.raises(PgdrillError) as caught:
        parse_target(text or " ")
    assert caught.value.fix


def test_what_pgbackrest_restores_to():
    assert recovery_target(Target("latest", None), None) == ("default", None)
    assert recovery_target(Target("time", "2026-12-04T01:15:00.000000Z"), None) == ("time", "2026-12-04 01:15:00.000000+00")
    assert recovery_target(Target("name", "p1"), "p1") == ("name", "p1")
    assert recovery_target(Target("point", "/x.json"), "p2") == ("name", "p2")
    with pytest.raises(PgdrillError):
        recovery_target(Target("set", "app_1"), None)
    assert evidence_target(Target("point", "/x.json"), "p2") == {"type": "name", "value": "/x.json", "restore_point": "p2", "point_file": "/x.json"}


def test_a_set_target_needs_a_set_with_a_restore_point():
    with pytest.raises(PgdrillError, match="no restore point"):
        set_restore_point({"fingerprint": {}}, "app_1")
    assert set_restore_point({"restore_point": {"name": "p"}, "fingerprint": {"a": 1}, "row_counts": {"t": 2}}, "s")["row_counts"] == {"t": 2}


def test_the_repository_major_and_the_refusal_of_another_one():
    info = [{"name": "main", "db": [{"id": 1, "version": "14"}, {"id": 2, "version": "15", "current": True}]}, {"name": "other", "db": []}]
    assert repository_major(info, "main") == 15 and repository_major(info, "other") is None and repository_major(None, "main") is None
    assert major_problem(15, 15, "/usr/lib/postgresql/15/bin") is None
    problem = major_problem(15, 16, "/opt/pg16/bin")
    assert problem is not None and "PostgreSQL 15" in problem.message and "postgresql-15" in problem.fix and "pg_bin_dir" in problem.fix
    assert major_problem(15, None, None) is not None and major_problem(None, 15, "/x") is not None


def test_the_throwaway_server_listens_only_on_its_own_socket_and_never_archives():
    text = server_settings("/w/data", 54321, "/w/socket")
    assert "listen_addresses = ''" in text and "port = '54321'" in text and "unix_socket_directories = '/w/socket'" in text
    assert "archive_mode = 'off'" in text and "hba_file = '/w/data/pg_hba.conf'" in text
    assert server_settings("/it's", 1, "/s").count("/it''s/") == 2
    with pytest.raises(PgdrillError):
        server_settings("/a\nb", 1, "/s")
    assert [line for line in HBA.splitlines() if not line.startswith("#")] == ["local all all trust"]


def test_the_rpo_says_its_basis_and_never_invents_a_figure():
    latest = Target("latest", None)
    assert rpo(latest, "2026-12-04T01:00:00.000000Z", "0/10", {"newest_commit": "2026-12-04T01:00:02.500000Z", "insert_lsn": "0/20"}) == (
        2.5,
        "the source's newest commit when the drill started against the newest commit recovered",
    )
    seconds, basis = rpo(latest, "2026-12-04T01:00:00.000000Z", "0/30", {"newest_commit": None, "insert_lsn": "0/20"})
    assert seconds == 0.0 and "WAL position" in basis
    assert rpo(latest, "2026-12-04T01:00:00.000000Z", "0/10", {"newest_commit": None, "insert_lsn": "0/20"})[0] is None
    assert rpo(latest, "2026-12-04T01:00:00.000000Z", "0/10", None) == (None, rpo(latest, None, None, None)[1])
    assert rpo(Target("time", "2026-12-04T01:00:10.000000Z"), "2026-12-04T01:00:00.000000Z", "0/1", None)[0] == 10.0
    assert rpo(Target("time", "2026-12-04T01:00:10.000000Z"), None, "0/1", None)[0] is None
    assert rpo(Target("name", "p"), "2026-12-04T01:00:00.000000Z", "0/1", None)[0] is None
    assert rto({"restore": 1.5, "recovery": 2.0, "checks": 0.5, "cleanup": 9}) == 4.0


def test_lsns_wal_files_and_backup_labels():
    assert lsn_number("1/0") == 1 << 32 and lsn_number("0/16B3D28") == 0x16B3D28 and lsn_number("nope") is None
    assert wal_file("000000010000000000000002", "0/3000000", 16 * 1024 * 1024) == "000000010000000000000002"
    assert wal_file("000000010000000000000002", "1/0", 16 * 1024 * 1024) == "0000000100000000000000FF"
    assert wal_file(None, "0/1", 1) is None
    assert backup_label("P00   INFO: restore backup set 20261205-013000F, recovery will start at ...") == "20261205-013000F"
    assert backup_label("nothing") is None


def test_the_source_connection_takes_no_password():
    connection = source_connection("host=db1 port=5433 user=pgdrill passfile=/etc/pgdrill/pgpass")
    assert connection is not None and (connection.host, connection.port, connection.user) == ("db1", 5433, "pgdrill")
    assert source_connection(None) is None
    for bad in ("host=db1 password=x", "host", "bogus=1", "port=abc"):
        with pytest.raises(PgdrillError):
            source_connection(bad)


def test_the_command_flags_and_the_drill_sections_settings_make_the_physical_drill():
    from pgdrill.config import Connection
    from pgdrill.drill_config import DrillConfig
    from pgdrill.pitr_drill import physical_drill

    config = DrillConfig(database="app", prefix="app", connection=Connection(), evidence_dir="/e", pitr_stanza="main", pitr_source="host=db1")
    assert physical_drill(config, False, None, None, None) is None
    drill = physical_drill(config, True, None, None, None)
    assert drill is not None and (drill.target, drill.stanza, drill.pgbackrest_config) == ("latest", "main", "/etc/pgbackrest/pgbackrest.conf")
    assert drill.source is not None and drill.source.host == "db1"
    assert physical_drill(config, True, "name:p1", "other", "/c").stanza == "other"
    with pytest.raises(PgdrillError, match="add --physical"):
        physical_drill(config, False, "latest", None, None)
    with pytest.raises(PgdrillError, match="not a recovery target"):
        physical_drill(config, True, "yesterday", None, None)
    with pytest.raises(PgdrillError, match="needs the pgBackRest stanza"):
        physical_drill(DrillConfig(database="app", prefix="app", connection=Connection(), evidence_dir="/e"), True, None, None, None)


def test_a_point_is_restored_from_the_newest_backup_that_ended_before_it():
    info = [
        {
            "name": "main",
            "backup": [
                {"label": "F1", "lsn": {"start": "0/2000028", "stop": "0/3000050"}},
                {"label": "D2", "lsn": {"start": "0/5000028", "stop": "0/6000050"}},
                {"label": "F3", "lsn": {"start": "1/0", "stop": "1/100"}},
                {"label": "odd", "lsn": {}},
            ],
        }
    ]
    assert backup_before(info, "main", "0/7000000") == "D2"
    assert backup_before(info, "main", "0/6000050") == "D2"  # a point at the stop LSN is consistent
    assert backup_before(info, "main", "0/6000049") == "F1"
    assert backup_before(info, "main", "2/0") == "F3" and backup_before(info, "main", None) is None
    with pytest.raises(PgdrillError, match="outside the PITR window"):
        backup_before(info, "main", "0/2000000")
    with pytest.raises(PgdrillError):
        backup_before(info, "other", "0/7000000")


INFO = [
    {
        "name": "main",
        "db": [{"id": 1, "system-id": 7001, "version": "15"}],
        "archive": [{"id": "15-1", "min": "000000010000000000000001", "max": "000000020000000000000009"}],
    }
]


def test_a_latest_drill_must_reach_the_newest_archived_wal_file_whatever_its_timeline():
    assert archive_max(INFO, "main") == "000000020000000000000009" and archive_max(INFO, "other") is None
    assert system_ids(INFO, "main") == [7001]
    assert archive_gap("000000010000000000000009", "000000020000000000000009") is None  # same segment, older timeline
    assert archive_gap("00000001000000000000000A", "000000020000000000000009") is None
    gap = archive_gap("000000010000000000000006", "000000020000000000000009")
    assert gap is not None and "missing or unreadable" in gap.message and "000000010000000000000006" in gap.message
    assert archive_gap(None, "000000010000000000000009") is not None  # unknown is no pass
    assert archive_gap("000000010000000000000006", None) is None  # an archive that says nothing: nothing to compare


def test_the_rpo_is_never_measured_against_another_cluster():
    source = {"insert_lsn": "0/1000000", "newest_commit": None, "system_id": 9, "other_cluster": True}
    seconds, basis = rpo(Target("latest", None), "2026-12-05T01:00:00Z", "0/6000000", source)
    assert seconds is None and "other than the stanza's" in basis


def test_unlogged_tables_are_not_counted_against_a_point():
    expected = {"public.ledger": 5, "public.sessions": 10}
    assert count_problems(expected, {"public.ledger": 5, "public.sessions": 0}, "at the point", ["public.sessions"]) == []
    assert count_problems(expected, {"public.ledger": 4, "public.sessions": 0}, "at the point", ["public.sessions"]) == [
        "public.ledger: 5 rows at the point, 4 restored"
    ]
    assert count_problems(expected, {"public.ledger": 5, "public.sessions": 0}, "at the point") != []


def test_the_throwaway_server_starts_no_logical_replication_worker():
    assert "max_logical_replication_workers = '0'" in server_settings("/d", 5999, "/s")


def test_the_log_line_of_a_physical_drill_says_what_it_proved_and_what_it_could_not():
    from pgdrill.drill import physical_proofs

    proved = {"fingerprint": "identical", "row_counts": "identical", "amcheck": {"indexes": 12, "failed": []}, "logical_equal": "n/a", "smoke": "n/a"}
    assert (
        physical_proofs(proved) == "proofs: fingerprint identical, row counts identical, amcheck 12 indexes, 0 failed (not proved: logical set, smoke checks)"
    )
    bare = {"fingerprint": "n/a", "row_counts": "n/a", "amcheck": {"indexes": 3, "failed": []}, "logical_equal": "n/a", "smoke": "n/a"}
    assert "not proved: fingerprint, row counts, logical set, smoke checks" in physical_proofs(bare)


def test_a_root_owned_config_is_read_by_the_user_its_group_is_named_after():
    from pgdrill.physical_steps import config_reader

    assert config_reader("postgres", "postgres", 0o600, True) == "postgres"
    assert config_reader("root", "postgres", 0o640, True) == "postgres"  # as the pgdrill_pitr role writes it
    assert config_reader("root", "postgres", 0o600, True) is None  # the group may not read it
    assert config_reader("root", "root", 0o640, True) is None
    assert config_reader("root", "backup-readers", 0o640, False) is None  # a group no user is named after
