"""The [drill] section: parsed by the same rules, ignored by the backup series, and turned into the
drill's post-restore steps."""

import pytest

from pgdrill.config import load_configs
from pgdrill.drill_config import load_drill_config
from pgdrill.errors import PgdrillError
from pgdrill.drill_steps import post_restore_steps
from pgdrill.scheduled import newest_set_files

FILE = """[pgdrill]
backup_dir = /var/backups/pgdrill
[database shop]
[drill]
database = shop
source_dir = /var/backups/pgdrill
host = /var/run/postgresql
port = 5433
post_restore =
  /srv/app/venv/bin/python manage.py migrate --noinput
  /srv/app/venv/bin/python manage.py check
post_restore_dir = /srv/app
checks = [{"name": "login", "sql": "SELECT 1", "expect": "rows"}]
keep = on_failure
ping_url = https://hc-ping.example/secret-key-91
"""


def write(tmp_path, text):
    path = tmp_path / "pgdrill.conf"
    path.write_text(text)
    return str(path)


def test_the_drill_section_is_read_and_left_out_of_the_backup_series(tmp_path):
    path = write(tmp_path, FILE)
    assert [config.label for config in load_configs(path, environ={})] == ["shop"]
    drill = load_drill_config(path, environ={})
    assert (drill.database, drill.prefix, drill.source, drill.keep) == ("shop", "shop", "local", "on_failure")
    assert drill.connection.port == 5433 and drill.connection.dbname == "postgres"
    assert drill.evidence_dir == str(tmp_path / "drills" / "evidence")
    assert "secret-key-91" not in repr(drill)
    steps = post_restore_steps(drill)
    assert steps[0] == {
        "name": "/srv/app/venv/bin/python manage.py migrate --noinput",
        "command": ["/srv/app/venv/bin/python", "manage.py", "migrate", "--noinput"],
        "chdir": "/srv/app",
    }
    assert [step["name"] for step in steps] == [steps[0]["name"], "/srv/app/venv/bin/python manage.py check", "login"]


@pytest.mark.parametrize(
    "line, words",
    [
        ("keep = sometimes", ["keep = 'sometimes'", "never, on_failure, always"]),
        ("jobs = 0", ["jobs = '0'", "from 1 to 256"]),
        ('checks = {"name": 1}', ["checks", "JSON list"]),
        ("password = hunter2", ["unknown key 'password'"]),
        ("ping_url = htps://hc-ping.example/secret-key-91", ["ping_url = (hidden: it holds a secret)"]),
    ],
)
def test_bad_drill_values_are_refused_naming_the_key(tmp_path, line, words):
    key = line.split(" = ")[0]
    text = "".join(kept for kept in FILE.splitlines(keepends=True) if not kept.startswith(key + " ="))
    path = write(tmp_path, text + line + "\n")
    with pytest.raises(PgdrillError) as caught:
        load_drill_config(path, environ={})
    for word in words:
        assert word in caught.value.message
    assert "hunter2" not in caught.value.message and "secret-key-91" not in caught.value.message


def test_a_drill_needs_its_database_its_source_and_valid_checks(tmp_path):
    with pytest.raises(PgdrillError, match="no \\[drill\\] section"):
        load_drill_config(write(tmp_path, "[pgdrill]\n"), environ={})
    with pytest.raises(PgdrillError, match="lacks 'source_dir'"):
        load_drill_config(write(tmp_path, "[drill]\ndatabase = shop\n"), environ={})
    remote = load_drill_config(write(tmp_path, "[drill]\ndatabase = shop\nsource = remote\nremote = s3://backups/pgdrill\n"), environ={})
    assert (remote.source, remote.remote) == ("remote", "s3://backups/pgdrill")
    with pytest.raises(PgdrillError, match="source = remote but no 'remote'"):
        load_drill_config(write(tmp_path, "[drill]\ndatabase = shop\nsource = remote\n"), environ={})
    with pytest.raises(PgdrillError, match="checks in .* every check needs a name"):
        load_drill_config(write(tmp_path, '[drill]\ndatabase = shop\nsource_dir = /x\nchecks = [{"sql": "SELECT 1"}]\n'), environ={})


def test_the_newest_set_with_a_manifest_is_the_one_copied():
    from datetime import datetime, timezone

    names = [
        "shop_db_20261101_021500_utc.dump",
        "shop_manifest_20261101_021500_utc.json",
        "shop_verify_20261101_021500_utc.json",
        "shop_db_20261102_021500_utc.dump",  # no manifest yet: a backup still running
        "shop_db_20991231_000000_utc.dump",
        "shop_manifest_20991231_000000_utc.json",  # dated ahead of the clock
        "shop-old_manifest_20261103_021500_utc.json",
        "notes.txt",
    ]
    now = datetime(2026, 11, 27, tzinfo=timezone.utc)
    assert newest_set_files(names, "shop", now) == ["shop_db_20261101_021500_utc.dump", "shop_manifest_20261101_021500_utc.json"]
    assert newest_set_files(names, "crm", now) == []


@pytest.mark.parametrize("jobs_key, identity_key", [("restore_jobs", "encrypt_identity_file"), ("jobs", "identity_file")])
def test_the_drill_keys_share_the_database_sections_names_and_the_old_names_still_work(tmp_path, jobs_key, identity_key):
    text = f"[drill]\ndatabase = shop\nsource_dir = /srv\n{jobs_key} = 5\n{identity_key} = /etc/pgdrill/drill.key\n"
    drill = load_drill_config(write(tmp_path, text), environ={})
    assert (drill.restore_jobs, drill.encrypt_identity_file) == (5, "/etc/pgdrill/drill.key")
    assert (drill.restore_jobs, drill.encrypt_identity_file) == (5, "/etc/pgdrill/drill.key")


def test_an_old_drill_key_and_its_new_name_together_are_refused(tmp_path):
    with pytest.raises(PgdrillError, match="sets both 'jobs' and 'restore_jobs'"):
        load_drill_config(write(tmp_path, "[drill]\ndatabase = shop\nsource_dir = /srv\nrestore_jobs = 2\njobs = 3\n"), environ={})


def test_a_drill_endpoint_with_credentials_is_refused_without_repeating_them(tmp_path):
    text = "[drill]\ndatabase = shop\nsource = remote\nremote = s3://backups/pgdrill\nremote_endpoint_url = https://key:hunter2@s3.example\n"
    with pytest.raises(PgdrillError, match="holds credentials") as caught:
        load_drill_config(write(tmp_path, text), environ={})
    assert "hunter2" not in caught.value.message
