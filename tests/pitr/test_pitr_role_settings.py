"""The pgdrill_pitr role's decision about WAL archiving, asked of a real PostgreSQL 15 server: one
query (roles/pgdrill_pitr/vars/main.yml) says which settings the configuration files do not hold
yet (ALTER SYSTEM needed) and which the running server lacks (a restart needed). The role acts on
nothing else, so a wrong answer here is a role that restarts for nothing, never restarts, or says
archiving works when it does not."""

import json
import os
import subprocess

import pytest
import yaml
from pgdrill_lab.cluster import Cluster

from conftest import REPO

COMMAND = "/bin/true %p"  # stands in for pgbackrest archive-push: the server runs it for real


def _settings_sql() -> str:
    with open(os.path.join(REPO, "roles", "pgdrill_pitr", "vars", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["__pgdrill_pitr_settings_sql"]


def _needs(cluster, wanted=COMMAND):
    env = dict(os.environ, **cluster.env())
    done = subprocess.run(
        [cluster.bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-v", f"archive_command={wanted}"],
        input=_settings_sql(),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.fixture
def cluster():
    with Cluster(name="pitr-role") as pg:
        yield pg


def test_archiving_settings_say_what_to_set_and_what_needs_a_restart(cluster):
    # A fresh server: wal_level is replica already; the rest is to be set, two of them need a restart.
    assert _needs(cluster) == {
        "to_set": ["archive_command", "archive_mode", "track_commit_timestamp"],
        "to_restart": ["archive_mode", "track_commit_timestamp"],
    }
    for statement in (
        "ALTER SYSTEM SET archive_mode = 'on'",
        "ALTER SYSTEM SET track_commit_timestamp = 'on'",
        f"ALTER SYSTEM SET archive_command = '{COMMAND}'",
    ):
        cluster.psql(statement)
    cluster.psql("SELECT pg_reload_conf()")
    # Written and reloaded: nothing left to set, but the server still runs without archiving.
    assert _needs(cluster) == {"to_set": [], "to_restart": ["archive_mode", "track_commit_timestamp"]}
    cluster.restart()
    assert _needs(cluster) == {"to_set": [], "to_restart": []}
    # Another command is a change (a reload, no restart).
    assert _needs(cluster, "pgbackrest --stanza=other archive-push %p") == {"to_set": ["archive_command"], "to_restart": []}
    # Stronger settings are kept (and the running ones suffice: no restart for them), and a boolean
    # spelled another way is the same value.
    for statement in ("ALTER SYSTEM SET wal_level = 'logical'", "ALTER SYSTEM SET archive_mode = 'always'", "ALTER SYSTEM SET track_commit_timestamp = 'true'"):
        cluster.psql(statement)
    assert _needs(cluster) == {"to_set": [], "to_restart": []}
    cluster.restart()
    assert _needs(cluster) == {"to_set": [], "to_restart": []}
    # Turned off behind the role's back: to be set again, and a restart.
    cluster.psql("ALTER SYSTEM SET archive_mode = 'off'")
    assert _needs(cluster) == {"to_set": ["archive_mode"], "to_restart": []}
    cluster.restart()
    assert _needs(cluster) == {"to_set": ["archive_mode"], "to_restart": ["archive_mode"]}
