"""The restore for real's decisions (issue 20, item 6), pure: what it may restore to, and when it may
restore over an existing data directory, and which systemd unit the restored server is handed to."""

from __future__ import annotations

import pytest

from pgdrill.errors import PgdrillError
from pgdrill.pitr_restore import ABSENT, EMPTY, HOLDS_DATA, data_dir_state, guard, pitr_restore, restore_target, unit_to_use


def test_an_existing_data_directory_is_replaced_only_when_the_confirmation_names_it():
    data = "/var/lib/postgresql/15/main"
    assert guard(data, ABSENT, None) is False and guard(data, EMPTY, None) is False
    with pytest.raises(PgdrillError, match="holds a cluster's data: restoring there would overwrite it") as refused:
        guard(data, HOLDS_DATA, None)
    assert "pgdrill_restore_confirm" in refused.value.fix
    with pytest.raises(PgdrillError, match="does not name the data directory"):
        guard(data, HOLDS_DATA, "/var/lib/postgresql/15/other")
    with pytest.raises(PgdrillError, match="does not name the data directory"):
        guard(data, EMPTY, "yes")  # a confirmation naming something else is a mistake, even where none is needed
    assert guard(data, HOLDS_DATA, data + "/") is True
    with pytest.raises(PgdrillError, match="not an absolute path"):
        guard("main", EMPTY, None)


def test_the_data_directory_state(tmp_path):
    assert data_dir_state(str(tmp_path / "none")) == ABSENT
    assert data_dir_state(str(tmp_path)) == EMPTY
    (tmp_path / "PG_VERSION").write_text("15\n")
    assert data_dir_state(str(tmp_path)) == HOLDS_DATA
    with pytest.raises(PgdrillError, match="is not a directory"):
        data_dir_state(str(tmp_path / "PG_VERSION"))


def test_a_restore_for_real_goes_to_the_latest_wal_a_time_or_a_restore_point():
    assert restore_target(None).kind == "latest" and restore_target("latest").kind == "latest"
    assert restore_target("time:2026-12-04T02:15:00+01:00").value == "2026-12-04T01:15:00.000000Z"
    assert restore_target("name:pgdrill_app_20261204T021500Z").kind == "name"
    for text in ("set:20261204T021500Z", "point:/tmp/p.json"):
        with pytest.raises(PgdrillError, match="goes to latest, time: or name:"):
            restore_target(text)
    with pytest.raises(PgdrillError, match="is not a recovery target"):
        restore_target("yesterday")


def test_a_data_directory_whose_parent_is_missing_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(PgdrillError, match="parent .* does not exist"):
        pitr_restore("main", str(tmp_path / "pgbackrest.conf"), str(tmp_path / "gone" / "data"), check=True)
    with pytest.raises(PgdrillError, match="goes to latest, time: or name:"):
        pitr_restore("main", str(tmp_path / "pgbackrest.conf"), str(tmp_path / "data"), target="set:x", check=True)


def test_the_restored_server_goes_to_a_unit_systemd_has_and_a_named_unit_it_lacks_is_refused():
    assert unit_to_use("postgresql@15-main", False, "loaded") == "postgresql@15-main"
    assert unit_to_use("postgresql@15-main", True, "loaded") == "postgresql@15-main"
    # The playbook's default: no such unit here (or no systemd), the server stays under pg_ctl.
    assert unit_to_use("postgresql@15-main", True, "not-found") is None and unit_to_use("postgresql@15-main", True, None) is None
    assert unit_to_use("", False, None) is None and unit_to_use(None, False, None) is None
    with pytest.raises(PgdrillError, match=r"the systemd unit postgresql@15-other is not on this host \(not-found\)") as refused:
        unit_to_use("postgresql@15-other", False, "not-found")
    assert "pgdrill_restore_service" in refused.value.fix
    with pytest.raises(PgdrillError, match="systemd does not run here"):
        unit_to_use("postgresql@15-main", False, None)
