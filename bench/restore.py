"""The drill's restore step against a raw pg_restore of the same archive.

    .venv/bin/python bench/restore.py [--scale 1400000] [--rounds 3] [--jobs 2]

Two engine backups of the sample database (format = custom: a .dump.zst; format = directory: pg_dump
-Fd, each file zstd-compressed), then, interleaved round by round:
  raw        createdb; zstd -d the custom archive to a file; pg_restore --jobs N --exit-on-error
  engine     pgdrill's restore_set() of the custom set, which the drill's restore step runs through
             pgdrill_restore: createdb with the source's encoding and locale, the same decompression
             and pg_restore, then the fingerprint and per-table row counts compared with the manifest
  engine-dir the same from the directory set: its files decoded in parallel, pg_restore --jobs N from them
Targets (read here, never asserted in tests): engine <= 1.1x raw; a pgdrill set <= 1.0x raw (issue 21).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import bench_database, restore_arguments, write_results  # noqa: E402
from pgdrill.recovery import RestoreOptions, restore_set  # noqa: E402


def main() -> int:
    args = restore_arguments(__doc__)
    with bench_database("bench-restore", "bench", args.scale) as bench:
        config, backup, archive = bench.backup()
        dir_config, dir_backup, _ = bench.backup("directory")
        results = {"raw": [], "engine": [], "engine-dir": []}
        for round_no in range(1, args.rounds + 1):
            started = time.monotonic()
            bench.raw_restore(archive, f"raw_{round_no}", args.jobs)
            results["raw"].append(round(time.monotonic() - started, 3))
            started = time.monotonic()
            outcome = restore_set(config, backup, RestoreOptions(target=f"engine_{round_no}", jobs=args.jobs))
            results["engine"].append(round(time.monotonic() - started, 3))
            print(f"round {round_no}: raw {results['raw'][-1]:.2f} s, engine {results['engine'][-1]:.2f} s {outcome['timings']}", flush=True)
            started = time.monotonic()
            outcome = restore_set(dir_config, dir_backup, RestoreOptions(target=f"engine_dir_{round_no}", jobs=args.jobs))
            results["engine-dir"].append(round(time.monotonic() - started, 3))
            print(f"round {round_no}: engine-dir {results['engine-dir'][-1]:.2f} s {outcome['timings']}", flush=True)
            for name in (f"raw_{round_no}", f"engine_{round_no}", f"engine_dir_{round_no}"):
                bench.cluster.psql(f'DROP DATABASE "{name}"')
        med = {name: statistics.median(values) for name, values in results.items()}
        ratio = round(med["engine"] / med["raw"], 3)
        dir_ratio = round(med["engine-dir"] / med["raw"], 3)
        print(f"\nmedians: raw {med['raw']:.2f} s, engine {med['engine']:.2f} s, engine-dir {med['engine-dir']:.2f} s")
        print(f"engine/raw {ratio} (target <= 1.1); engine-dir/raw {dir_ratio} (target <= 1.0); load average {os.getloadavg()[0]:.2f}")
        write_results(
            "restore",
            {
                "results": results,
                "medians": med,
                "ratio": ratio,
                "directory_ratio": dir_ratio,
                "jobs": args.jobs,
                "postgresql": bench.cluster.major,
                "database_bytes": bench.database_bytes,
                "load_average": os.getloadavg(),
            },
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
