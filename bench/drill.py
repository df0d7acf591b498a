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

import glob
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO, bench_database, restore_arguments, write_results  # noqa: E402
from pgdrill_lab.sample import smoke_checks  # noqa: E402


def main() -> int:
    args = restore_arguments(__doc__)
    with bench_database("bench-drill", "ez360pm", args.scale) as bench:
        cluster = bench.cluster
        _, _, archive = bench.backup()
        print(f"archive: {os.path.getsize(archive) / 1e6:.1f} MB", flush=True)
        drill_vars = {
            "pgdrill_drill_source_host": "localhost",
            "pgdrill_drill_database": "ez360pm",
            "pgdrill_drill_source_config": bench.config_path,
            "pgdrill_drill_work_dir": os.path.join(bench.work, "staging"),
            "pgdrill_drill_host": cluster.host,
            "pgdrill_drill_port": cluster.port,
            "pgdrill_drill_login_user": "postgres",
            "pgdrill_drill_passfile": cluster.passfile,
            "pgdrill_drill_jobs": args.jobs,
            "pgdrill_drill_controller_dir": os.path.join(bench.work, "controller"),
            "pgdrill_drill_log": os.path.join(bench.work, "controller", "drill-log.md"),
            "pgdrill_drill_checks": smoke_checks(),
        }
        vars_file = os.path.join(bench.work, "drill-vars.json")
        with open(vars_file, "w", encoding="utf-8") as handle:
            json.dump(drill_vars, handle)
        bindir = os.path.dirname(sys.executable)
        playbook = [
            os.path.join(bindir, "ansible-playbook"),
            "-i",
            os.path.join(REPO, "inventories", "local", "hosts.yml"),
            "-e",
            f"@{vars_file}",
            os.path.join(REPO, "playbooks", "run_restore_drill.yml"),
        ]
        play_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), PATH=bindir + os.pathsep + os.environ["PATH"])
        results = {"raw": [], "drill_wall": [], "drill_restore_step": [], "drill_steps": []}
        for round_no in range(1, args.rounds + 1):
            started = time.monotonic()
            bench.raw_restore(archive, f"raw_{round_no}", args.jobs)
            results["raw"].append(round(time.monotonic() - started, 3))
            cluster.psql(f'DROP DATABASE "raw_{round_no}"')

            started = time.monotonic()
            done = subprocess.run(playbook, env=play_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            wall = round(time.monotonic() - started, 3)
            if done.returncode != 0:
                print(done.stdout[-6000:])
                raise SystemExit(f"the drill failed in round {round_no}")
            evidence = sorted(glob.glob(os.path.join(bench.work, "controller", "evidence", "*", "*.json")), key=os.path.getmtime)[-1]
            with open(evidence, encoding="utf-8") as handle:
                record = json.load(handle)
            assert record["outcome"] == "passed", record
            results["drill_wall"].append(wall)
            results["drill_restore_step"].append(record["timings"]["restore"])
            results["drill_steps"].append(record["timings"])
            print(
                f"round {round_no}: raw {results['raw'][-1]:.2f} s; drill {wall:.2f} s, restore step {record['timings']['restore']:.2f} s;"
                f" steps {record['timings']}; inside the restore {record['restore_timings']}",
                flush=True,
            )
        med = {name: statistics.median(results[name]) for name in ("raw", "drill_wall", "drill_restore_step")}
        steps = {step: round(statistics.median(r[step] for r in results["drill_steps"]), 2) for step in results["drill_steps"][0]}
        ratio = round(med["drill_restore_step"] / med["raw"], 3)
        print(f"\nmedians: raw restore {med['raw']:.2f} s; drill {med['drill_wall']:.2f} s wall, restore step {med['drill_restore_step']:.2f} s")
        print(f"drill steps (medians, s): {steps}")
        print(f"drill restore step / raw: {ratio} (target <= 1.1)")
        write_results(
            "drill",
            {
                "database_bytes": bench.database_bytes,
                "archive_bytes": os.path.getsize(archive),
                "jobs": args.jobs,
                "postgresql": cluster.major,
                "results": results,
                "medians": med,
                "step_medians": steps,
                "ratio": ratio,
            },
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
