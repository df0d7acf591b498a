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
        results = {"raw": [], "engine": []}
        for round_no in range(1, args.rounds + 1):
            started = time.monotonic()
            bench.raw_restore(archive, f"raw_{round_no}", args.jobs)
            results["raw"].append(round(time.monotonic() - started, 3))
            started = time.monotonic()
            outcome = restore_set(config, backup, RestoreOptions(target=f"engine_{round_no}", jobs=args.jobs))
            results["engine"].append(round(time.monotonic() - started, 3))
            print(f"round {round_no}: raw {results['raw'][-1]:.2f} s, engine {results['engine'][-1]:.2f} s {outcome['timings']}", flush=True)
            for name in (f"raw_{round_no}", f"engine_{round_no}"):
                bench.cluster.psql(f'DROP DATABASE "{name}"')
        med = {name: statistics.median(values) for name, values in results.items()}
        ratio = round(med["engine"] / med["raw"], 3)
        print(f"\nmedians: raw {med['raw']:.2f} s, engine {med['engine']:.2f} s; engine/raw {ratio} (target <= 1.1)")
        write_results(
            "restore",
            {"results": results, "medians": med, "ratio": ratio, "jobs": args.jobs, "postgresql": bench.cluster.major, "database_bytes": bench.database_bytes},
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
