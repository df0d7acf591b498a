"""A whole restore drill (playbooks/run_restore_drill.yml) on the bench database, beside a raw restore.

    .venv/bin/python bench/drill.py [--scale 1400000] [--rounds 3] [--jobs 2]

One engine backup of the sample database (a .dump.zst), then, interleaved round by round:
  raw    createdb; zstd -d the archive to a file; pg_restore --jobs N --exit-on-error
  drill  ansible-playbook playbooks/run_restore_drill.yml on localhost: pick, verify at the source,
         transfer through the controller, verify on arrival, restore into a scratch database
         (pgdrill_restore: createdb with the source's encoding and locale, the same decompression
         and pg_restore, row counts against the manifest), the ez360pm smoke checks, cleanup, record
Reports the drill's wall time, its evidence's per-step timings, and its restore step against raw.
Target (read here, never asserted in tests): the drill's restore step <= 1.1x raw.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from pgdrill.catalog import scan  # noqa: E402
from pgdrill.config import load_configs  # noqa: E402
from pgdrill_lab.cluster import Cluster  # noqa: E402
from pgdrill_lab.sample import create_sample  # noqa: E402


def ez360pm_checks() -> list:
    with open(os.path.join(REPO, "inventories", "ez360pm", "group_vars", "pgdrill_staging.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["pgdrill_drill_checks"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_400_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    cluster = Cluster(name="bench-drill").start()
    work = tempfile.mkdtemp(prefix="pgdrill-bench-drill-", dir="/var/tmp")
    try:
        create_sample(cluster, "ez360pm", args.scale)
        size = int(cluster.psql("SELECT pg_database_size('ez360pm')"))
        print(f"database: {size / 1e9:.2f} GB", flush=True)
        config_path = os.path.join(work, "pgdrill.conf")
        with open(config_path, "w", encoding="utf-8") as handle:
            handle.write(f"[pgdrill]\nbackup_dir = {work}/b\nhost = {cluster.host}\nport = {cluster.port}\nuser = postgres\n"
                         f"passfile = {cluster.passfile}\npg_bin_dir = {cluster.bindir}\nwork_dir = {work}\n\n"
                         "[database ez360pm]\nprefix = ez360pm\n")
        subprocess.run([sys.executable, "-m", "pgdrill.cli", "--config", config_path], check=True)
        (config,) = load_configs(config_path, environ={})
        backup = scan(config.backup_dir, config.prefix)[0]
        archive = backup.path(backup.file_of_kind("db")["name"])
        print(f"archive: {os.path.getsize(archive) / 1e6:.1f} MB", flush=True)
        env = dict(os.environ, **cluster.env("postgres"))
        drill_vars = {
            "pgdrill_drill_source_host": "localhost",
            "pgdrill_drill_database": "ez360pm",
            "pgdrill_drill_source_config": config_path,
            "pgdrill_drill_work_dir": os.path.join(work, "staging"),
            "pgdrill_drill_host": cluster.host,
            "pgdrill_drill_port": cluster.port,
            "pgdrill_drill_login_user": "postgres",
            "pgdrill_drill_passfile": cluster.passfile,
            "pgdrill_drill_jobs": args.jobs,
            "pgdrill_drill_controller_dir": os.path.join(work, "controller"),
            "pgdrill_drill_log": os.path.join(work, "controller", "drill-log.md"),
            "pgdrill_drill_checks": ez360pm_checks(),
        }
        vars_file = os.path.join(work, "drill-vars.json")
        with open(vars_file, "w", encoding="utf-8") as handle:
            json.dump(drill_vars, handle)
        bindir = os.path.dirname(sys.executable)
        playbook = [os.path.join(bindir, "ansible-playbook"), "-i", os.path.join(REPO, "inventories", "local", "hosts.yml"),
                    "-e", f"@{vars_file}", os.path.join(REPO, "playbooks", "run_restore_drill.yml")]
        play_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), PATH=bindir + os.pathsep + os.environ["PATH"])
        results = {"raw": [], "drill_wall": [], "drill_restore_step": [], "drill_steps": []}
        for round_no in range(1, args.rounds + 1):
            target = f"raw_{round_no}"
            started = time.monotonic()
            subprocess.run([cluster.bin("createdb"), "--template=template0", target], env=env, check=True)
            plain = os.path.join(work, "raw.dump")
            subprocess.run(["zstd", "-d", "-q", "-f", "-o", plain, archive], check=True)
            subprocess.run([cluster.bin("pg_restore"), f"--jobs={args.jobs}", "--exit-on-error", f"--dbname={target}", plain], env=env, check=True)
            results["raw"].append(round(time.monotonic() - started, 3))
            os.unlink(plain)
            cluster.psql(f'DROP DATABASE "{target}"')

            started = time.monotonic()
            done = subprocess.run(playbook, env=play_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            wall = round(time.monotonic() - started, 3)
            if done.returncode != 0:
                print(done.stdout[-6000:])
                raise SystemExit(f"the drill failed in round {round_no}")
            evidence = sorted(glob.glob(os.path.join(work, "controller", "evidence", "*", "*.json")), key=os.path.getmtime)[-1]
            with open(evidence, encoding="utf-8") as handle:
                record = json.load(handle)
            assert record["outcome"] == "passed", record
            results["drill_wall"].append(wall)
            results["drill_restore_step"].append(record["timings"]["restore"])
            results["drill_steps"].append(record["timings"])
            print(f"round {round_no}: raw {results['raw'][-1]:.2f} s; drill {wall:.2f} s, restore step {record['timings']['restore']:.2f} s;"
                  f" steps {record['timings']}; inside the restore {record['restore_timings']}", flush=True)
        med = {name: statistics.median(results[name]) for name in ("raw", "drill_wall", "drill_restore_step")}
        steps = {step: round(statistics.median(r[step] for r in results["drill_steps"]), 2) for step in results["drill_steps"][0]}
        ratio = round(med["drill_restore_step"] / med["raw"], 3)
        print(f"\nmedians: raw restore {med['raw']:.2f} s; drill {med['drill_wall']:.2f} s wall, restore step {med['drill_restore_step']:.2f} s")
        print(f"drill steps (medians, s): {steps}")
        print(f"drill restore step / raw: {ratio} (target <= 1.1)")
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        path = os.path.join(HERE, "results", f"drill-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({"database_bytes": size, "archive_bytes": os.path.getsize(archive), "jobs": args.jobs, "postgresql": cluster.major,
                       "results": results, "medians": med, "step_medians": steps, "ratio": ratio}, handle, indent=2)
        print(f"written: {path}")
        return 0
    finally:
        subprocess.run(["rm", "-rf", work])
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
