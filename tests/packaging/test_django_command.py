"""The Django app pgdrill.contrib.django: ``manage.py ez360_backup`` (the seed's command, with its
--db, --media and --out-dir flags) and its neutral alias ``pgdrill_backup``, against a real cluster,
through call_command and as a manage.py process whose children's command lines are polled for the
password."""

import io
import json
import os
import subprocess
import sys
import time

import django
import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import override_settings

from helpers import DJANGO, cli_env

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


@pytest.fixture(scope="module")
def project(pg):
    """Django settings as the seed's project has them, pointed at the test cluster. The password is
    in DATABASES (no passfile anywhere), as an EZ360PM deployment reads it from POSTGRES_PASSWORD."""
    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "pgdrill.contrib.django"],
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "HOST": pg.host,
                    "PORT": str(pg.port),
                    "NAME": "postgres",
                    "USER": "postgres",
                    "PASSWORD": pg.password,
                    "OPTIONS": {"sslmode": "disable", "application_name": "ez360_backup"},
                }
            },
            USE_TZ=True,
        )
        django.setup()
    return pg


@pytest.fixture
def site(project, sample_db, tmp_path, monkeypatch):
    """One test's settings: the sample database, a media root with a file, the seed's settings."""
    for key in list(os.environ):
        if key.startswith(("PG", "PGDRILL_", "EZ360_")) or key == "MEDIA_ROOT":
            monkeypatch.delenv(key)
    media = tmp_path / "media"
    (media / "invoices").mkdir(parents=True)
    (media / "invoices" / "INV-1.pdf").write_bytes(b"%PDF-1.4 invoice")
    database = dict(settings.DATABASES["default"], NAME=sample_db)
    with override_settings(
        DATABASES={"default": database},
        MEDIA_ROOT=str(media),
        EZ360_BACKUP_DIR=str(tmp_path / "backups"),
        EZ360_BACKUP_RETENTION_DAYS=14,
        EZ360_BACKUP_KEEP_LAST=3,
        PGDRILL={"prefix": "ez360pm", "compression": "gzip"},
    ):
        yield tmp_path


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_seed_command_backs_up_database_and_media_lists_and_verifies_by_restore(site):
    out, _ = run("ez360_backup", "--db", "--media")
    assert "backup set ez360pm_" in out
    names = sorted(name for name in os.listdir(site / "backups") if not name.startswith("."))  # not the lock
    kinds = {name.split("_")[1] for name in names}
    assert {"db", "globals", "media", "manifest"} <= kinds, names
    assert all(name.startswith("ez360pm_") for name in names), names
    assert any(name.endswith(".tar.gz") for name in names)  # PGDRILL's compression
    manifest = json.loads((site / "backups" / next(n for n in names if "_manifest_" in n)).read_text())
    assert manifest["database"]["name"] == os.path.basename(settings.DATABASES["default"]["NAME"])
    listed, _ = run("ez360_backup", "list")
    assert manifest["set"] in listed and "complete" in listed
    verified, _ = run("ez360_backup", "verify", "--restore")
    assert "FAILED" not in verified and "row counts" in verified
    as_json, _ = run("pgdrill_backup", "list", "--json")
    assert json.loads(as_json)["results"][0]["sets"][0]["set"] == manifest["set"]


def test_out_dir_and_the_neutral_alias(site):
    run("pgdrill_backup", "--out-dir", str(site / "elsewhere"))
    names = os.listdir(site / "elsewhere")
    assert any("_db_" in name for name in names) and not any("_media_" in name for name in names)  # no flag: the database
    assert not (site / "backups").exists()


def _sets(site):
    return sorted(name for name in os.listdir(site / "backups") if "_manifest_" in name)


def test_retention_from_the_seed_settings_and_no_prune(site):
    with override_settings(EZ360_BACKUP_RETENTION_DAYS=0, EZ360_BACKUP_KEEP_LAST=2):
        for count in range(1, 5):
            run("ez360_backup", "--no-prune")
            assert len(_sets(site)) == count  # --no-prune: retention (which keeps 2) did not run
            time.sleep(1.1)  # one set per second: stamps have seconds
        out, _ = run("ez360_backup", "prune")
    assert out.count("removed") == 2 and out.count("keep") >= 2, out
    assert len(_sets(site)) == 2
    with override_settings(EZ360_BACKUP_RETENTION_DAYS=0, EZ360_BACKUP_KEEP_LAST=1):
        run("ez360_backup")  # without --no-prune the run applies retention
    assert len(_sets(site)) == 1


def test_failures_become_command_errors_with_the_engines_exit_codes(site):
    with override_settings(EZ360_BACKUP_KEEP_LAST="-1"):
        with pytest.raises(CommandError) as bad:
            run("ez360_backup")
    assert bad.value.returncode == 2 and "keep_last" in str(bad.value)
    with override_settings(PGDRILL={"password": "x"}):
        with pytest.raises(CommandError) as secret:
            run("ez360_backup")
    assert secret.value.returncode == 2 and "passfile" in str(secret.value)
    with pytest.raises(CommandError) as alias:
        run("ez360_backup", "--database", "reporting")
    assert alias.value.returncode == 2 and "reporting" in str(alias.value)
    wrong = dict(settings.DATABASES["default"], PASSWORD="not-the-password")
    with override_settings(DATABASES={"default": wrong}):
        with pytest.raises(CommandError) as auth:
            run("ez360_backup")
    assert auth.value.returncode == 1 and "not-the-password" not in str(auth.value)
    with pytest.raises(CommandError) as usage:
        run("ez360_backup", "--no-prune", "list")
    assert usage.value.returncode == 2
    # The refused password reached the server (the series' lock is in the backup directory) and no set was kept.
    assert (site / "backups").is_dir() and _sets(site) == []


def test_a_role_that_owns_its_database_but_is_no_superuser(site, owner_role):
    """The usual Django role: the seed's first command works out of the box (the globals without
    password hashes, one line says so), and verify --restore says it needs CREATEDB."""
    role, database, _, password = owner_role
    settings_of_the_project = dict(settings.DATABASES["default"], NAME=database, USER=role, PASSWORD=password)
    with override_settings(DATABASES={"default": settings_of_the_project}):
        out, err = run("ez360_backup")
        assert "backup set ez360pm_" in out
        lines = [line for line in err.splitlines() if "password" in line]
        assert len(lines) == 1 and "without their passwords" in lines[0] and password not in err, err
        listed, _ = run("ez360_backup", "list")
        assert listed.split()[-2:] == ["complete", "never"], listed
        shown = io.StringIO()
        with pytest.raises(CommandError) as refused:
            call_command("ez360_backup", "verify", "--restore", stdout=shown, stderr=io.StringIO())
    assert refused.value.returncode == 1 and "lacks CREATEDB" in shown.getvalue() and f"ALTER ROLE {role} CREATEDB" in shown.getvalue(), shown.getvalue()


def pg_connection(pg):
    return {"host": pg.host, "port": pg.port, "user": "postgres", "password": pg.password}


def test_options_reach_libpq_and_win_over_pgdrills_own_defaults():
    """DATABASES OPTIONS become libpq settings; the ones pgdrill would otherwise set itself on its
    psycopg connections (connect_timeout, application_name) yield to them."""
    from pgdrill import db
    from pgdrill.contrib.django.engine_config import database_config

    options = {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "sslcert": "/c.pem",
        "sslkey": "/k.pem",
        "connect_timeout": 3,
        "application_name": "shop",
    }
    project = type("Settings", (), {"DATABASES": {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "OPTIONS": options}}})
    config, env = database_config(project, environ={})
    assert config.connection.sslmode == "verify-full"
    assert env == {"PGSSLROOTCERT": "/etc/ca.pem", "PGSSLCERT": "/c.pem", "PGSSLKEY": "/k.pem", "PGCONNECT_TIMEOUT": "3", "PGAPPNAME": "shop"}
    assert db.connect_defaults(env) == {}
    assert db.connect_defaults({}) == {"connect_timeout": db.CONNECT_TIMEOUT, "application_name": "pgdrill"}


def _all_cmdlines():
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    found.append(handle.read())
            except OSError:
                continue
    return found


def test_manage_py_in_a_process_keeps_the_password_off_every_command_line(pg, big_db, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "logo.png").write_bytes(os.urandom(2048))
    env = cli_env(
        {
            "DJANGO_SETTINGS_MODULE": "settings_pgdrill",
            "POSTGRES_HOST": pg.host,
            "POSTGRES_PORT": str(pg.port),
            "POSTGRES_DB": big_db,
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": pg.password,
            "MEDIA_ROOT": str(media),
            "EZ360_BACKUP_DIR": str(tmp_path / "backups"),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "ez360_backup", "--db", "--media", "--verbosity", "2"],
        cwd=DJANGO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = []
    sessions = set()  # (application_name, what the session runs) of the connections to the database
    with psycopg.connect(**pg_connection(pg), dbname="postgres", autocommit=True) as watcher:
        while proc.poll() is None:
            seen.extend(_all_cmdlines())
            for name, query in watcher.execute("SELECT application_name, query FROM pg_stat_activity WHERE datname = %s", (big_db,)).fetchall():
                sessions.add((name, "pg_dump" if query.startswith("COPY ") else "row count" if "count(*)" in query else "other"))
            time.sleep(0.02)
    out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert any(b"pg_dump" in cmd for cmd in seen), "the poll never saw pg_dump running"
    # OPTIONS' application_name reached pg_dump and pgdrill's own psycopg connection (counting rows)
    assert {("ez360_backup", "pg_dump"), ("ez360_backup", "row count")} <= sessions, sessions
    assert not any(name == "pgdrill" for name, _ in sessions), sessions
    assert not any(pg.password.encode() in cmd for cmd in seen)
    assert pg.password.encode() not in out + err
    names = os.listdir(tmp_path / "backups")
    assert any("ez360pm_media_" in name for name in names) and any("ez360pm_db_" in name for name in names), names
    for name in names:
        assert pg.password.encode() not in (tmp_path / "backups" / name).read_bytes(), name
    # A failure is a CommandError, and manage.py exits with the engine's exit code.
    bad = subprocess.run(
        [sys.executable, "manage.py", "ez360_backup", "verify", "ez360pm_20000101_000000_utc"], cwd=DJANGO, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "CommandError: verify failed" in bad.stderr, bad.stderr
