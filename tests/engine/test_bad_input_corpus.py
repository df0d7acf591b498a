"""Every command and config key fed a corpus of bad values and hostile files (issue 10): each run
ends with exit 1 or 2 (0 where nothing was wrong for that command), a message naming the fix, no
traceback, and nothing deleted or changed that was not the run's own."""

import hashlib
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from pgdrill import cli
from pgdrill.config import CONNECTION_SETTINGS, SETTINGS

# Keys whose value is free text: only an empty value is wrong for them.
TEXT_KEYS = {
    "backup_dir",
    "prefix",
    "media_root",
    "pg_bin_dir",
    "work_dir",
    "metrics_dir",
    "host",
    "user",
    "dbname",
    "service",
    "passfile",
    "encrypt_identity_file",
    "remote_region",
    "remote_profile",
    "pitr_config",
}
# Keys with a rule of their own: names, where "1e20" or "lz4" are good ones.
OWN_BAD_VALUES = {"pitr_stanza": ["", "-1", "yes please", "a/b", "x" * 64, "\u0663"]}
BAD_VALUES = ["", "-1", "1e20", "inf", "nan", "\u0663", "yes please", "99999999999999999999", "0x10", "1_000", "lz4"]


def _bad_values(key):
    return [""] if key in TEXT_KEYS else OWN_BAD_VALUES.get(key, BAD_VALUES)


CASES = [(key, value) for key in sorted(set(SETTINGS) | set(CONNECTION_SETTINGS)) for value in _bad_values(key)]


@pytest.mark.parametrize("command", [[], ["list"], ["prune"], ["verify"]])
def test_every_config_key_refuses_bad_values_at_load(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # main() must not take over pytest's SIGTERM
    backups = tmp_path / "b"
    for key, value in CASES:
        config = tmp_path / "pgdrill.conf"
        config.write_text(f"[pgdrill]\nbackup_dir = {backups}\ndbname = app\n{key} = {value}\n", encoding="utf-8")
        code = cli.main(["--config", str(config), *command])
        out, err = capsys.readouterr()
        assert code == 2, f"{key} = {value!r}: exit {code}\n{out}\n{err}"
        assert "Fix:" in err and key in err and "Traceback" not in err, f"{key} = {value!r}: {err}"
        assert not backups.exists(), f"{key} = {value!r} created the backup directory"


def _snapshot(paths):
    """Type, target and content of each path, to prove nothing foreign was touched."""
    out = {}
    for path in paths:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            out[path] = None
            continue
        if stat.S_ISLNK(info.st_mode):
            out[path] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            out[path] = ("file", hashlib.sha256(open(path, "rb").read()).hexdigest())
        else:
            out[path] = (stat.S_IFMT(info.st_mode),)
    return out


@pytest.mark.parametrize("lock_is_a_link", [False, True])
def test_hostile_files_in_the_backup_directory(backup_env, tmp_path, lock_is_a_link):
    backup_env.run()  # one real set, so verify has work
    directory = backup_env.backup_dir
    prefix = backup_env.dbname
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    stamp = lambda days: (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y%m%d_%H%M%S")  # noqa: E731
    hostile = {
        f"{prefix}_manifest_{stamp(50)}_utc.json": "link",  # a manifest that is a link out
        f"{prefix}_manifest_{stamp(51)}_utc.json": "dir",  # a directory named like a manifest
        f"{prefix}_db_{stamp(52)}_utc.dump": "fifo",  # a FIFO named like a dump
        f"{prefix}_db_{stamp(53)}_utc.dump.zst": "link",
        f"{prefix}_db_{stamp(54)}_utc.sql": "file",  # an operator's file with a wrong extension
        f"{prefix}_db_20261399_000000_utc.dump": "file",  # an impossible stamp
        f"otherapp_db_{stamp(90)}_utc.dump": "file",  # another series
        "notes.txt": "file",
    }
    lock = os.path.join(directory, f".pgdrill-{prefix}.lock")
    if os.path.lexists(lock):
        os.unlink(lock)
    if lock_is_a_link:
        hostile[f".pgdrill-{prefix}.lock"] = "link"
    for name, kind in hostile.items():
        path = os.path.join(directory, name)
        if kind == "link":
            os.symlink(victim, path)
        elif kind == "dir":
            os.mkdir(path)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            with open(path, "w") as handle:
                handle.write("not pgdrill's\n")
            os.utime(path, (0, 0))
    watched = [str(victim)] + [os.path.join(directory, name) for name in hostile]
    before = _snapshot(watched)
    backup_env.rewrite(keep_last=0, retention_days=0, debris_grace_hours=0)
    for command in (["list"], ["prune", "--dry-run"], ["prune"], ["verify"], ["verify", "--all"], ["verify", "--dry-run"], ["--dry-run"], []):
        done = backup_env.run(*command, check=None)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        if lock_is_a_link and command and command[0] in ("prune", "verify") and "--dry-run" not in command:
            assert done.returncode == 1 and "lock file" in done.stderr and "Fix:" in done.stderr, (command, done.stderr)
        elif done.returncode != 0:
            assert done.returncode in (1, 2) and "Fix:" in done.stderr, (command, done.returncode, done.stderr)
        assert _snapshot(watched) == before, command
    assert victim.read_text() == "precious\n"


# Manifest fields of the wrong type or an impossible date (issue 18, D6 and T1): each makes its set
# "damaged (field X: expected Y)" in list, verify --restore and the scheduled drill, and no prune
# or backup crashes on it, in a time zone far from UTC with every tier set.
MANIFEST_CASES = [
    ("fingerprint", lambda m: m.update(fingerprint="abc"), "field fingerprint: expected an object"),
    ("row count", lambda m: m.update(row_counts={"public.invoices": "abc"}), "field row_counts['public.invoices']: expected a whole number"),
    ("pg_dump_major", lambda m: m["client"].update(pg_dump_major="x"), "field client.pg_dump_major: expected a whole number"),
    (
        "acl",
        lambda m: m["fingerprint"]["objects"].update({"table public.x": {"acl": [1]}}),
        "field fingerprint.objects['table public.x'].acl[0]: expected a string",
    ),
    ("sequence", lambda m: m["fingerprint"]["objects"].update({"sequence public.s": {"last_value": "9"}}), "last_value: expected a whole number"),
    ("database", lambda m: m.update(database=["app"]), "field database: expected an object"),
    ("encryption", lambda m: m.update(encryption="age"), "field encryption: expected an object"),
    ("year 1", lambda m: m.update(started_at="0001-01-01T00:00:00Z"), "field started_at: expected a time"),
    ("year 9999", lambda m: m.update(started_at="9999-12-31T23:59:59Z"), "field started_at: expected a time"),
]


def test_manifest_fields_of_the_wrong_type_or_date_make_the_set_damaged_everywhere(backup_env, tmp_path, ping_recorder):
    import json

    base, pings = ping_recorder
    pg = backup_env.cluster
    backup_env.rewrite(retention_timezone="Pacific/Kiritimati", keep_last=1, keep_daily=3, keep_weekly=2, keep_monthly=2, keep_yearly=2)
    drill = {
        "database": backup_env.dbname,
        "source_dir": backup_env.backup_dir,
        "host": pg.host,
        "port": pg.port,
        "user": "postgres",
        "passfile": pg.passfile,
        "evidence_dir": tmp_path / "evidence",
        "log_file": tmp_path / "drill-log.md",
        "ping_url": base + "/ping/k",
    }
    with open(backup_env.config, "a", encoding="utf-8") as handle:
        handle.write("\n[drill]\n" + "".join(f"{key} = {value}\n" for key, value in drill.items()))
    backup_env.run("--no-prune")
    [manifest] = [os.path.join(backup_env.backup_dir, name) for name in backup_env.files() if "_manifest_" in name]
    original = open(manifest, encoding="utf-8").read()
    set_id = json.loads(original)["set"]
    for label, change, expected in MANIFEST_CASES:
        document = json.loads(original)
        change(document)
        with open(manifest, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        listing = backup_env.run("list", check=None)
        assert "Traceback" not in listing.stderr and "damaged" in listing.stdout, (label, listing.stdout, listing.stderr)
        done = backup_env.run("verify", "--restore", set_id, check=1)
        assert "Traceback" not in done.stderr and expected in done.stdout + done.stderr, (label, done.stdout, done.stderr)
        done = backup_env.run("drill", check=1)
        assert "Traceback" not in done.stderr and "FAILED" in done.stdout, (label, done.stdout, done.stderr)
        assert pings[-1][0] == "/ping/k/fail", label
        assert not pg.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drill\\_%' OR datname LIKE 'pgdrill\\_verify%'").split(), label
        done = backup_env.run("prune", check=None)
        assert done.returncode == 0 and "Traceback" not in done.stderr and os.path.exists(manifest), (label, done.stderr)
    done = backup_env.run(check=None)  # a backup prunes after it: the damaged set stays, the run succeeds
    assert done.returncode == 0 and "Traceback" not in done.stderr and os.path.exists(manifest), done.stderr
    assert len([name for name in backup_env.files() if "_manifest_" in name]) == 2
    evidence = [json.load(open(os.path.join(tmp_path, "evidence", name))) for name in os.listdir(tmp_path / "evidence")]
    assert evidence and all(record["outcome"] == "failed" for record in evidence)


# The remote is untrusted input (issue 18): whatever anyone who can write to the bucket puts there,
# manifests of the wrong type, names with newlines, planted objects, sets dated in the future, no
# command crashes, each names what is wrong (exit 1 or 0, never a traceback), the series' own set
# stays complete and pullable, and nothing planted is changed by any command.
@pytest.fixture(scope="module")
def corpus_s3():
    from pgdrill_lab.s3server import S3Server

    with S3Server(name="tests-s3-corpus") as server:
        server.create_bucket("pgdrill-corpus")
        yield server


def _remote_stamp(days):
    return (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y%m%d_%H%M%S")


def test_hostile_objects_on_the_remote(backup_env, corpus_s3, tmp_path, monkeypatch):
    import json

    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    env = corpus_s3.env()
    client = corpus_s3.client()
    base = f"{backup_env.dbname}-{os.path.basename(str(tmp_path))}"[:60]
    backup_env.rewrite(remote=f"s3://pgdrill-corpus/{base}", remote_endpoint_url=corpus_s3.endpoint_url, remote_region="us-east-1", prune_after_backup="no")
    backup_env.run(env=env)  # the series' own set, pushed
    prefix = backup_env.dbname
    objects = {item["Key"][len(base) + 1 :]: item["Key"] for item in client.list_objects_v2(Bucket="pgdrill-corpus", Prefix=base + "/")["Contents"]}
    (own_manifest,) = [name for name in objects if "_manifest_" in name]
    own_stamp = own_manifest[len(prefix) + len("_manifest_") : -len("_utc.json")]
    own = json.loads(client.get_object(Bucket="pgdrill-corpus", Key=objects[own_manifest])["Body"].read())
    body = {name: client.get_object(Bucket="pgdrill-corpus", Key=key)["Body"].read() for name, key in objects.items() if name != own_manifest}

    def plant(name, data):
        client.put_object(Bucket="pgdrill-corpus", Key=f"{base}/{name}", Body=data)

    def copy_of_set(stamp, change=None, started_at=None):
        """The series' own set under another stamp, its manifest changed by ``change``."""
        document = json.loads(json.dumps(own).replace(own_stamp, stamp))
        if started_at:
            document["started_at"] = started_at
        if change:
            change(document)
        for name, data in body.items():
            plant(name.replace(own_stamp, stamp), data)
        plant(f"{prefix}_manifest_{stamp}_utc.json", json.dumps(document).encode())
        return f"{prefix}_{stamp}_utc"

    damaged = {}
    for days, (_label, change, expected) in enumerate(MANIFEST_CASES, start=20):
        damaged[copy_of_set(_remote_stamp(days), change)] = expected
    damaged[copy_of_set(_remote_stamp(40), lambda m: m["files"][0].update(size="12"))] = "size"
    damaged[copy_of_set(_remote_stamp(41), lambda m: m.update(files={"a": 1}))] = "files"
    unreadable = ((42, b"[]", "not a JSON object"), (43, b"not json", "unreadable manifest"), (44, b"null", "not a JSON object"))
    for days, text, expected in unreadable + ((45, b'{"format": "pgdrill-manifest"', "unreadable manifest"),):
        stamp = _remote_stamp(days)
        plant(f"{prefix}_manifest_{stamp}_utc.json", text)
        damaged[f"{prefix}_{stamp}_utc"] = expected
    future = copy_of_set("20991231_235959", started_at="2099-12-31T23:59:59.000Z")
    newline = _remote_stamp(50)
    plant(f"{prefix}_db_{newline}_utc.dump\n", b"PGDMP")  # names matched whole: foreign
    plant(f"{prefix}_manifest_{newline}_utc.json\n", b"{}")
    plant(own_manifest + "\n", b"{}")
    plant(f"{prefix}_db_{_remote_stamp(51)}_utc.dump", b"PGDMP debris")  # an object of no set
    plant(f".{prefix}_manifest_{own_stamp}_utc.json", b"{}")  # hidden
    plant(f"{prefix}_db_20261399_000000_utc.dump", b"impossible stamp")
    plant("notes.txt", b"not pgdrill's")
    before = {item["Key"]: item["ETag"] for item in client.list_objects_v2(Bucket="pgdrill-corpus", Prefix=base + "/")["Contents"]}

    own_id = f"{prefix}_{own_stamp}_utc"
    listing = backup_env.run("list", "--remote", "--json", env=env)
    rows = {row["set"]: row for row in json.loads(listing.stdout)["results"][0]["sets"]}
    assert rows[own_id]["state"] == "complete" and rows[future]["state"] == "future", rows
    for set_id, expected in damaged.items():
        assert rows[set_id]["state"] == "damaged" and expected in rows[set_id]["problem"], (set_id, rows[set_id])
    assert not any("\n" in row["set"] for row in rows.values())
    commands = [
        (["list", "--remote"], (0,)),
        (["list"], (0,)),
        (["verify", "--remote"], (0,)),
        (["verify", "--remote", "--all"], (1,)),
        (["prune", "--remote", "--dry-run"], (0,)),
        (["pull", "--to", str(tmp_path / "pulled")], (0,)),
        (["pull", future, "--to", str(tmp_path / "future")], (0, 1)),
        ([], (0,)),  # a backup and its push: the future set stops nothing, and is named
        (["push", "--all"], (0,)),
    ]
    commands += [(["pull", set_id, "--to", str(tmp_path / "damaged")], (1,)) for set_id in damaged]
    commands += [(["verify", "--remote", set_id], (1,)) for set_id in list(damaged)[:3]]
    for command, codes in commands:
        done = backup_env.run(*command, env=env, check=None)
        assert "Traceback" not in done.stderr, (command, done.stderr)
        assert done.returncode in codes, (command, done.returncode, done.stdout, done.stderr)
        if done.returncode:
            assert "Fix:" in done.stderr or "FAILED" in done.stdout, (command, done.stderr)
        if command and command[0] == "pull" and "damaged" in command[-1]:
            assert "not complete" in done.stderr, (command, done.stderr)
    pulled = sorted(os.listdir(tmp_path / "pulled"))
    assert any(own_stamp in name for name in pulled) and not any(f"{prefix}_" in name and own_stamp not in name for name in pulled), pulled
    assert not [name for name in os.listdir(tmp_path / "damaged") if not name.startswith(".")]
    after = {item["Key"]: item["ETag"] for item in client.list_objects_v2(Bucket="pgdrill-corpus", Prefix=base + "/")["Contents"]}
    assert {key: tag for key, tag in after.items() if key in before} == before  # nothing planted changed or went
