"""verify, prune and list against real backup directories."""

import json
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from pgdrill import manifest as manifest_mod
from pgdrill.naming import file_name, format_stamp


def _dump_of(env):
    (m,) = env.manifests()
    return os.path.join(env.backup_dir, next(f["name"] for f in m["files"] if f["kind"] == "db"))


def test_verify_ok_then_records_state_for_list(backup_env):
    backup_env.run()
    listing = json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"]
    assert listing[0]["verified"] == "never" and listing[0]["state"] == "complete"
    done = backup_env.run("verify")
    assert "ok      checksum" in done.stdout and "pg_restore --list read" in done.stdout
    listing = json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"]
    assert listing[0]["verified"] == "ok"
    assert listing[0]["age_seconds"] >= 0 and listing[0]["size"] > 0
    backup_env.run("verify", "--restore")
    listing = json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"]
    assert listing[0]["verified"] == "ok+restore"
    assert "ok+restore" in backup_env.run("list").stdout


def test_bit_flip_fails_verify_and_is_remembered(backup_env):
    backup_env.run()
    path = _dump_of(backup_env)
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))
    done = backup_env.run("verify", check=1)
    assert "FAILED  checksum" in done.stdout and "corrupted" in done.stdout
    listing = json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"]
    assert listing[0]["verified"] == "failed"
    done = backup_env.run("verify", "--restore", check=1)
    assert "skipped: earlier checks failed" in done.stdout


@pytest.mark.parametrize("method", ["zstd", "gzip"])
def test_truncated_archive_fails_verify(backup_env, method):
    backup_env.rewrite(compression=method)
    backup_env.run()
    path = _dump_of(backup_env)
    os.truncate(path, os.path.getsize(path) // 2)
    done = backup_env.run("verify", "--json", check=1)
    result = json.loads(done.stdout)
    failed = [c["name"] for c in result["results"][0]["checks"] if not c["ok"]]
    assert any(name.startswith("checksum") for name in failed)


def test_restore_check_compares_real_row_counts(backup_env):
    """Tamper with the manifest's expectation: the scratch restore must notice."""
    backup_env.run()
    name = next(f for f in backup_env.files() if "_manifest_" in f)
    path = os.path.join(backup_env.backup_dir, name)
    document = json.load(open(path))
    document["row_counts"]["public.invoices"] += 1
    open(path, "w").write(json.dumps(document))
    done = backup_env.run("verify", "--restore", check=1)
    assert "FAILED  row counts" in done.stdout and "public.invoices" in done.stdout
    scratch = backup_env.cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgdrill_verify_%'")
    assert scratch == "0"  # dropped even on failure


def test_verify_named_set_and_missing_set(backup_env):
    backup_env.run()
    (m,) = backup_env.manifests()
    backup_env.run("verify", m["set"])
    backup_env.run("verify", m["files"][0]["name"])
    done = backup_env.run("verify", "nope_20200101_000000_utc", check=1)
    assert "no backup set named" in done.stderr


def _fake_set(directory, prefix, started, with_manifest=True, mtime=None):
    """A set on disk as the engine would have left it, taken at ``started``."""
    stamp = format_stamp(started)
    dump = file_name(prefix, "db", stamp, "dump")
    payload = b"PGDMP fake archive for retention tests"
    with open(os.path.join(directory, dump), "wb") as handle:
        handle.write(payload)
    names = [dump]
    if with_manifest:
        import hashlib

        document = manifest_mod.build(
            prefix=prefix,
            stamp=stamp,
            started=started,
            finished=started,
            database={},
            client={},
            compression={},
            files=[{"name": dump, "kind": "db", "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}],
            row_counts=None,
            options={},
            host="test",
        )
        mname = manifest_mod.manifest_name(prefix, stamp)
        with open(os.path.join(directory, mname), "wb") as handle:
            handle.write(manifest_mod.encode(document))
        names.append(mname)
    if mtime is not None:
        for name in names:
            os.utime(os.path.join(directory, name), (mtime, mtime))
    return names


def test_prune_removes_only_its_own_old_sets_and_explains(backup_env):
    os.makedirs(backup_env.backup_dir, mode=0o700)
    now = datetime.now(timezone.utc)
    prefix = backup_env.dbname
    for days in (1, 2, 3, 20, 30):
        _fake_set(backup_env.backup_dir, prefix, now - timedelta(days=days))
    foreign = [
        file_name("otherapp", "db", format_stamp(now - timedelta(days=99)), "dump"),  # another series
        f"{prefix}_db_20200101_000000_utc.dump.bak",  # not our naming
        f"{prefix}-notes.txt",
        "random.sql",
    ]
    for name in foreign:
        open(os.path.join(backup_env.backup_dir, name), "w").write("not ours")
    backup_env.rewrite(keep_last=2, retention_days=10)
    before = backup_env.files()
    done = backup_env.run("prune", "--dry-run")
    assert backup_env.files() == before
    assert done.stdout.count("would remove") == 2 and "older than 10 days" in done.stdout
    result = json.loads(backup_env.run("prune", "--json").stdout)["results"][0]
    assert len(result["removed"]) == 2 and len(result["kept"]) == 3
    assert all(entry["reason"] for entry in result["removed"] + result["kept"])
    after = backup_env.files()
    for name in foreign:
        assert name in after
    assert len([n for n in after if n.startswith(prefix + "_manifest_")]) == 3


def test_prune_orders_by_manifest_time_not_mtime(backup_env):
    os.makedirs(backup_env.backup_dir, mode=0o700)
    now = datetime.now(timezone.utc)
    prefix = backup_env.dbname
    # The newest set by manifest has the oldest mtime; the old set was touched just now.
    newest = _fake_set(backup_env.backup_dir, prefix, now - timedelta(days=1), mtime=time.time() - 90 * 86400)
    old = _fake_set(backup_env.backup_dir, prefix, now - timedelta(days=40), mtime=time.time())
    backup_env.rewrite(keep_last=1, retention_days=7)
    backup_env.run("prune")
    files = backup_env.files()
    assert all(name in files for name in newest) and not any(name in files for name in old)


def test_newest_set_survives_keep_last_zero_and_debris_goes_after_grace(backup_env):
    os.makedirs(backup_env.backup_dir, mode=0o700)
    now = datetime.now(timezone.utc)
    prefix = backup_env.dbname
    newest = _fake_set(backup_env.backup_dir, prefix, now - timedelta(days=300))
    debris_old = _fake_set(backup_env.backup_dir, prefix, now - timedelta(days=2), with_manifest=False, mtime=time.time() - 2 * 86400)
    debris_new = _fake_set(backup_env.backup_dir, prefix, now - timedelta(minutes=1), with_manifest=False)
    backup_env.rewrite(keep_last=0, retention_days=0)
    backup_env.run("prune")
    files = backup_env.files()
    assert all(n in files for n in newest) and all(n in files for n in debris_new)
    assert not any(n in files for n in debris_old)
    listing = json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"]
    assert {row["state"] for row in listing} == {"complete", "incomplete"}


def test_backup_prunes_after_success(backup_env):
    os.makedirs(backup_env.backup_dir, mode=0o700)
    old = _fake_set(backup_env.backup_dir, backup_env.dbname, datetime.now(timezone.utc) - timedelta(days=60))
    backup_env.rewrite(keep_last=1, retention_days=14)
    result = json.loads(backup_env.run("--json").stdout)["results"][0]
    assert [entry["set"] for entry in result["prune"]["removed"]] == [old[0].replace("_db_", "_").replace(".dump", "")]
    assert not any(n in backup_env.files() for n in old)


def test_smoke_checks_that_write_leave_no_trace(pg, sample_db):
    """A drill's writing checks (create a client, an invoice) run in transactions that roll back."""
    from pgdrill import db
    from pgdrill.config import Connection
    from pgdrill.drill import run_checks

    connection = Connection(host=pg.host, port=pg.port, user="postgres", passfile=pg.passfile)
    before = pg.psql("SELECT count(*) FROM invoices", sample_db)
    conn = db.connect(connection, sample_db, autocommit=True)
    try:
        results = run_checks(
            conn,
            [
                {
                    "name": "create invoice",
                    "sql": "INSERT INTO invoices (company_id, client_id, number, issued_on, due_on, status, total, currency, lines, created_at)"
                    " SELECT 1, 1, 'INV-X', now(), now(), 'draft', 1, 'USD', '[]', now() RETURNING id",
                    "expect": "rows",
                },
                {"name": "count unchanged", "sql": "SELECT count(*) FROM invoices", "expect": "value", "value": int(before)},
                {"name": "broken", "sql": "SELECT no_such_column FROM invoices", "expect": "rows"},
                {"name": "still usable after a failed query", "sql": "SELECT 1", "expect": "rows"},
            ],
            connection.libpq_env(),
        )
    finally:
        conn.close()
    assert [r["ok"] for r in results] == [True, True, False, True], results
    assert "query failed" in results[2]["detail"]
    assert pg.psql("SELECT count(*) FROM invoices", sample_db) == before
