"""What pgdrill's benchmarks share: a throwaway cluster with the sample database, one engine backup
of it, and the results file."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

from pgdrill.catalog import BackupSet, scan  # noqa: E402
from pgdrill.config import DatabaseConfig, load_configs  # noqa: E402
from pgdrill_lab.cluster import Cluster  # noqa: E402
from pgdrill_lab.sample import create_sample  # noqa: E402


class Bench:
    """A running cluster with the sample database ``dbname``, a work directory, and after
    :meth:`backup` the engine's config, its newest set and that set's archive."""

    def __init__(self, cluster: Cluster, work: str, dbname: str) -> None:
        self.cluster, self.work, self.dbname = cluster, work, dbname
        self.database_bytes = int(cluster.psql(f"SELECT pg_database_size('{dbname}')"))
        self.config_path = self.write_config("custom")

    def write_config(self, dump_format: str) -> str:
        """The engine's config for a series of ``dump_format`` (custom or directory) sets."""
        path = os.path.join(self.work, "pgdrill.conf" if dump_format == "custom" else f"pgdrill-{dump_format}.conf")
        backup_dir = os.path.join(self.work, "b" if dump_format == "custom" else f"b-{dump_format}")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(
                f"[pgdrill]\nbackup_dir = {backup_dir}\nhost = {self.cluster.host}\nport = {self.cluster.port}\nuser = postgres\n"
                f"passfile = {self.cluster.passfile}\npg_bin_dir = {self.cluster.bindir}\nwork_dir = {self.work}\nformat = {dump_format}\n\n"
                f"[database {self.dbname}]\nprefix = {self.dbname}\n"
            )
        return path

    def backup(self, dump_format: str = "custom") -> "tuple[DatabaseConfig, BackupSet, str]":
        config_path = self.write_config(dump_format)
        subprocess.run([sys.executable, "-m", "pgdrill.cli", "--config", config_path], check=True)
        (config,) = load_configs(config_path, environ={})
        backup = scan(config.backup_dir, config.prefix)[0]
        return config, backup, backup.path(backup.file_of_kind("db")["name"])  # type: ignore[index]

    def raw_restore(self, archive: str, target: str, jobs: int) -> None:
        """The plain tools: createdb; zstd -d the archive to a file; pg_restore --jobs N --exit-on-error."""
        env = dict(os.environ, **self.cluster.env("postgres"))
        subprocess.run([self.cluster.bin("createdb"), "--template=template0", target], env=env, check=True)
        plain = os.path.join(self.work, "raw.dump")
        subprocess.run(["zstd", "-d", "-q", "-f", "-o", plain, archive], check=True)
        try:
            subprocess.run([self.cluster.bin("pg_restore"), f"--jobs={jobs}", "--exit-on-error", f"--dbname={target}", plain], env=env, check=True)
        finally:
            os.unlink(plain)


@contextmanager
def bench_database(name: str, dbname: str, scale: int) -> Iterator[Bench]:
    """A throwaway cluster with the EZ360PM-shaped sample database of ``scale`` invoices."""
    cluster = Cluster(name=name).start()
    work = tempfile.mkdtemp(prefix=f"pgdrill-{name}-", dir="/var/tmp")
    try:
        print(f"PostgreSQL {cluster.major} ({cluster.bindir}); generating {scale} invoices ...", flush=True)
        create_sample(cluster, dbname, scale)
        bench = Bench(cluster, work, dbname)
        print(f"database: {bench.database_bytes / 1e9:.2f} GB", flush=True)
        yield bench
    finally:
        subprocess.run(["rm", "-rf", work])
        cluster.destroy()


def restore_arguments(doc: str, transfers: bool = False) -> argparse.Namespace:
    """The options of the restore benchmarks: database scale, rounds, parallel jobs."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_400_000, help="invoices in the sample database (1.4M: about 1.2 GB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="pg_restore --jobs, for raw and pgdrill alike")
    if transfers:
        parser.add_argument("--transfers", action="store_true", help="the controller transfer of both formats, readable or not (see above)")
        parser.add_argument("--before", help="with --transfers: another checkout whose drills run interleaved with this one's")
    return parser.parse_args()


def write_results(kind: str, report: dict) -> str:
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", f"{kind}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    print(f"written: {path}")
    return path
