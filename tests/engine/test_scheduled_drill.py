"""``pgdrill-backup drill``: the whole restore drill as a staging timer runs it, without the
controller, on real clusters: evidence, drill log line, metrics, pings, and the scratch database
dropped, for a passing drill and for one whose restore loses a GRANT."""

import glob
import json
import os
import shutil
import sys


def _drill_config(backup_env, tmp_path, ping_url, **extra):
    pg = backup_env.cluster
    marker = tmp_path / "post-restore-saw"
    values = {
        "database": backup_env.dbname,
        "source_dir": backup_env.backup_dir,
        "source_host": "db1",
        "host": pg.host,
        "port": pg.port,
        "user": "postgres",
        "passfile": pg.passfile,
        "evidence_dir": tmp_path / "evidence",
        "log_file": tmp_path / "drill-log.md",
        "metrics_dir": tmp_path / "metrics",
        "ping_url": ping_url,
        # A post-restore command sees the scratch database's connection in its environment, no password in argv.
        "post_restore": f"\n  {sys.executable} -c \"import os; open('{marker}', 'w').write(os.environ['PGDATABASE'] + ' ' + "
        f"os.environ['POSTGRES_DB'] + ' ' + os.environ.get('PGPASSWORD', 'no-password'))\"",
        "checks": json.dumps(
            [
                {"name": "invoices exist", "sql": "SELECT 1 FROM public.invoices", "expect": "rows"},
                {"name": "writes roll back", "sql": "UPDATE public.invoices SET total = 0 RETURNING 1", "expect": "rows"},
            ]
        ),
        **extra,
    }
    os.makedirs(tmp_path / "metrics", exist_ok=True)
    with open(backup_env.config, "a", encoding="utf-8") as handle:
        handle.write("\n[drill]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()))
    return marker


def _scratch_left(pg):
    return pg.psql("SELECT datname FROM pg_database WHERE datname LIKE 'drill\\_%' ORDER BY 1").split()


def _evidence(tmp_path):
    paths = sorted(glob.glob(str(tmp_path / "evidence" / "drill_*.json")))
    return [json.load(open(path)) for path in paths]


def _metrics(tmp_path):
    text = "".join(open(path).read() for path in glob.glob(str(tmp_path / "metrics" / "*.prom")))
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}


def test_the_drill_command_restores_proves_smoke_tests_records_and_cleans_up(backup_env, tmp_path, ping_recorder):
    base, pings = ping_recorder
    backup_env.run()
    marker = _drill_config(backup_env, tmp_path, base + "/ping/drill-key-5e1")
    done = backup_env.run("drill")
    assert "drill-key-5e1" not in done.stdout + done.stderr
    assert "PASSED" in done.stdout, done.stdout + done.stderr

    [record] = _evidence(tmp_path)
    assert record["outcome"] == "passed" and record["runner"] == "pgdrill-backup drill"
    assert record["set"].startswith(backup_env.dbname + "_") and record["source_host"] == "db1"
    names = {check["name"]: check for check in record["checks"]}
    assert names["fingerprint against the backup"]["ok"] and "objects match" in names["fingerprint against the backup"]["detail"]
    assert names["row counts against the manifest"]["ok"]
    assert names["invoices exist"]["ok"] and names["writes roll back"]["ok"] and len(record["checks"]) == 5
    assert record["timings"]["restore"] > 0 and record["scratch_database"].startswith(f"drill_{backup_env.dbname}_")
    seen = marker.read_text().split()
    assert seen == [record["scratch_database"], record["scratch_database"], "no-password"]

    log = (tmp_path / "drill-log.md").read_text().splitlines()
    assert len(log) == 1 and log[0].startswith("- ") and "PASSED" in log[0] and f"{backup_env.dbname} from db1" in log[0]
    metrics = _metrics(tmp_path)
    label = f'{{series="{backup_env.dbname}",source="db1"}}'
    success = metrics[f"pgdrill_drill_last_success_timestamp_seconds{label}"]
    assert metrics[f"pgdrill_drill_last_passed{label}"] == 1
    assert _scratch_left(backup_env.cluster) == []
    assert [path for path, _ in pings] == ["/ping/drill-key-5e1/start", "/ping/drill-key-5e1"]
    assert pings[1][1]["outcome"] == "passed"

    # The restore loses a GRANT the backup had: the fingerprint comparison fails the drill, naming it.
    manifest = glob.glob(os.path.join(backup_env.backup_dir, "*_manifest_*.json"))[0]
    document = json.load(open(manifest))
    document["fingerprint"]["objects"]["table public.invoices"]["acl"] = ["postgres=arwdDxt/postgres", "auditor=r/postgres"]
    json.dump(document, open(manifest, "w"))
    failed = backup_env.run("drill", check=1)
    assert "FAILED at restore" in failed.stdout, failed.stdout + failed.stderr
    [record] = [entry for entry in _evidence(tmp_path) if entry["outcome"] == "failed"]
    assert record["outcome"] == "failed" and record["failed_step"] == "restore"
    assert "table public.invoices: acl differs" in record["error"] and "auditor=r/postgres" in record["error"]
    fingerprint = next(check for check in record["checks"] if check["kind"] == "fingerprint")
    assert not fingerprint["ok"] and "acl differs" in fingerprint["detail"]
    assert _scratch_left(backup_env.cluster) == []  # keep = never: dropped even after a failure
    metrics = _metrics(tmp_path)
    assert metrics[f"pgdrill_drill_last_passed{label}"] == 0
    assert metrics[f"pgdrill_drill_last_success_timestamp_seconds{label}"] == success
    assert pings[-1][0] == "/ping/drill-key-5e1/fail" and pings[-1][1]["failed_step"] == "restore"
    assert "FAILED at restore" in (tmp_path / "drill-log.md").read_text().splitlines()[-1]


def test_a_failing_smoke_check_fails_the_drill_and_keep_on_failure_keeps_the_scratch_database(backup_env, tmp_path, ping_recorder):
    base, pings = ping_recorder
    backup_env.run()
    _drill_config(
        backup_env,
        tmp_path,
        base + "/ping/k",
        keep="on_failure",
        checks=json.dumps([{"name": "no invoices", "sql": "SELECT 1 FROM public.invoices", "expect": "none"}]),
    )
    done = backup_env.run("drill", check=1)
    assert "FAILED at smoke checks" in done.stdout
    [record] = _evidence(tmp_path)
    assert record["scratch_database_kept"] is True and record["failed_step"] == "smoke checks"
    assert "'no invoices' failed" in record["error"]
    left = _scratch_left(backup_env.cluster)
    try:
        assert left == [record["scratch_database"]]
    finally:
        for name in left:
            backup_env.cluster.psql(f'DROP DATABASE IF EXISTS "{name}"')
    assert pings[-1][0] == "/ping/k/fail"


def test_a_stale_newest_set_fails_the_drill_before_any_restore(backup_env, tmp_path, ping_recorder):
    base, pings = ping_recorder
    backup_env.run()
    _drill_config(backup_env, tmp_path, base + "/ping/k", max_age_hours="0.0001")
    import time

    time.sleep(1)
    done = backup_env.run("drill", check=1)
    assert "FAILED at pick the set" in done.stdout
    [record] = _evidence(tmp_path)
    assert "h old (limit" in record["error"] and record["scratch_database"] is None
    assert pings[-1][0] == "/ping/k/fail"


def test_bad_drill_config_exits_2_naming_the_key_and_a_remote_source_names_what_it_needs(backup_env, tmp_path, ping_recorder):
    base, _ = ping_recorder
    backup_env.run()
    _drill_config(backup_env, tmp_path, base + "/ping/k", keep="sometimes")
    done = backup_env.run("drill", check=2)
    assert "keep = 'sometimes'" in done.stderr and "never, on_failure, always" in done.stderr
    assert "not --out-dir or --database" in backup_env.run("drill", "--out-dir", str(tmp_path), check=2).stderr
    backup_env.rewrite()
    _drill_config(backup_env, tmp_path, base + "/ping/k", source="remote")
    done = backup_env.run("drill", check=2)
    assert "source = remote but no 'remote'" in done.stderr and "s3://BUCKET/PREFIX" in done.stderr


def _ssh_shims(tmp_path):
    """ssh and scp stand-ins that run locally, recording their calls."""
    shims = tmp_path / "shims"
    shims.mkdir()
    calls = tmp_path / "calls"
    (shims / "ssh").write_text(f'#!/bin/sh\necho "ssh $*" >> {calls}\nfor last; do :; done\nexec /bin/sh -c "$last"\n')
    (shims / "scp").write_text(
        f'#!/bin/sh\necho "scp $*" >> {calls}\nfor last; do :; done\n'
        'for arg; do case "$arg" in source.example:*) cp -R -- "${arg#source.example:}" "$last";; esac; done\n'
    )
    for shim in ("ssh", "scp"):
        os.chmod(shims / shim, 0o755)
    return shims, calls


def test_keep_always_keeps_the_fetched_copy_without_the_globals_and_says_where(backup_env, tmp_path, ping_recorder):
    """keep = always keeps the scratch database and the copy of the set the drill fetched, but not the
    globals file (the source's role password hashes): the evidence and the log line say where the copy is."""
    base, _ = ping_recorder
    backup_env.run()
    shims, _ = _ssh_shims(tmp_path)
    work = tmp_path / "work"
    _drill_config(backup_env, tmp_path, base + "/ping/k", source="ssh", source_ssh="source.example", work_dir=work, keep="always")
    done = backup_env.run("drill", env={"PATH": f"{shims}:{os.environ['PATH']}"})
    assert "PASSED" in done.stdout, done.stdout + done.stderr
    [record] = _evidence(tmp_path)
    copy = work / f"copy-{backup_env.dbname}"
    globals_file = next(entry["name"] for entry in record["files"] if entry["kind"] == "globals")
    dump_file = next(entry["name"] for entry in record["files"] if entry["kind"] == "db")
    assert dump_file in os.listdir(copy) and globals_file not in os.listdir(copy), os.listdir(copy)
    assert record["scratch_database_kept"] and record["kept_copies"] == [f"{record['staging_host']}:{copy}"]
    assert record["kept_copies_left_out"] == [globals_file]
    line = (tmp_path / "drill-log.md").read_text().strip().splitlines()[-1]
    assert f"kept: scratch database {record['scratch_database']}, copy of the set at {record['staging_host']}:{copy} without {globals_file}" in line, line
    backup_env.cluster.psql(f'DROP DATABASE "{record["scratch_database"]}" WITH (FORCE)')


def test_source_ssh_lists_the_source_directory_and_copies_only_the_newest_set(backup_env, tmp_path, ping_recorder):
    """ssh and scp are stand-ins here that run locally (the real ones: molecule/backup, a drill of
    another host's sets): what is tested is which files are asked for, and that the copy goes."""
    base, _ = ping_recorder
    backup_env.run()
    backup_env.run("--no-prune")
    shims, calls = _ssh_shims(tmp_path)
    work = tmp_path / "work"
    _drill_config(
        backup_env,
        tmp_path,
        base + "/ping/k",
        source="ssh",
        source_ssh="source.example",
        work_dir=work,
        ssh_options="\n  -o BatchMode=yes\n  -i /etc/pgdrill-drill/id_ed25519",
    )
    done = backup_env.run("drill", env={"PATH": f"{shims}:{os.environ['PATH']}"})
    assert "PASSED" in done.stdout, done.stdout + done.stderr
    [record] = _evidence(tmp_path)
    newest = sorted(name for name in os.listdir(backup_env.backup_dir) if "_manifest_" in name)[-1]
    assert record["set"] == newest.replace("_manifest", "").rsplit(".", 1)[0] and record["transfer"] == "direct"
    ssh, scp = open(calls).read().splitlines()
    assert ssh.startswith("ssh -o BatchMode=yes -i /etc/pgdrill-drill/id_ed25519 source.example ls -1A -- ")
    stamp = "_".join(record["set"].split("_")[-3:-1])
    assert len([name for name in os.listdir(backup_env.backup_dir) if "_manifest_" in name]) == 2
    asked = [word.rsplit("/", 1)[1] for word in scp.split() if word.startswith("source.example:")]
    assert asked and all(stamp in name for name in asked) and not any("_verify_" in name for name in asked)
    assert set(asked) == {entry["name"] for entry in record["files"]} | {newest}
    assert os.listdir(work) == []  # the copy is removed after the drill


def test_a_damaged_set_fails_the_drill_on_arrival_before_any_scratch_database(backup_env, tmp_path, ping_recorder):
    base, pings = ping_recorder
    backup_env.run()
    _drill_config(backup_env, tmp_path, base + "/ping/k")
    dump = next(os.path.join(backup_env.backup_dir, name) for name in backup_env.files() if "_db_" in name)
    with open(dump, "r+b") as handle:
        handle.seek(os.path.getsize(dump) // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    done = backup_env.run("drill", check=1)
    assert "FAILED at verify on arrival" in done.stdout, done.stdout + done.stderr
    [record] = _evidence(tmp_path)
    assert record["failed_step"] == "verify on arrival" and "failed verification" in record["error"] and "sha256" in record["error"]
    assert record["scratch_database"] is None and _scratch_left(backup_env.cluster) == []
    assert pings[-1][0] == "/ping/k/fail"


def test_keep_on_failure_drops_the_scratch_database_of_a_passed_drill_and_no_smoke_check_is_said(backup_env, tmp_path, ping_recorder):
    base, pings = ping_recorder
    backup_env.run()
    _drill_config(backup_env, tmp_path, base + "/ping/k", keep="on_failure", post_restore="", checks="[]")
    done = backup_env.run("drill")
    assert "PASSED" in done.stdout, done.stdout + done.stderr
    [record] = _evidence(tmp_path)
    left = _scratch_left(backup_env.cluster)
    for name in left:
        backup_env.cluster.psql(f'DROP DATABASE IF EXISTS "{name}"')
    assert record["scratch_database_kept"] is False and left == []
    # Only the restore's own proofs ran: the line says no smoke check is configured, not "2/2 checks ok".
    [line] = (tmp_path / "drill-log.md").read_text().splitlines()
    assert "no smoke checks configured" in line and "2/2 restore proofs ok" in line and "checks ok" not in line, line
    assert pings[-1][0] == "/ping/k"


def test_a_failing_post_restore_command_fails_the_drill(backup_env, tmp_path, ping_recorder):
    base, pings = ping_recorder
    backup_env.run()
    _drill_config(backup_env, tmp_path, base + "/ping/k", post_restore=f"{sys.executable} -c \"import sys; sys.exit('migrations are missing')\"", checks="[]")
    done = backup_env.run("drill", check=1)
    assert "FAILED at smoke checks" in done.stdout, done.stdout + done.stderr
    [record] = _evidence(tmp_path)
    assert record["outcome"] == "failed" and record["failed_step"] == "smoke checks"
    assert "migrations are missing" in record["error"] and "exit 1" in record["error"]
    assert _scratch_left(backup_env.cluster) == [] and pings[-1][0] == "/ping/k/fail"


def test_a_drill_whose_log_line_cannot_be_written_fails_everywhere(backup_env, tmp_path, ping_recorder):
    """The outcome is one thing: the exit code, the evidence, the log line, the metrics and the ping agree."""
    base, pings = ping_recorder
    backup_env.run()
    (tmp_path / "not-a-directory").write_text("")
    _drill_config(backup_env, tmp_path, base + "/ping/k", log_file=tmp_path / "not-a-directory" / "drill-log.md")
    done = backup_env.run("drill", check=1)
    assert "PASSED" not in done.stdout and "FAILED at record" in done.stdout, done.stdout + done.stderr
    assert "cannot record the drill" in done.stderr and "drill-log.md" in done.stderr
    [record] = _evidence(tmp_path)
    assert record["outcome"] == "failed" and record["failed_step"] == "record" and "drill-log.md" in record["error"]
    label = f'{{series="{backup_env.dbname}",source="db1"}}'
    metrics = _metrics(tmp_path)
    assert metrics[f"pgdrill_drill_last_passed{label}"] == 0 and f"pgdrill_drill_last_success_timestamp_seconds{label}" not in metrics
    assert pings[-1][0] == "/ping/k/fail" and pings[-1][1]["failed_step"] == "record"
    assert _scratch_left(backup_env.cluster) == []

    # A log that opens but cannot take the line (a full disk): the evidence, written before, is rewritten as failed.
    backup_env.rewrite()
    shutil.rmtree(tmp_path / "evidence")
    _drill_config(backup_env, tmp_path, base + "/ping/k", log_file="/dev/full")
    done = backup_env.run("drill", check=1)
    assert "FAILED at record" in done.stdout and "No space left on device" in done.stderr, done.stdout + done.stderr
    [record] = _evidence(tmp_path)
    assert record["outcome"] == "failed" and record["failed_step"] == "record" and "No space left" in record["error"]
    assert pings[-1][0] == "/ping/k/fail"


def test_two_drills_in_the_same_second_keep_two_evidence_records_and_two_log_lines(backup_env, tmp_path, ping_recorder, monkeypatch):
    from pgdrill import scheduled
    from pgdrill.drill_config import load_drill_config

    base, _ = ping_recorder
    backup_env.run()
    _drill_config(backup_env, tmp_path, base + "/ping/k", post_restore="", checks="[]")
    monkeypatch.setattr(scheduled, "_now", lambda: "2026-11-27T07:30:00Z")
    config = load_drill_config(backup_env.config)
    first, second = scheduled.run_drill(config), scheduled.run_drill(config)
    assert first["exit_code"] == second["exit_code"] == 0
    assert first["evidence"] != second["evidence"] and len(_evidence(tmp_path)) == 2
    lines = (tmp_path / "drill-log.md").read_text().splitlines()
    assert lines == [first["log_line"], second["log_line"]] and lines[0] != lines[1]


def test_the_drill_restores_a_directory_set_with_the_same_proofs_and_copies_one_over_ssh_whole(backup_env, tmp_path, ping_recorder):
    base, _ = ping_recorder
    backup_env.rewrite(format="directory")
    backup_env.run()
    _drill_config(backup_env, tmp_path, base + "/ping/k")
    done = backup_env.run("drill")
    assert "PASSED" in done.stdout, done.stdout + done.stderr
    [record] = _evidence(tmp_path)
    names = {check["name"]: check for check in record["checks"]}
    assert names["fingerprint against the backup"]["ok"] and "objects match" in names["fingerprint against the backup"]["detail"]
    assert names["row counts against the manifest"]["ok"] and names["invoices exist"]["ok"]
    assert next(entry for entry in record["files"] if entry["kind"] == "db")["format"] == "directory"
    assert _scratch_left(backup_env.cluster) == []
    # Over ssh the directory comes whole (scp -r), and a member changed at the source fails the drill on arrival, named.
    shims, calls = _ssh_shims(tmp_path)
    backup_env.rewrite(format="directory")
    _drill_config(backup_env, tmp_path, base + "/ping/k", source="ssh", source_ssh="source.example", work_dir=tmp_path / "work")
    dump = next(entry for entry in record["files"] if entry["kind"] == "db")
    member = os.path.join(backup_env.backup_dir, dump["name"], dump["members"][0]["name"])
    original = open(member, "rb").read()
    with open(member, "wb") as handle:
        handle.write(bytes(byte ^ 0xFF for byte in original))
    failed = backup_env.run("drill", env={"PATH": f"{shims}:{os.environ['PATH']}"}, check=1)
    said = failed.stdout + failed.stderr
    assert f"{dump['name']}/{dump['members'][0]['name']}: sha256 does not match the manifest" in said, said
    scp = open(calls).read().splitlines()[-1].split()
    assert scp[:3] == ["scp", "-B", "-r"] and f"source.example:{backup_env.backup_dir}/{dump['name']}" in scp, scp
    assert _scratch_left(backup_env.cluster) == [] and os.listdir(tmp_path / "work") == []
