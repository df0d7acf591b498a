"""The drill's restore step against a raw pg_restore of the same archive.

    .venv/bin/python bench/restore.py [--scale 1400000] [--rounds 3] [--jobs 2]

One engine backup of the sample database (zstd pipe: a .dump.zst), then, interleaved round by round:
  raw     createdb; zstd -d the archive to a file; pg_restore --jobs N --exit-on-error
  engine  pgdrill's restore_set(), which the drill's restore step runs through pgdrill_restore:
          createdb with the source's encoding and locale, the same decompression and pg_restore,
          then per-table row counts compared with the manifest
Target (read here, never asserted in tests): engine <= 1.1x raw.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from pgdrill.catalog import scan  # noqa: E402
from pgdrill.config import load_configs  # noqa: E402
from pgdrill.recovery import restore_set  # noqa: E402
from pgdrill_lab.cluster import Cluster  # noqa: E402
from pgdrill_lab.sample import create_sample  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    cluster = Cluster(name="bench-restore").start()
    work = tempfile.mkdtemp(prefix="pgdrill-bench-restore-", dir="/var/tmp")
    try:
        create_sample(cluster, "bench", args.scale)
        size = int(cluster.psql("SELECT pg_database_size('bench')"))
        print(f"database: {size / 1e9:.2f} GB", flush=True)
        config_path = os.path.join(work, "pgdrill.conf")
        with open(config_path, "w", encoding="utf-8") as handle:
            handle.write(f"[pgdrill]\nbackup_dir = {work}/b\nhost = {cluster.host}\nport = {cluster.port}\nuser = postgres\n"
                         f"passfile = {cluster.passfile}\ndbname = bench\npg_bin_dir = {cluster.bindir}\nwork_dir = {work}\n")
        subprocess.run([sys.executable, "-m", "pgdrill.cli", "--config", config_path], check=True)
        (config,) = load_configs(config_path, environ={})
        backup = scan(config.backup_dir, config.prefix)[0]
        archive = backup.path(backup.file_of_kind("db")["name"])
        env = dict(os.environ, **cluster.env("postgres"))
        results = {"raw": [], "engine": []}
        for round_no in range(1, args.rounds + 1):
            target = f"raw_{round_no}"
            started = time.monotonic()
            subprocess.run([cluster.bin("createdb"), "--template=template0", target], env=env, check=True)
            plain = os.path.join(work, "raw.dump")
            subprocess.run(["zstd", "-d", "-q", "-f", "-o", plain, archive], check=True)
            subprocess.run([cluster.bin("pg_restore"), f"--jobs={args.jobs}", "--exit-on-error", f"--dbname={target}", plain], env=env, check=True)
            results["raw"].append(round(time.monotonic() - started, 3))
            os.unlink(plain)
            started = time.monotonic()
            outcome = restore_set(config, backup, target=f"engine_{round_no}", jobs=args.jobs, no_owner=False, check_row_counts=True)
            results["engine"].append(round(time.monotonic() - started, 3))
            print(f"round {round_no}: raw {results['raw'][-1]:.2f} s, engine {results['engine'][-1]:.2f} s {outcome['timings']}", flush=True)
            for name in (target, f"engine_{round_no}"):
                cluster.psql(f'DROP DATABASE "{name}"')
        med = {name: statistics.median(values) for name, values in results.items()}
        ratio = round(med["engine"] / med["raw"], 3)
        print(f"\nmedians: raw {med['raw']:.2f} s, engine {med['engine']:.2f} s; engine/raw {ratio} (target <= 1.1)")
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", f"restore-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json"), "w", encoding="utf-8") as handle:
            json.dump({"results": results, "medians": med, "ratio": ratio, "jobs": args.jobs, "postgresql": cluster.major}, handle, indent=2)
        return 0
    finally:
        subprocess.run(["rm", "-rf", work])
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
