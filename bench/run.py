"""pgdrill benchmarks: the engine's backup against the plain tools, side by side.

    ./run bench                 # 1.4M invoices (about 1.2 GB), 3 rounds
    ./run bench --scale 200000 --rounds 5

Variants, run interleaved round by round on the same throwaway cluster and database:
  engine   pgdrill-backup with its defaults (zstd, globals, row counts, checksums, fsync, manifest)
  engine-dir  the same with format = directory (pg_dump -Fd -j2 -Z0, then zstd -3 per file)
  seed     pg_dump -Fc -f FILE                  (the seed's command: gzip inside pg_dump)
  raw      pg_dump -Fc -Z0 | zstd -T0 -3 > FILE (the plain pipeline)
  wrapped  stdbuf -o1M pg_dump -Fc -Z0 | zstd -T0 -3 > FILE (exactly what the engine runs, without
           the engine: its overhead target is measured against this one)
  floor    pg_dump -Fc -Z0 -f /dev/null          (no compression, nothing written: what any backup
           of this database costs the server and pg_dump)

Prints medians and ratios and writes bench/results/backup-<time>.json. Targets (checked here, never
in the test suite): engine >= 3.5x faster than seed at no larger size; engine <= 1.05x wrapped; the
engine process's peak RSS <= 64 MB; issue 21: engine (or engine-dir) <= 1.15x the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import write_results  # noqa: E402
from pgdrill_lab.cluster import Cluster  # noqa: E402
from pgdrill_lab.sample import create_sample  # noqa: E402

TARGETS = {"speedup_vs_seed": 3.5, "overhead_vs_wrapped": 1.05, "engine_peak_rss_mb": 64}


def peak_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(argv, env, shell=False):
    """Wall time of a command, and the peak RSS of its top process (polled; VmHWM only grows)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, shell=shell, executable="/bin/bash" if shell else None, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_rss_kb(proc.pid))
        time.sleep(0.02)
    seconds = time.monotonic() - started
    err = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {argv}\n{err}")
    return seconds, peak


def directory_size(path):
    """Bytes of the files under ``path``, a directory set's directory included (hidden names left out)."""
    total = 0
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if not name.startswith("."):
            total += directory_size(full) if os.path.isdir(full) else os.path.getsize(full)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_400_000, help="invoices in the sample database")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=None, help="directory for the dumps (default: a temporary one under /var/tmp)")
    args = parser.parse_args()

    cluster = Cluster(name="bench").start()
    work = tempfile.mkdtemp(prefix="pgdrill-bench-", dir=args.work or "/var/tmp")
    try:
        print(f"PostgreSQL {cluster.major} ({cluster.bindir}); generating {args.scale} invoices ...", flush=True)
        started = time.monotonic()
        create_sample(cluster, "bench", args.scale)
        db_bytes = int(cluster.psql("SELECT pg_database_size('bench')"))
        print(f"database: {db_bytes / 1e9:.2f} GB in {time.monotonic() - started:.0f} s", flush=True)
        env = dict(os.environ, **cluster.env("bench"))
        pg_dump = cluster.bin("pg_dump")
        config = os.path.join(work, "pgdrill.conf")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(
                f"[pgdrill]\nbackup_dir = {work}/engine\nhost = {cluster.host}\nport = {cluster.port}\nuser = postgres\n"
                f"passfile = {cluster.passfile}\ndbname = bench\npg_bin_dir = {cluster.bindir}\nprune_after_backup = no\n"
            )
        engine_cmd = [sys.executable, "-m", "pgdrill.cli", "--config", config]
        directory_config = os.path.join(work, "pgdrill-directory.conf")
        with open(config, encoding="utf-8") as source, open(directory_config, "w", encoding="utf-8") as handle:
            handle.write(source.read().replace(f"backup_dir = {work}/engine\n", f"backup_dir = {work}/engine-dir\nformat = directory\n"))
        variants = {
            "engine": lambda out: (engine_cmd, False),
            "engine-dir": lambda out: ([sys.executable, "-m", "pgdrill.cli", "--config", directory_config], False),
            "seed": lambda out: ([pg_dump, "-Fc", "-f", f"{out}/seed.dump"], False),
            "raw": lambda out: (f"set -o pipefail; {pg_dump} -Fc -Z0 | zstd -q -T0 -3 > {out}/raw.dump.zst", True),
            "wrapped": lambda out: (f"set -o pipefail; stdbuf -o1M {pg_dump} -Fc -Z0 | zstd -q -T0 -3 > {out}/wrapped.dump.zst", True),
            "floor": lambda out: ([pg_dump, "-Fc", "-Z0", "--no-sync", "-f", "/dev/null"], False),
        }
        results = {name: {"seconds": [], "bytes": [], "peak_rss_kb": []} for name in variants}
        subprocess.run([pg_dump, "-Fc", "-Z0", "--no-sync", "-f", "/dev/null"], env=env, check=True)  # warm the cache once
        for round_no in range(1, args.rounds + 1):
            for name, make in variants.items():
                out = os.path.join(work, name)
                os.makedirs(out, exist_ok=True)
                argv, shell = make(out)
                seconds, peak = timed(argv, env, shell)
                results[name]["seconds"].append(round(seconds, 3))
                results[name]["bytes"].append(directory_size(out))
                results[name]["peak_rss_kb"].append(peak)
                print(f"round {round_no}: {name:<6} {seconds:6.2f} s  {directory_size(out) / 1e6:8.1f} MB  peak RSS {peak / 1024:5.1f} MB", flush=True)
                subprocess.run(["rm", "-rf", out])
        med = {name: statistics.median(r["seconds"]) for name, r in results.items()}
        size = {name: statistics.median(r["bytes"]) for name, r in results.items()}
        summary = {
            "speedup_vs_seed": round(med["seed"] / med["engine"], 2),
            "overhead_vs_wrapped": round(med["engine"] / med["wrapped"], 3),
            "engine_vs_plain_raw": round(med["engine"] / med["raw"], 3),
            "size_vs_seed": round(size["engine"] / size["seed"], 3),
            "engine_peak_rss_mb": round(max(results["engine"]["peak_rss_kb"]) / 1024, 1),
            "directory_speedup_vs_seed": round(med["seed"] / med["engine-dir"], 2),
            "directory_size_vs_seed": round(size["engine-dir"] / size["seed"], 3),
            "directory_peak_rss_mb": round(max(results["engine-dir"]["peak_rss_kb"]) / 1024, 1),
            "engine_vs_floor": round(med["engine"] / med["floor"], 3),
            "directory_vs_floor": round(med["engine-dir"] / med["floor"], 3),
        }
        report = {
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "postgresql": cluster.major,
            "database_bytes": db_bytes,
            "rounds": args.rounds,
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "results": results,
            "medians_seconds": med,
            "median_bytes": size,
            "summary": summary,
            "targets": TARGETS,
        }
        print("\nmedians: " + ", ".join(f"{n} {med[n]:.2f} s / {size[n] / 1e6:.1f} MB" for n in variants))
        print(
            f"engine vs seed pg_dump -Fc: {summary['speedup_vs_seed']}x faster (target >= {TARGETS['speedup_vs_seed']}), size ratio {summary['size_vs_seed']} (target <= 1)"
        )
        print(
            f"engine vs wrapped pipeline: {summary['overhead_vs_wrapped']}x (target <= {TARGETS['overhead_vs_wrapped']}); vs plain raw pipeline {summary['engine_vs_plain_raw']}x"
        )
        print(f"engine peak RSS:            {summary['engine_peak_rss_mb']} MB (target <= {TARGETS['engine_peak_rss_mb']})")
        print(
            f"engine-dir vs seed:         {summary['directory_speedup_vs_seed']}x faster (issue 21 target >= 4), size ratio {summary['directory_size_vs_seed']} "
            f"(target <= 1); peak RSS {summary['directory_peak_rss_mb']} MB; load average {os.getloadavg()[0]:.2f}"
        )
        print(f"against the -Z0 floor:      engine {summary['engine_vs_floor']}x, engine-dir {summary['directory_vs_floor']}x (issue 21 target <= 1.15)")
        write_results("backup", report)
        return 0
    finally:
        subprocess.run(["rm", "-rf", work])
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
