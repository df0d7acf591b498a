"""The drill and the guarded restore from the off-host copy, in real ansible-playbook runs: the source's
encrypted sets live only in a real S3 bucket (SeaweedFS on loopback) once its backup directory is
gone; staging pulls the newest set with its own identity, and the restore playbook brings the
database back on a host that is the only one in the play."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from helpers import database_fingerprint, playbook_run, run_cli


@pytest.fixture(scope="module")
def staging():
    from pgdrill_lab.cluster import Cluster

    with Cluster(name="staging-remote") as cluster:
        yield cluster


@pytest.fixture
def pushed(request, tmp_path, pg, sample_db, keys, aws_env, bucket, monkeypatch):
    """The source's sets encrypted and pushed by its own backup run; then its backups are deleted.
    Custom-format sets, or (parametrized indirectly) directory-format ones."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    pg.psql("DO $$ BEGIN CREATE ROLE auditor NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg.psql("GRANT SELECT ON public.invoices TO auditor", sample_db)
    config = tmp_path / "source.conf"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'backups'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
        f"encrypt_recipients = {keys['drill'][1]} {keys['escrow'][1]}\nremote = s3://{bucket}/pgdrill\n"
        f"remote_endpoint_url = {aws_env.endpoint_url}\nremote_region = us-east-1\nformat = {getattr(request, 'param', 'custom')}\n"
        f"[database {sample_db}]\nprefix = ez360pm\n"
    )
    done = run_cli("--config", str(config))
    assert "pushed ez360pm_" in done.stdout
    shutil.rmtree(tmp_path / "backups")
    return {"bucket": bucket, "remote": f"s3://{bucket}/pgdrill", "endpoint": aws_env.endpoint_url}


@pytest.mark.parametrize("pushed", ["directory"], indirect=True)
def test_staging_drills_the_newest_set_straight_from_the_remote(pushed, tmp_path, staging, keys, pg, sample_db):
    before = database_fingerprint(pg, sample_db)
    controller = tmp_path / "controller"
    run = playbook_run(
        tmp_path,
        "run_restore_drill.yml",
        {
            "pgdrill_drill_database": sample_db,
            # pgdrill_drill_transfer left at auto: a configured off-host copy is the path it takes.
            "pgdrill_drill_remote": pushed["remote"],
            "pgdrill_drill_remote_prefix": "ez360pm",
            "pgdrill_drill_remote_endpoint_url": pushed["endpoint"],
            "pgdrill_drill_remote_region": "us-east-1",
            "pgdrill_drill_identity_file": keys["drill"][0],
            "pgdrill_drill_install_tools": False,  # this machine has them (the venv's boto3)
            "pgdrill_drill_work_dir": str(tmp_path / "staging-work"),
            "pgdrill_drill_host": staging.host,
            "pgdrill_drill_port": staging.port,
            "pgdrill_drill_login_user": "postgres",
            "pgdrill_drill_passfile": staging.passfile,
            "pgdrill_drill_controller_dir": str(controller),
            "pgdrill_drill_log": str(controller / "drill-log.md"),
            "pgdrill_drill_checks": [{"name": "invoices", "sql": "SELECT 1 FROM public.invoices LIMIT 1", "expect": "rows"}],
        },
    )
    assert run.status == "successful", run.stdout[-6000:]
    evidence = json.load(open(next((controller / "evidence" / "staging").glob("*.json"))))
    assert evidence["outcome"] == "passed" and evidence["source_host"] == pushed["remote"] and evidence["transfer"] == "remote"
    assert evidence["fidelity"]["ok"] and evidence["not_restored"] == []
    assert "verify at the source" not in evidence["timings"] and "transfer" in evidence["timings"]
    pulled = run.task("Pull the set from the off-host copy")["res"]
    assert pulled["changed"] and all(name.endswith((".age", ".dir")) for name in pulled["downloaded"])
    (directory,) = [name for name in pulled["downloaded"] if name.endswith(".dir")]  # a directory-format set, member by member
    assert evidence["files"][0]["name"] == directory and evidence["files"][0]["format"] == "directory"
    assert staging.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drill_%'") == ""
    assert database_fingerprint(pg, sample_db) == before


def test_restore_playbook_brings_the_database_back_from_the_remote_onto_a_new_host(pushed, tmp_path, staging, keys, pg, sample_db):
    run = playbook_run(
        tmp_path,
        "restore_database.yml",
        {
            "pgdrill_restore_hosts": "staging",  # the only host of the play: the source is gone
            "pgdrill_restore_database": "ez360pm",
            "pgdrill_restore_target": "ez360pm",
            "pgdrill_restore_remote": pushed["remote"],
            "pgdrill_restore_remote_endpoint_url": pushed["endpoint"],
            "pgdrill_restore_remote_region": "us-east-1",
            "pgdrill_restore_identity_file": keys["escrow"][0],
            "pgdrill_restore_pull_dir": str(tmp_path / "new-host-backups"),
            "pgdrill_restore_globals": True,
            "pgdrill_restore_login_host": staging.host,
            "pgdrill_restore_login_port": staging.port,
            "pgdrill_restore_login_user": "postgres",
            "pgdrill_restore_passfile": staging.passfile,
        },
    )
    try:
        assert run.status == "successful", run.stdout[-6000:]
        restored = run.task("Restore the backup set")["res"]
        assert restored["fidelity"]["checked"] and restored["fidelity"]["objects"] > 20
        assert staging.psql("SELECT count(*) FROM public.invoices", "ez360pm") == pg.psql("SELECT count(*) FROM public.invoices", sample_db)
        assert staging.psql("SELECT has_table_privilege('auditor', 'public.invoices', 'SELECT')", "ez360pm") == "t"
    finally:
        staging.psql('DROP DATABASE IF EXISTS "ez360pm" WITH (FORCE)')


def test_remote_retention_from_the_controller_previews_then_prunes(tmp_path, pg, sample_db, aws_env, bucket, monkeypatch):
    """The host 'source' pushes where the backup role puts it by default: its own folder under
    pgdrill_backup_remote; prune_remote.yml finds it there."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config = tmp_path / "source.conf"
    config.write_text(
        f"[pgdrill]\nbackup_dir = {tmp_path / 'backups'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
        f"prune_after_backup = no\nremote = s3://{bucket}/pgdrill/source\nremote_endpoint_url = {aws_env.endpoint_url}\nremote_region = us-east-1\n"
        f"[database {sample_db}]\nprefix = shop\n"
    )
    run_cli("--config", str(config))
    run_cli("--config", str(config))
    extravars = {
        "pgdrill_backup_remote": f"s3://{bucket}/pgdrill",
        "pgdrill_backup_remote_endpoint_url": aws_env.endpoint_url,
        "pgdrill_backup_remote_region": "us-east-1",
        "pgdrill_backup_databases": [{"name": sample_db, "prefix": "shop"}],
        "pgdrill_prune_keep_last": 1,
        "pgdrill_prune_retention_days": 0,
        "pgdrill_prune_remote_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "pgdrill_prune_remote_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
    }
    # The controller's credentials come only from the play's (vaulted) variables here, not from its environment.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    preview = playbook_run(tmp_path, "prune_remote.yml", extravars, check=True)
    assert preview.status == "successful", preview.stdout[-4000:]
    result = preview.task("Prune each database's off-host copy from the controller")["res"]["results"][0]
    assert len(result["removed"]) == 1 and len(result["kept"]) == 1 and result["changed"]
    assert "would remove" in preview.stdout
    listing = {
        "env": {
            "AWS_ACCESS_KEY_ID": extravars["pgdrill_prune_remote_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": extravars["pgdrill_prune_remote_secret_access_key"],
        }
    }
    assert run_cli("--config", str(config), "list", "--remote", **listing).stdout.count("complete") == 2  # the preview deleted nothing
    applied = playbook_run(tmp_path, "prune_remote.yml", extravars)
    assert applied.status == "successful", applied.stdout[-4000:]
    assert run_cli("--config", str(config), "list", "--remote", **listing).stdout.count("complete") == 1
    assert extravars["pgdrill_prune_remote_secret_access_key"] not in applied.everything()  # no_log keeps the secret out of every output


def test_the_scheduled_drill_pulls_from_the_remote_and_decrypts_with_stagings_identity(pushed, tmp_path, staging, keys):
    """pgdrill-backup drill with source = remote: what the drill timer on staging runs, with no
    source host and no controller: the sets exist only in the bucket."""
    config = tmp_path / "staging-drill.conf"
    config.write_text(
        "[drill]\ndatabase = ez360pm\nsource = remote\n"
        f"remote = {pushed['remote']}\nremote_endpoint_url = {pushed['endpoint']}\nremote_region = us-east-1\n"
        f"identity_file = {keys['drill'][0]}\nhost = {staging.host}\nport = {staging.port}\nuser = postgres\npassfile = {staging.passfile}\n"
        f"work_dir = {tmp_path / 'work'}\nevidence_dir = {tmp_path / 'evidence'}\nlog_file = {tmp_path / 'drill-log.md'}\n"
        'checks = [{"name": "invoices", "sql": "SELECT 1 FROM public.invoices LIMIT 1", "expect": "rows"}]\n'
    )
    done = run_cli("drill", "--config", str(config))
    assert "PASSED" in done.stdout, done.stdout + done.stderr
    [record] = [json.load(open(path)) for path in (tmp_path / "evidence").glob("*.json")]
    assert record["outcome"] == "passed" and record["fidelity"]["ok"] and record["set"].startswith("ez360pm_")
    assert not (tmp_path / "work" / "copy-ez360pm").exists()  # the pulled copy goes after the drill
    assert staging.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drill_%'") == ""
