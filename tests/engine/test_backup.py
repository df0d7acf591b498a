"""Taking backups for real: files, names, modes, manifests, formats, media, atomicity."""

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time

import pytest

from helpers import cli_env, run_cli

SEED_NAME = re.compile(r"^(?P<prefix>.+)_db_\d{8}_\d{6}_utc\.dump(\.zst)?$")


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_default_run_writes_a_complete_seed_named_set(backup_env):
    done = backup_env.run()
    assert "backup set" in done.stdout
    files = backup_env.files()
    dumps = [f for f in files if SEED_NAME.match(f)]
    assert len(dumps) == 1 and dumps[0].startswith(backup_env.dbname + "_db_")
    assert dumps[0].endswith(".dump.zst")  # zstd pipe: this pg_dump has no native zstd
    (manifest,) = backup_env.manifests()
    assert {f["kind"] for f in manifest["files"]} == {"db", "globals"}
    for entry in manifest["files"]:
        path = os.path.join(backup_env.backup_dir, entry["name"])
        assert os.path.getsize(path) == entry["size"] and sha256(path) == entry["sha256"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(backup_env.backup_dir).st_mode) == 0o700
    assert not [f for f in files if f.startswith(".") and ".part-" in f]


def test_manifest_records_versions_locale_times_and_row_counts(backup_env):
    backup_env.run()
    (m,) = backup_env.manifests()
    cluster = backup_env.cluster
    assert m["database"]["name"] == backup_env.dbname
    assert m["database"]["encoding"] == "UTF8" and m["database"]["collate"] == "C.UTF-8"
    assert m["database"]["server_version"] == cluster.psql("SHOW server_version").split()[0]
    assert m["client"]["pg_dump_major"] == cluster.major
    assert m["compression"] == {"method": "zstd", "level": 3, "piped": True}
    assert m["tool"]["name"] == "pgdrill" and m["tool"]["version"]
    assert m["started_at"] <= m["finished_at"] and m["duration_seconds"] >= 0
    for table in ("invoices", "ledger_entries", "clients", "companies"):
        assert m["row_counts"][f"public.{table}"] == int(cluster.psql(f"SELECT count(*) FROM {table}", backup_env.dbname))


@pytest.mark.parametrize("dump_format", ["custom", "directory"])
def test_row_counts_match_the_dump_even_while_the_application_writes(backup_env, dump_format):
    """Counts come from the dump's own snapshot. Rows committed after the snapshot was exported but
    before the table was counted are forced: the application holds the table locked while it inserts,
    so pg_dump and the counter both wait for it; it commits only once pg_dump is waiting. Counted in
    any other snapshot, those rows would be in the manifest and missing from the restore. A
    directory-format dump's parallel jobs all read that snapshot too."""
    import psycopg

    backup_env.rewrite(format=dump_format)
    cluster = backup_env.cluster
    before = int(cluster.psql("SELECT count(*) FROM ledger_entries", backup_env.dbname))
    app = psycopg.connect(**{"host": cluster.host, "port": cluster.port, "user": "postgres", "passfile": cluster.passfile, "dbname": backup_env.dbname})
    try:
        app.execute(
            "INSERT INTO ledger_entries (company_id, account, entry_date, debit, credit, created_at) "
            "SELECT 1, 'x', now(), 1, 0, now() FROM generate_series(1, 50)"
        )
        app.execute("LOCK TABLE ledger_entries IN ACCESS EXCLUSIVE MODE")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgdrill.cli", "--config", backup_env.config], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.time() + 60
        while cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'") == "0":
            assert time.time() < deadline and proc.poll() is None, "pg_dump never waited for the application's lock"
            time.sleep(0.05)
        app.commit()  # after the snapshot, before the table is counted or dumped
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        app.close()
    (manifest,) = backup_env.manifests()
    assert manifest["row_counts"]["public.ledger_entries"] == before
    assert int(cluster.psql("SELECT count(*) FROM ledger_entries", backup_env.dbname)) == before + 50
    done = backup_env.run("verify", "--restore")
    assert "FAILED" not in done.stdout
    assert any(line.split()[:3] == ["ok", "row", "counts:"] and "match the manifest" in line for line in done.stdout.splitlines())


@pytest.mark.parametrize("method,suffix", [("zstd", ".dump.zst"), ("gzip", ".dump"), ("none", ".dump")])
def test_every_compression_method_verifies_by_restore(backup_env, method, suffix):
    backup_env.rewrite(compression=method)
    backup_env.run()
    (manifest,) = backup_env.manifests()
    dump = next(f for f in manifest["files"] if f["kind"] == "db")
    assert dump["name"].endswith(suffix) and not dump["name"].endswith(".zst.zst")
    assert manifest["compression"]["method"] == method
    done = backup_env.run("verify", "--restore")
    assert done.stdout.count("ok ") >= 5 and "FAILED" not in done.stdout


def test_gzip_fallback_when_zstd_is_missing(backup_env, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pg_bin = backup_env.cluster.bindir
    backup_env.rewrite(pg_bin_dir=pg_bin)
    done = backup_env.run("--verbose", env={"PATH": str(bindir)})  # no zstd anywhere on PATH
    assert "using gzip" in done.stderr
    (manifest,) = backup_env.manifests()
    assert manifest["compression"]["method"] == "gzip"
    backup_env.run("verify", "--restore", env={"PATH": str(bindir)})


def test_out_dir_overrides_config_and_environment(backup_env, tmp_path):
    other = tmp_path / "elsewhere"
    backup_env.run("--out-dir", str(other), env={"PGDRILL_BACKUP_DIR": str(tmp_path / "env")})
    assert any(name.endswith("_utc.json") for name in os.listdir(other))
    assert not os.path.exists(tmp_path / "env") and backup_env.files() == []


def test_env_only_configuration_follows_libpq(tmp_path, pg, sample_db):
    """No config file: PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSFILE and the seed's env names."""
    env = {**pg.env(sample_db), "EZ360_BACKUP_DIR": str(tmp_path / "b"), "EZ360_BACKUP_KEEP_LAST": "3"}
    done = run_cli("--json", env=env, cwd=str(tmp_path))
    result = json.loads(done.stdout)
    assert result["ok"] and result["results"][0]["manifest"]["database"]["name"] == sample_db
    assert os.listdir(tmp_path / "b")


def test_dry_run_writes_nothing_and_names_the_files(backup_env):
    done = backup_env.run("--dry-run")
    assert backup_env.dbname + "_db_" in done.stdout and "_manifest_" in done.stdout
    assert [f for f in backup_env.files() if not f.startswith(".")] == []


def test_json_result(backup_env):
    result = json.loads(backup_env.run("--json").stdout)
    assert result["ok"] is True and result["command"] == "backup"
    (entry,) = result["results"]
    assert entry["set"].startswith(backup_env.dbname + "_") and entry["prune"]["removed"] == []


def test_two_databases_get_their_own_series(tmp_path, pg, sample_db):
    pg.psql(f'CREATE DATABASE "{sample_db}_b" TEMPLATE sample_template')
    try:
        config = tmp_path / "multi.conf"
        config.write_text(
            f"[pgdrill]\nbackup_dir = {tmp_path / 'b'}\nhost = {pg.host}\nport = {pg.port}\nuser = postgres\npassfile = {pg.passfile}\n"
            f"[database {sample_db}]\n[database {sample_db}_b]\nprefix = second\n"
        )
        run_cli("--config", str(config))
        names = os.listdir(tmp_path / "b")
        assert any(n.startswith(f"{sample_db}_manifest_") for n in names) and any(n.startswith("second_manifest_") for n in names)
        assert f".pgdrill-{sample_db}.lock" in names and ".pgdrill-second.lock" in names
        done = run_cli("--config", str(config), "--database", f"{sample_db}_b", "list", "--json")
        (only,) = json.loads(done.stdout)["results"]
        assert only["database"] == f"{sample_db}_b" and len(only["sets"]) == 1
    finally:
        pg.psql(f'DROP DATABASE "{sample_db}_b" WITH (FORCE)')


def test_media_goes_into_the_same_set_without_following_links_out(backup_env, tmp_path):
    media = tmp_path / "media"
    (media / "uploads").mkdir(parents=True)
    (media / "uploads" / "logo.png").write_bytes(os.urandom(4096))
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("must not be archived")
    os.symlink(secret, media / "uploads" / "link-out")
    backup_env.rewrite(media_root=str(media))
    backup_env.run("--db", "--media")
    (manifest,) = backup_env.manifests()
    kinds = {f["kind"]: f["name"] for f in manifest["files"]}
    assert set(kinds) == {"db", "globals", "media"} and kinds["media"].endswith(".tar.zst")
    raw = subprocess.run(["zstd", "-dc", os.path.join(backup_env.backup_dir, kinds["media"])], capture_output=True, check=True).stdout
    assert b"must not be archived" not in raw
    import io

    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert members["media/uploads/logo.png"].size == 4096 and members["media/uploads/link-out"].issym()
    done = backup_env.run("verify")
    assert "tar read" in done.stdout and "FAILED" not in done.stdout


def test_media_only_and_missing_media_root(backup_env, tmp_path):
    media = tmp_path / "m"
    media.mkdir()
    (media / "a.txt").write_text("a")
    backup_env.rewrite(media_root=str(media), compression="gzip")
    backup_env.run("--media")
    (manifest,) = backup_env.manifests()
    assert [f["kind"] for f in manifest["files"]] == ["media"] and manifest["files"][0]["name"].endswith(".tar.gz")
    backup_env.rewrite(media_root=str(tmp_path / "missing"))
    done = backup_env.run("--db", "--media", check=1)
    assert "media root" in done.stderr and "does not exist" in done.stderr
    assert len(backup_env.manifests()) == 1  # the failed run left no set, and no stray files
    assert not [f for f in backup_env.files() if f.startswith(".") and ".part-" in f]


def test_kill_9_mid_dump_leaves_no_final_file_and_the_next_run_cleans_up(tmp_path, pg, big_db):
    from helpers import write_config

    config = write_config(tmp_path / "c.conf", pg, big_db, tmp_path / "b", compression="gzip", compression_level=9)
    proc = subprocess.Popen([sys.executable, "-m", "pgdrill.cli", "--config", config], env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    partial = []
    while time.time() < deadline:
        partial = [f for f in os.listdir(tmp_path / "b")] if os.path.isdir(tmp_path / "b") else []
        partial = [f for f in partial if ".part-" in f and os.path.getsize(tmp_path / "b" / f) > 200_000]
        if partial:
            break
        time.sleep(0.05)
    assert partial, "the dump never got going"
    os.kill(proc.pid, 9)
    proc.wait()
    names = os.listdir(tmp_path / "b")
    assert not [n for n in names if not n.startswith(".")], names  # no final name at all
    assert [n for n in names if ".part-" in n]
    run_cli("--config", config, "--no-prune", "--verbose")
    names = os.listdir(tmp_path / "b")
    assert not [n for n in names if ".part-" in n], names
    assert len([n for n in names if "_manifest_" in n]) == 1


def test_failed_dump_keeps_nothing_and_prunes_nothing(backup_env):
    backup_env.run()
    old_files = backup_env.files()
    backup_env.rewrite(keep_last=0, retention_days=0)  # any prune would now remove the old set... if it ran
    backup_env.cluster.psql(f'REVOKE CONNECT ON DATABASE "{backup_env.dbname}" FROM PUBLIC')
    backup_env.cluster.psql("CREATE ROLE limited LOGIN PASSWORD 'limited-pw'")
    try:
        passfile = os.path.join(os.path.dirname(backup_env.config), "limited.pgpass")
        with open(passfile, "w") as handle:
            handle.write("*:*:*:limited:limited-pw\n")
        os.chmod(passfile, 0o600)
        backup_env.rewrite(keep_last=0, retention_days=0, user="limited", passfile=passfile)
        done = backup_env.run(check=1)
        assert "backup failed" in done.stderr
    finally:
        backup_env.cluster.psql("DROP ROLE limited")
        backup_env.cluster.psql(f'GRANT CONNECT ON DATABASE "{backup_env.dbname}" TO PUBLIC')
    assert backup_env.files() == old_files
