"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pwd
import subprocess
import sys
from typing import Dict, Optional

from pgdrill_lab.cluster import Cluster, system_bindirs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DJANGO = os.path.join(REPO, "tests", "django_app")


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


class Exit(Exception):
    def __init__(self, kwargs):
        super().__init__(kwargs)
        self.result = kwargs


class Fail(Exit):
    pass


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "library", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_set(directory, prefix, stamp, payload=b"PGDMP", started="2026-11-20T02:15:00.000Z", **manifest_extra):
    """A complete set on disk, written as the engine writes them."""
    import hashlib

    os.makedirs(directory, mode=0o700, exist_ok=True)
    dump = f"{prefix}_db_{stamp}_utc.dump"
    with open(os.path.join(directory, dump), "wb") as handle:
        handle.write(payload)
    document = {
        "format": "pgdrill-manifest",
        "format_version": 1,
        "set": f"{prefix}_{stamp}_utc",
        "prefix": prefix,
        "stamp": stamp,
        "started_at": started,
        "finished_at": started,
        "duration_seconds": 0,
        "files": [{"name": dump, "kind": "db", "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}],
        "database": {"name": prefix},
        "client": {},
        "compression": {},
        "row_counts": None,
        "options": {},
        **manifest_extra,
    }
    with open(os.path.join(directory, f"{prefix}_manifest_{stamp}_utc.json"), "w") as handle:
        json.dump(document, handle)
    return dump


class Run:
    def __init__(self, runner, private_dir):
        self.runner = runner
        self.status = runner.status
        self.rc = runner.rc
        self.events = list(runner.events)
        self.stdout = runner.stdout.read()
        self.private_dir = private_dir

    def task(self, name):
        """The result event of the task named ``name`` (ok, changed, failed or skipped)."""
        for event in self.events:
            data = event.get("event_data", {})
            if data.get("task") == name and event["event"] in ("runner_on_ok", "runner_on_failed", "runner_on_skipped"):
                return {"event": event["event"], "changed": data.get("res", {}).get("changed"), "res": data.get("res", {})}
        raise AssertionError(
            f"no result for task {name!r}; tasks seen: {sorted({e.get('event_data', {}).get('task') for e in self.events if e.get('event_data', {}).get('task')})}"
        )

    def everything(self):
        """All the run produced: output, events, and artifact files (not runner's input in env/)."""
        parts = [self.stdout, json.dumps(self.events)]
        for root, _, files in os.walk(os.path.join(self.private_dir, "artifacts")):
            for name in files:
                with open(os.path.join(root, name), "rb") as handle:
                    parts.append(handle.read().decode("utf-8", "replace"))
        return "\n".join(parts)


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def tree_hash(root) -> str:
    """Names, modes, link targets and contents of every entry under ``root`` (``root`` itself: its mode)."""
    import stat

    digest = hashlib.sha256(f"{stat.S_IMODE(os.lstat(root).st_mode):o}\0".encode())
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            digest.update(f"{os.path.relpath(path, root)}\0{stat.S_IMODE(info.st_mode):o}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def database_fingerprint(cluster, dbname):
    """The source database's catalog (schema-only dump) and data (every row of every table)."""
    env = dict(os.environ, **cluster.env(dbname))
    schema = subprocess.run([cluster.bin("pg_dump"), "--schema-only"], env=env, capture_output=True, check=True).stdout
    # pg_dump 15.14+ brackets plain dumps with \restrict and \unrestrict and a random key each run.
    schema = b"\n".join(line for line in schema.splitlines() if not line.startswith((b"\\restrict", b"\\unrestrict")))
    tables = cluster.psql("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", dbname).split()
    digest = hashlib.sha256(schema)
    for table in tables:
        digest.update(cluster.psql(f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM {table} t", dbname).encode())
    return digest.hexdigest()


def playbook_run(tmp_path, playbook, extravars, check=False, source_user=None):
    """Run one of pgdrill's playbooks against two local hosts, 'source' (in pgdrill_databases) and
    'staging' (in pgdrill_staging), as root and without become.

    With ``source_user``, the source is reached as that OS user, as over SSH: its tasks without become
    run as that user (the system python), and those under become run as root (through an ``su`` that
    needs no password); staging and the controller run as root."""
    import ansible_runner

    private = tmp_path / f"runner-{len(os.listdir(tmp_path))}"
    private.mkdir()
    python = sys.executable
    source, become = f"source ansible_connection=local ansible_python_interpreter={python}", ""
    if source_user:
        account = pwd.getpwnam(source_user)
        interpreter, su = private / "python-as-connection-user", private / "su-as-root"
        interpreter.write_text(
            f'#!/bin/sh\nif [ -n "$PGDRILL_TEST_BECOME" ]; then exec {python} "$@"; fi\n'
            f'exec setpriv --reuid={account.pw_uid} --regid={account.pw_gid} --clear-groups /usr/bin/python3 "$@"\n'
        )
        su.write_text('#!/bin/sh\n# su USER -c COMMAND, from root\nwhile [ "$1" != "-c" ]; do shift; done\nPGDRILL_TEST_BECOME=1 exec /bin/sh -c "$2"\n')
        for script in (interpreter, su):
            script.chmod(0o700)
        source = (
            f"source ansible_connection=local ansible_python_interpreter={interpreter}\nlocalhost ansible_connection=local ansible_python_interpreter={python}"
        )
        become = f"[all:vars]\nansible_become_exe={su}\n"
    staging = f"staging ansible_connection=local ansible_python_interpreter={python}"
    inventory = f"{source}\n[pgdrill_staging]\n{staging}\n[pgdrill_databases]\nsource\n" + become
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook=os.path.join(REPO, "playbooks", playbook),
        inventory=inventory,
        extravars=extravars,
        quiet=True,
        envvars={
            "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_BECOME_METHOD": "su",
            # A local connection's user is root: become to root is skipped unless asked for.
            **({"ANSIBLE_BECOME_ALLOW_SAME_USER": "True"} if source_user else {}),
        },
        cmdline=" ".join(([] if source_user else ["-e ansible_become=false"]) + (["--check"] if check else [])) or None,
    )
    return Run(runner, str(private))
