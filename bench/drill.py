"""A whole restore drill (playbooks/run_restore_drill.yml) on the bench database, beside a raw restore.

    .venv/bin/python bench/drill.py [--scale 1400000] [--rounds 3] [--jobs 2]
    .venv/bin/python bench/drill.py --scale 200000 --transfers [--before CHECKOUT]

One engine backup of the sample database (a .dump.zst), then, interleaved round by round:
  raw    createdb; zstd -d the archive to a file; pg_restore --jobs N --exit-on-error
  drill  ansible-playbook playbooks/run_restore_drill.yml on localhost: pick, verify at the source,
         transfer through the controller, verify on arrival, restore into a scratch database
         (pgdrill_restore: createdb with the source's encoding and locale, the same decompression
         and pg_restore, row counts against the manifest), the ez360pm smoke checks, cleanup, record
Reports the drill's wall time, its evidence's per-step timings, and its restore step against raw.
Target (read here, never asserted in tests): the drill's restore step <= 1.1x raw.

--transfers: the controller transfer instead, every round for a custom-format and a directory-format
set, each as the source's connection user can read it and as it cannot (become needed: the drill's
own check is answered "not readable"), and a readable custom-format set packed all the same, with the transfer step's time and the peak memory of the
ansible-playbook process tree (its largest process). With --before, the same drills also run from
another checkout (the commit before a change, e.g. `git worktree add /tmp/before HEAD~1`), interleaved.
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
    args = restore_arguments(__doc__, transfers=True)
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
        if args.transfers:
            return transfers(bench, drill_vars, args)
        playbook, play_env = _playbook(REPO, _vars_file(bench, "drill", drill_vars))
        results = {"raw": [], "drill_wall": [], "drill_restore_step": [], "drill_steps": []}
        for round_no in range(1, args.rounds + 1):
            started = time.monotonic()
            bench.raw_restore(archive, f"raw_{round_no}", args.jobs)
            results["raw"].append(round(time.monotonic() - started, 3))
            cluster.psql(f'DROP DATABASE "raw_{round_no}"')

            wall, record, _ = _drill(bench, playbook, play_env, round_no)
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


def transfers(bench, drill_vars: dict, args) -> int:
    """The controller transfer of both formats, readable by the connection user or not, from this checkout and --before."""
    directory_config = bench.write_config("directory")
    bench.backup("directory")
    checkouts = [("after", REPO)] + ([("before", os.path.abspath(args.before))] if args.before else [])
    variants = []
    for dump_format, config in (("custom", bench.config_path), ("directory", directory_config)):
        for become_needed in (False, True):
            extra = dict(drill_vars, pgdrill_drill_source_config=config, pgdrill_drill_transfer="controller", pgdrill_drill_checks=[])
            if become_needed:
                extra["__pgdrill_drill_plain_read"] = {"stat": {"readable": False}}
            for label, checkout in checkouts:
                name = f"{label} {dump_format} {'become needed' if become_needed else 'readable'}"
                variants.append((name, _playbook(checkout, _vars_file(bench, name.replace(" ", "-"), extra))))
    # Whether a custom-format set the connection user can read is better fetched as it is (no extra
    # copy on the source) or packed all the same.
    packed = dict(drill_vars, pgdrill_drill_transfer="controller", pgdrill_drill_checks=[], __pgdrill_drill_pack=True)
    variants.insert(1, ("after custom readable, packed all the same", _playbook(REPO, _vars_file(bench, "packed-all-the-same", packed))))
    results: dict = {name: {"transfer": [], "wall": [], "peak_rss_mb": []} for name, _ in variants}
    for round_no in range(1, args.rounds + 1):
        for name, (playbook, play_env) in variants:
            wall, record, peak = _drill(bench, playbook, play_env, round_no)
            for key, value in (("transfer", record["timings"]["transfer"]), ("wall", wall), ("peak_rss_mb", peak)):
                results[name][key].append(value)
            print(f"round {round_no}: {name}: transfer {record['timings']['transfer']:.2f} s, drill {wall:.2f} s, peak RSS {peak:.0f} MB", flush=True)
    medians = {name: {key: round(statistics.median(values), 2) for key, values in result.items()} for name, result in results.items()}
    print("\n| drill | transfer step (median) | drill wall (median) | peak RSS of the playbook's processes |")
    for name, med in medians.items():
        print(f"| {name} | {med['transfer']:.2f} s | {med['wall']:.2f} s | {med['peak_rss_mb']:.0f} MB |")
    print(f"load average at the end: {os.getloadavg()}")
    write_results("drill-transfers", {"database_bytes": bench.database_bytes, "results": results, "medians": medians})
    return 0


def _vars_file(bench, name: str, drill_vars: dict) -> str:
    path = os.path.join(bench.work, f"{name}-vars.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(drill_vars, handle)
    return path


def _playbook(checkout: str, vars_file: str) -> "tuple[list, dict]":
    bindir = os.path.dirname(sys.executable)
    playbook = [
        os.path.join(bindir, "ansible-playbook"),
        "-i",
        os.path.join(checkout, "inventories", "local", "hosts.yml"),
        "-e",
        f"@{vars_file}",
        os.path.join(checkout, "playbooks", "run_restore_drill.yml"),
    ]
    return playbook, dict(os.environ, ANSIBLE_CONFIG=os.path.join(checkout, "ansible.cfg"), PATH=bindir + os.pathsep + os.environ["PATH"])


def _drill(bench, playbook: list, play_env: dict, round_no: int) -> "tuple[float, dict, float]":
    """One drill: its wall time, its evidence and the largest RSS of its processes (MB)."""
    started = time.monotonic()
    with open(os.path.join(bench.work, "drill-output.txt"), "w+", encoding="utf-8") as output:
        process = subprocess.Popen(playbook, env=play_env, cwd=os.path.dirname(os.path.dirname(playbook[-1])), stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = round(time.monotonic() - started, 3)
        if process.returncode != 0:
            output.seek(0)
            print(output.read()[-6000:])
            raise SystemExit(f"the drill failed in round {round_no}")
    evidence = sorted(glob.glob(os.path.join(bench.work, "controller", "evidence", "*", "*.json")), key=os.path.getmtime)[-1]
    with open(evidence, encoding="utf-8") as handle:
        record = json.load(handle)
    assert record["outcome"] == "passed", record
    return wall, record, usage.ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
