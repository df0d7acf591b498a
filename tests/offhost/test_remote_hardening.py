"""The remote is untrusted input, the rest of it (issue 18, items 12, 14 and 15): foreign sets are
refused by pull, stale multipart uploads of the series are aborted, Object Lock settings on a bucket
without Object Lock are named, downloads are private, a push killed by SIGTERM is a failure on
record, pins of sets only the remote holds, unpin under Object Lock, no secret of an endpoint URL in
any message. Real backups, a real S3 server on loopback, the command in its own process."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta

import pytest

from pgdrill.errors import PgdrillError
from pgdrill.storage.backends import open_remote
from offhost_helpers import local_set_ids, s3_remote, s3_settings


# --- S4: a secret inside remote_endpoint_url ------------------------------------------------------
def test_a_secret_in_the_endpoint_url_is_refused_at_load_and_never_echoed(backup_env, aws_env, bucket):
    secret = "s3cr3t-Zq9"
    for endpoint in (f"https://AKIAX:{secret}@s3.example.net", f"https://AKIAX:{secret}@s3.example.net/ bad", f"http://{secret}@127.0.0.1:1"):
        backup_env.rewrite(**s3_settings(aws_env, bucket, remote_endpoint_url=endpoint))
        done = backup_env.run("list", "--remote", check=2)
        assert secret not in done.stdout + done.stderr, done.stderr
        assert "remote_endpoint_url" in done.stderr and "credentials" in done.stderr and "Fix:" in done.stderr, done.stderr


def test_the_s3_client_never_puts_an_endpoints_userinfo_in_a_message(aws_env, bucket):
    """Given to the engine past the config (a module, a drill): the message says where, not the secret."""
    secret = "s3cr3t-Zq9"
    for endpoint in (f"http://AKIAX:{secret}@127.0.0.1:1", f"http://{secret}@127.0.0.1:1"):
        with pytest.raises(PgdrillError) as caught:
            open_remote(f"s3://{bucket}/pgdrill", endpoint_url=endpoint, region="us-east-1").list()
        assert secret not in caught.value.message and "127.0.0.1:1" in caught.value.message, caught.value.message


# --- R23: every download is private -----------------------------------------------------------------
def test_every_file_a_pull_writes_is_private_whatever_the_umask(backup_env, tmp_path):
    """rclone (here its local backend) and the manifest written after it: 0600, under umask 000."""
    store = tmp_path / "store"
    backup_env.rewrite(remote=f"rclone::local:{store}", globals="yes")
    backup_env.run()
    (set_id,) = local_set_ids(backup_env)
    backup_env.run("pin", set_id, "--reason", "kept")
    target = tmp_path / "pulled"
    old = os.umask(0)
    try:
        backup_env.run("pull", set_id, "--to", str(target))
    finally:
        os.umask(old)
    names = sorted(os.listdir(target))
    assert any("_globals_" in name for name in names) and any("_pin_" in name for name in names), names
    modes = {name: oct(stat.S_IMODE(os.stat(target / name).st_mode)) for name in names if not name.startswith(".")}
    assert set(modes.values()) == {"0o600"}, modes
    assert oct(stat.S_IMODE(os.stat(target).st_mode)) == "0o700"


# --- R20: Object Lock settings on a bucket without Object Lock ------------------------------------
def test_object_lock_days_on_a_bucket_without_object_lock_is_named(backup_env, aws_env, bucket):
    backup_env.rewrite(**s3_settings(aws_env, bucket, remote_object_lock_days=3))
    done = backup_env.run(check=1)
    assert "Object Lock" in done.stderr and bucket in done.stderr and "remote_object_lock_days" in done.stderr, done.stderr
    assert "Fix:" in done.stderr or "fix" in done.stderr.lower(), done.stderr
    assert s3_remote(aws_env, bucket).list() == []  # nothing pushed unlocked in its place


def test_object_lock_days_on_a_locked_bucket_push(backup_env, aws_env, locked_bucket):
    backup_env.rewrite(**s3_settings(aws_env, locked_bucket, remote_object_lock_days=1))
    backup_env.run()
    assert any("_manifest_" in item.name for item in s3_remote(aws_env, locked_bucket).list())


# --- R13: stale multipart uploads of the series ---------------------------------------------------
def test_each_push_aborts_the_series_stale_multipart_uploads_only(backup_env, aws_env, bucket):
    from pgdrill import offsite
    from pgdrill.config import load_configs
    from pgdrill.series import utcnow

    backup_env.rewrite(**s3_settings(aws_env, bucket, remote_upload="no"))
    backup_env.run()
    prefix = backup_env.dbname
    client = aws_env.client()
    ours = f"pgdrill/{prefix}_db_20261101_000000_utc.dump"
    others = [f"pgdrill/other{prefix}_db_20261101_000000_utc.dump", "pgdrill/notes.txt", f"pgdrill/deeper/{prefix}_db_20261101_000000_utc.dump"]
    for key in [ours, *others]:
        client.create_multipart_upload(Bucket=bucket, Key=key)

    def pending():
        return sorted(item["Key"] for item in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    (config,) = load_configs(backup_env.config, environ={})
    offsite.push(config, owed=True)  # a fresh upload may be one in progress: left alone
    assert pending() == sorted([ours, *others])
    outcome = offsite.push(config, owed=True, now=utcnow() + timedelta(days=1, minutes=5))
    assert pending() == sorted(others), pending()
    assert outcome["aborted_uploads"] == [f"{prefix}_db_20261101_000000_utc.dump"]


# --- R29, R30: pins of the off-host copy ----------------------------------------------------------
def test_a_set_only_the_remote_holds_can_be_pinned_and_remote_retention_keeps_it(backup_env, aws_env, bucket):
    backup_env.rewrite(prune_after_backup="no", **s3_settings(aws_env, bucket))
    backup_env.run()
    backup_env.run()
    older, newer = local_set_ids(backup_env)
    stamp = older[len(backup_env.dbname) + 1 : -len("_utc")]
    for name in backup_env.files():
        if stamp in name:
            os.unlink(os.path.join(backup_env.backup_dir, name))
    assert local_set_ids(backup_env) == [newer]
    done = backup_env.run("pin", older, "--reason", "before migration 0042")
    assert older in done.stdout and "pinned" in done.stdout and "remote" in done.stdout, done.stdout
    again = backup_env.run("pin", older, "--reason", "before migration 0042")
    assert "already pinned" in again.stdout, again.stdout
    rows = {row["set"]: row for row in json.loads(backup_env.run("list", "--remote", "--json").stdout)["results"][0]["sets"]}
    assert rows[older]["pinned"] and not rows[newer]["pinned"], rows
    backup_env.rewrite(prune_after_backup="no", keep_last=1, retention_days=0, **s3_settings(aws_env, bucket))
    pruned = backup_env.run("prune", "--remote").stdout
    assert f"keep         {older}" in pruned and "pinned" in pruned.split(older, 1)[1].splitlines()[0], pruned
    assert older in backup_env.run("list", "--remote").stdout
    unpinned = backup_env.run("unpin", older)
    assert "unpinned" in unpinned.stdout, unpinned.stdout
    pruned = backup_env.run("prune", "--remote").stdout
    assert f"removed      {older}" in pruned, pruned


def test_unpin_never_says_unpinned_while_an_object_locked_remote_pin_stays(backup_env, aws_env, locked_bucket):
    backup_env.rewrite(**s3_settings(aws_env, locked_bucket, remote_object_lock_days=1))
    backup_env.run()
    (set_id,) = local_set_ids(backup_env)
    pinned = backup_env.run("pin", set_id, "--reason", "audit")
    assert "pin uploaded" in pinned.stdout or "remote" in pinned.stdout, pinned.stdout
    done = backup_env.run("unpin", set_id, check=1)
    assert "unpinned" not in done.stdout, done.stdout
    assert "Object Lock" in done.stderr and "Fix:" in done.stderr, done.stderr
    rows = json.loads(backup_env.run("list", "--remote", "--json").stdout)["results"][0]["sets"]
    assert rows[0]["pinned"], rows  # what unpin said is what is there
    # Asked again, it names the remote pin again rather than "not pinned; nothing to do".
    again = backup_env.run("unpin", set_id, check=1)
    assert "nothing to do" not in again.stdout and "Object Lock" in again.stderr, again.stdout + again.stderr


# --- R26: SIGTERM during a push -------------------------------------------------------------------
def prom(path):
    """name{labels} -> value of a metrics file."""
    out = {}
    for line in open(path, encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_sigterm_during_the_push_of_a_backup_fails_the_ping_and_the_metrics(backup_env, aws_env, tmp_path, ping_recorder):
    """The backup is done, its push hangs on a storage that stopped answering, systemd stops the
    unit: the run ends non-zero, the heartbeat says fail, the metrics record the attempt."""
    import signal
    import subprocess
    import sys
    import time

    from helpers import cli_env
    from pgdrill_lab.s3server import S3Server

    base, pings = ping_recorder
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    with S3Server(name="tests-s3-frozen") as server:
        server.create_bucket("pgdrill-frozen")
        backup_env.rewrite(
            metrics_dir=str(metrics),
            ping_url=base + "/ping/k",
            remote="s3://pgdrill-frozen/pgdrill",
            remote_endpoint_url=server.endpoint_url,
            remote_region="us-east-1",
        )
        env = cli_env(server.env())
        backup_env.run(env=server.env())  # one good run: exit code 0 on record
        first = prom(metrics / f"pgdrill_{backup_env.dbname}.prom")
        os.killpg(server.proc.pid, signal.SIGSTOP)  # the storage accepts connections and never answers
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "pgdrill.cli", "--config", backup_env.config], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            deadline = time.monotonic() + 120
            while len(local_set_ids(backup_env)) < 2 and time.monotonic() < deadline and child.poll() is None:
                time.sleep(0.2)
            time.sleep(2)  # the set is written: the run is in its push
            assert child.poll() is None, child.communicate()
            child.send_signal(signal.SIGTERM)
            out, err = child.communicate(timeout=60)
        finally:
            os.killpg(server.proc.pid, signal.SIGCONT)
    assert child.returncode != 0, (out, err)
    assert pings[-1][0] == "/ping/k/fail", pings
    label = f'{{series="{backup_env.dbname}"}}'
    after = prom(metrics / f"pgdrill_{backup_env.dbname}.prom")
    assert after[f"pgdrill_backup_last_exit_code{label}"] != 0, after
    assert after[f"pgdrill_backup_last_attempt_timestamp_seconds{label}"] > first[f"pgdrill_backup_last_attempt_timestamp_seconds{label}"]


# --- R25: pull into an encrypted series -----------------------------------------------------------
def plant_set_from(backup_env, tmp_path, aws_env, bucket, name, host, **extra):
    """A set pushed to the same remote series by another config (another backup directory), its
    manifest saying it was taken on ``host``: what another host, or anyone who can write to the
    bucket, puts there."""
    import time

    from helpers import run_cli, write_config

    time.sleep(1.1)  # a stamp of its own (stamps are to the second)
    directory = tmp_path / name
    config = write_config(
        tmp_path / f"{name}.conf", backup_env.cluster, backup_env.dbname, directory, **s3_settings(aws_env, bucket, remote_upload="no", **extra)
    )
    run_cli("--config", config)
    (manifest,) = [directory / item for item in os.listdir(directory) if "_manifest_" in item]
    document = json.loads(manifest.read_text())
    document["host"] = host
    manifest.write_text(json.dumps(document))
    run_cli("--config", config, "push")
    time.sleep(1.1)  # and the next run of the test's own series gets a later stamp than the planted set
    return document["set"]


def test_pull_into_an_encrypted_series_refuses_a_foreign_set_unless_asked(backup_env, aws_env, bucket, keys, tmp_path):
    (_, ours), (_, stranger) = keys["drill"], keys["stranger"]
    backup_env.rewrite(prune_after_backup="no", encrypt_recipients=ours, **s3_settings(aws_env, bucket))
    backup_env.run()
    (own,) = local_set_ids(backup_env)
    plaintext = plant_set_from(backup_env, tmp_path, aws_env, bucket, "plain", "intruder")
    other_keys = plant_set_from(backup_env, tmp_path, aws_env, bucket, "strange", "intruder", encrypt_recipients=stranger)
    other_host = plant_set_from(backup_env, tmp_path, aws_env, bucket, "elsewhere", "elsewhere.example", encrypt_recipients=ours)
    # Named: refused, with the reason and the way to take it all the same.
    for set_id, words in ((plaintext, "plaintext"), (other_keys, "other recipients"), (other_host, "'elsewhere.example'")):
        done = backup_env.run("pull", set_id, check=1)
        assert words in done.stderr and "--accept-foreign" in done.stderr, done.stderr
        assert set_id not in local_set_ids(backup_env)
    # The newest set: the foreign ones are skipped, each named; the series' own is pulled.
    target = tmp_path / "restore-here"
    done = backup_env.run("pull", "--to", str(target), "--json")
    outcome = json.loads(done.stdout)["results"][0]
    assert outcome["set"] == own and {entry["set"] for entry in outcome["skipped"]} == {plaintext, other_keys, other_host}, outcome
    taken = backup_env.run("pull", plaintext, "--accept-foreign")
    assert f"pulled {plaintext}" in taken.stdout, taken.stdout


# --- put-only credentials: "access denied" on delete is a failure, not "kept (locked)" ------------
@pytest.fixture(scope="module")
def put_only_server():
    from pgdrill_lab.s3server import S3Server

    with S3Server(name="tests-s3-put-only", put_only_user=True) as server:
        server.create_bucket("pgdrill-put-only")
        yield server


def test_put_only_credentials_push_but_a_denied_delete_fails_the_remote_prune(backup_env, put_only_server, monkeypatch, tmp_path):
    server = put_only_server
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    remote = {"remote": "s3://pgdrill-put-only/pgdrill", "remote_endpoint_url": server.endpoint_url, "remote_region": "us-east-1"}
    backup_env.rewrite(prune_after_backup="no", keep_last=1, retention_days=0, **remote)
    put_only = server.put_only_env()
    backup_env.run(env=put_only)  # the host pushes with put-only credentials
    backup_env.run(env=put_only)
    older, newer = local_set_ids(backup_env)
    names = sorted(item["Key"] for item in server.client().list_objects_v2(Bucket="pgdrill-put-only")["Contents"])
    assert sum("_manifest_" in name for name in names) == 2, names
    done = backup_env.run("prune", "--remote", env=put_only, check=1)
    assert "access denied" in done.stderr and "s3:DeleteObject" in done.stderr, done.stderr
    assert "locked" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert sorted(item["Key"] for item in server.client().list_objects_v2(Bucket="pgdrill-put-only")["Contents"]) == names
    # The controller, with delete rights, prunes.
    pruned = backup_env.run("prune", "--remote", env=server.env()).stdout
    assert f"removed      {older}" in pruned, pruned


# --- item 12: a fleet sharing one remote path -------------------------------------------------------
def test_a_push_warns_when_another_host_writes_the_same_remote_series(backup_env, aws_env, bucket, tmp_path):
    backup_env.rewrite(**s3_settings(aws_env, bucket))
    backup_env.run()
    quiet = backup_env.run()
    assert "other hosts" not in quiet.stderr, quiet.stderr  # its own sets, here or pruned here, are no other host's
    plant_set_from(backup_env, tmp_path, aws_env, bucket, "db2", "db2.example")
    done = backup_env.run()
    assert "db2.example" in done.stderr and "its own remote path" in done.stderr, done.stderr
