"""Directory-format sets (format = directory): pg_dump -Fd in parallel jobs, each file compressed and
encrypted on its own, one manifest entry listing every file; verified, restored and pruned as one set."""

import hashlib
import json
import os
import stat
import subprocess

import pytest

from pgdrill.catalog import scan
from pgdrill.config import load_configs
from pgdrill.errors import PgdrillError
from pgdrill.recovery import RestoreOptions, restore_set

TABLES = ("invoices", "ledger_entries", "clients", "companies")


def _keypair(tmp_path):
    key = str(tmp_path / "drill.key")
    subprocess.run(["age-keygen", "-o", key], check=True, capture_output=True)
    return key, subprocess.run(["age-keygen", "-y", key], check=True, capture_output=True, text=True).stdout.strip()


def _dump_entry(backup_env):
    (manifest,) = [m for m in backup_env.manifests()]
    return manifest, next(entry for entry in manifest["files"] if entry["kind"] == "db")


def _dump_entry_of(backup_env, set_id):
    (manifest,) = [m for m in backup_env.manifests() if m["set"] == set_id]
    return next(entry for entry in manifest["files"] if entry["kind"] == "db")


def _sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _listing(backup_env):
    (only,) = json.loads(backup_env.run("list", "--json").stdout)["results"]
    return only["sets"]


def _verify_lines(backup_env, check):
    return backup_env.run("verify", "--restore", check=check).stdout


def test_an_encrypted_directory_set_is_private_whole_verified_restored_and_any_changed_file_is_named(backup_env, tmp_path):
    key, recipient = _keypair(tmp_path)
    backup_env.rewrite(format="directory", dump_jobs=2, encrypt_recipients=recipient, encrypt_identity_file=key)
    backup_env.run()
    manifest, entry = _dump_entry(backup_env)
    folder = os.path.join(backup_env.backup_dir, entry["name"])
    assert entry["format"] == "directory" and entry["name"].endswith("_utc.dir") and stat.S_ISDIR(os.lstat(folder).st_mode)
    assert manifest["compression"] == {"method": "zstd", "level": 3, "piped": True}
    assert not [name for name in backup_env.files() if ".part-" in name]
    # Every file pg_dump wrote, compressed and encrypted on its own: no plaintext in the set.
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert sorted(os.listdir(folder)) == sorted(member["name"] for member in entry["members"])
    assert "toc.dat.zst.age" in os.listdir(folder) and all(name.endswith(".zst.age") for name in os.listdir(folder))
    for member in entry["members"]:
        path = os.path.join(folder, member["name"])
        assert (os.path.getsize(path), _sha256(path)) == (member["size"], member["sha256"])
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert open(path, "rb").read(21) == b"age-encryption.org/v1"
    assert entry["size"] == sum(member["size"] for member in entry["members"])

    out = _verify_lines(backup_env, 0)
    assert f"ok      checksum {entry['name']}: sha256 and size of all {len(entry['members'])} files" in out
    assert f"ok      age headers {entry['name']}" in out and "(decrypted with the identity)" in out
    assert "ok      fingerprint" in out and "ok      row counts" in out and "FAILED" not in out

    # A restore into a new database: pg_restore --jobs from the decoded files, the same proofs.
    (config,) = load_configs(backup_env.config, environ={})
    backup = next(s for s in scan(config.backup_dir, config.prefix) if s.complete)
    target = f"{backup_env.dbname}_from_dir"
    pg = backup_env.cluster
    try:
        outcome = restore_set(config, backup, RestoreOptions(target=target, jobs=2))
        assert outcome["fidelity"]["ok"] and outcome["row_counts"]["tables"] >= len(TABLES)
        assert "decode" in outcome["timings"] and any("--jobs=2" in (c.get("argv") or []) for c in outcome["commands"])
        for table in TABLES:
            assert pg.psql(f"SELECT count(*) FROM {table}", target) == pg.psql(f"SELECT count(*) FROM {table}", backup_env.dbname)
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    assert not [name for name in os.listdir(config.backup_dir) if name.startswith(".pgdrill-work-")]  # no decoded plaintext left
    # A partial restore: pg_restore --use-list from the decoded directory, only what was asked for, proven
    # against the fingerprint; a table the dump lacks is refused, named, as for a custom-format set.
    try:
        with pytest.raises(PgdrillError) as caught:
            restore_set(config, backup, RestoreOptions(target=target, tables=("public.no_such_table",)))
        assert "the archive has no table public.no_such_table" in caught.value.problem
        pg.psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        outcome = restore_set(config, backup, RestoreOptions(target=target, tables=("public.invoices",), jobs=2))
        assert outcome["fidelity"]["ok"] and outcome["row_counts"]["tables"] == 1 and outcome["not_restored"]
        assert any(word.startswith("--use-list=") for c in outcome["commands"] for word in c.get("argv") or [])
        assert pg.psql("SELECT count(*) FROM public.invoices", target) == pg.psql("SELECT count(*) FROM public.invoices", backup_env.dbname)
        assert pg.psql("SELECT count(*) FROM pg_class WHERE relname = 'clients'", target) == "0"  # only what was asked for
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
    assert not [name for name in os.listdir(config.backup_dir) if name.startswith((".pgdrill-work-", ".pgdrill-list-"))]

    # A changed, a missing and an extra file each fail verify, named.
    big = max(entry["members"], key=lambda member: member["size"])["name"]
    path = os.path.join(folder, big)
    original = open(path, "rb").read()
    with open(path, "r+b") as handle:
        handle.seek(len(original) // 2)
        handle.write(bytes([original[len(original) // 2] ^ 0xFF]))
    out = _verify_lines(backup_env, 1)
    assert f"{entry['name']}/{big}: sha256 does not match the manifest" in out and "restore: skipped: earlier checks failed" in out
    os.unlink(path)
    (listed,) = _listing(backup_env)
    assert listed["state"] == "damaged" and f"{entry['name']}/{big} is missing" in listed["problem"]
    assert f"{entry['name']}/{big} is missing" in _verify_lines(backup_env, 1)
    with open(path, "wb") as handle:
        handle.write(original)
    with open(os.path.join(folder, "9999.dat"), "wb") as handle:
        handle.write(b"planted")
    assert f"{entry['name']}/9999.dat is not in the manifest" in _verify_lines(backup_env, 1)
    os.unlink(os.path.join(folder, "9999.dat"))
    assert "FAILED" not in _verify_lines(backup_env, 0)


def _hold_lock(env, table="invoices"):
    import psycopg

    conn = psycopg.connect(host=env.cluster.host, port=env.cluster.port, user="postgres", passfile=env.cluster.passfile, dbname=env.dbname)
    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return conn


def _sets(backup_env):
    return [row["set"] for row in _listing(backup_env)]


def test_directory_sets_are_pruned_and_pinned_as_one_set_and_a_failed_dump_leaves_nothing(backup_env):
    backup_env.rewrite(format="directory", compression="none", keep_last=10, retention_days=0)
    # A partial directory a killed run left behind: never a set, removed by the next run under the lock.
    stale = os.path.join(backup_env.backup_dir, f".{backup_env.dbname}_db_20260101_000000_utc.dir.part-dead0000")
    os.makedirs(os.path.join(stale, ".plain"))
    open(os.path.join(stale, ".plain", "toc.dat"), "wb").close()
    assert _sets(backup_env) == []
    assert "_utc.dir" in backup_env.run("--dry-run").stdout  # the dry run names the directory it would write
    done = backup_env.run("--verbose")
    assert not os.path.exists(stale) and "removed leftover partial file" in done.stderr
    first = _sets(backup_env)[0]
    _, entry = _dump_entry(backup_env)
    assert "toc.dat" in [member["name"] for member in entry["members"]]  # compression none: pg_dump's files as they are
    folder = os.path.join(backup_env.backup_dir, entry["name"])
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and {stat.S_IMODE(os.stat(os.path.join(folder, n)).st_mode) for n in os.listdir(folder)} == {0o600}
    backup_env.run("pin", first, "--reason", "before the migration")
    # format = auto: the database's size when the run starts picks the format (directory from directory_above).
    size = int(backup_env.cluster.psql(f"SELECT pg_database_size('{backup_env.dbname}')"))
    picked = []
    for above in (f"{size // 2048}kB", str(size * 2)):  # far from the size: autovacuum may change it a little
        backup_env.rewrite(format="auto", directory_above=above, compression="none", keep_last=10, retention_days=0)
        said = backup_env.run("--verbose").stderr
        picked.append((_dump_entry_of(backup_env, _sets(backup_env)[0]).get("format", "custom"), "format = auto" in said))
    assert picked == [("directory", True), ("custom", True)]
    dry = backup_env.run("--dry-run").stdout  # a preview has no server: it names both and says what decides
    assert "_utc.dump or " in dry and "_utc.dir" in dry and "format = auto: the dump is directory-format if the database is" in dry, dry
    second, third = _sets(backup_env)[1], _sets(backup_env)[0]
    files_before = backup_env.files()

    # A dump that fails (a lock that never goes) keeps nothing, not even its partial directory, and prunes nothing.
    backup_env.rewrite(format="directory", compression="none", keep_last=1, retention_days=0, lock_wait_timeout=1)
    holder = _hold_lock(backup_env)
    try:
        done = backup_env.run(check=1)
    finally:
        holder.close()
    assert "lock" in done.stderr and backup_env.files() == files_before

    backup_env.run()
    left = _sets(backup_env)
    assert first in left and second not in left and third not in left and len(left) == 2
    assert not [name for name in backup_env.files() if second.replace("_utc", "").split("_", 1)[-1] in name]
    assert "FAILED" not in _verify_lines(backup_env, 0)  # read where it lies: no decoding needed
