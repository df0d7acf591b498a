"""pgdrill benchmarks for point-in-time recovery: what WAL archiving costs, and what the PITR drill
adds to a plain pgBackRest restore.

    .venv/bin/python bench/pitr.py                       # pgbench scale 20, 3 rounds of 30 s
    .venv/bin/python bench/pitr.py --scale 50 --rounds 5 --seconds 60

One throwaway PostgreSQL cluster with a pgbench database, and the lab's SeaweedFS S3 server over TLS
on loopback holding an encrypted (aes-256-cbc) pgBackRest repository, as the tests use them:

  (a) archiving  pgbench -T SECONDS (after its own VACUUM) on the same cluster, round by round, with archive_mode on and
                 archive_command = pgbackrest archive-push (to the S3 repository), and with
                 archive_mode off (wal_level replica both times; a restart between them). Medians of
                 the TPS, and their ratio; with archiving, how long the archive took to catch up.
  (b) drill      after a full backup and a restore point marked by pgdrill (pitr.mark), round by
                 round: raw (pgbackrest restore --type=name into a new data directory, a throwaway
                 server started on it, replay, promotion) against
                 pgdrill-backup drill --physical --target name:POINT (the same restore and recovery,
                 then its proofs), wall time. Target: drill <= 1.2x raw. Without a drill command that
                 knows --physical, only raw runs and the drill is reported as not measured.

Prints medians and ratios and writes bench/results/pitr-<time>.json. Targets are read from the
output, never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import write_results  # noqa: E402
from pgdrill import pitr  # noqa: E402
from pgdrill.config import Connection  # noqa: E402
from pgdrill_lab.cluster import Cluster  # noqa: E402
from pgdrill_lab.pgbackrest_lab import PgBackRestRepo  # noqa: E402
from pgdrill_lab.s3server import S3Server  # noqa: E402

TARGETS = {"drill_vs_raw": 1.2}
DBNAME = "bench"
CLI = [sys.executable, "-m", "pgdrill.cli"]


def tps_of(output: str) -> float:
    """The TPS pgbench printed (without the connection time). Pure."""
    found = re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", output, re.MULTILINE)
    if not found:
        raise SystemExit(f"pgbench printed no TPS:\n{output}")
    return float(found.group(1))


def ratio(numerator: Optional[float], denominator: Optional[float], digits: int = 3) -> Optional[float]:
    return round(numerator / denominator, digits) if numerator and denominator else None


def set_archiving(cluster: Cluster, on: bool) -> None:
    cluster.psql(f"ALTER SYSTEM SET archive_mode = {'on' if on else 'off'}")
    cluster.restart()
    cluster.psql("CHECKPOINT")


def archiver(cluster: Cluster) -> Dict[str, Any]:
    row = cluster.psql("SELECT archived_count, failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver")
    archived, failed, last = row.split("|")
    return {"archived": int(archived), "failed": int(failed), "last": last}


def pgbench_round(cluster: Cluster, repo: PgBackRestRepo, archiving: bool, args: argparse.Namespace) -> Dict[str, Any]:
    """One pgbench run with archiving on or off; with it on, the WAL it archived and how long the
    archive took to catch up once pgbench stopped."""
    set_archiving(cluster, archiving)
    before = archiver(cluster)
    env = dict(os.environ, **cluster.env(DBNAME))
    clients = str(args.clients)
    done = subprocess.run([cluster.bin("pgbench"), "-T", str(args.seconds), "-c", clients, "-j", clients, DBNAME], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed: {done.stderr.strip()}")
    result: Dict[str, Any] = {"tps": tps_of(done.stdout)}
    if archiving:
        stopped = time.monotonic()
        current = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
        repo.wait_archived(current, timeout=600)
        after = archiver(cluster)
        result.update(
            catch_up_seconds=round(time.monotonic() - stopped, 2),
            archived_segments=after["archived"] - before["archived"],
            failed=after["failed"] - before["failed"],
        )
    return result


def drill_available() -> bool:
    done = subprocess.run(CLI + ["drill", "--help"], capture_output=True, text=True)
    return done.returncode == 0 and "--physical" in done.stdout


def drill_config(cluster: Cluster, work: str) -> str:
    """A pgdrill config whose [drill] section drills the bench database on this same cluster (staging
    and source at once), measuring the RPO against it; evidence and scratch under ``work``."""
    path = os.path.join(work, "pgdrill.conf")
    connection = {"host": cluster.host, "port": cluster.port, "user": "postgres", "passfile": cluster.passfile}
    drill = {
        "database": DBNAME,
        "source_dir": os.path.join(work, "b"),
        "source_host": "bench",
        **connection,
        "evidence_dir": os.path.join(work, "evidence"),
        "work_dir": os.path.join(work, "drill"),
        "pitr_source": " ".join(f"{key}={value}" for key, value in connection.items()),
    }
    for directory in (drill["source_dir"], drill["evidence_dir"]):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    os.makedirs(drill["work_dir"], mode=0o711, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(f"[pgdrill]\nbackup_dir = {drill['source_dir']}\ndbname = {DBNAME}\npg_bin_dir = {cluster.bindir}\n")
        handle.write("".join(f"{key} = {value}\n" for key, value in connection.items()))
        handle.write("\n[drill]\n" + "".join(f"{key} = {value}\n" for key, value in drill.items()))
    return path


def timed_drill(config: str, repo: PgBackRestRepo, point: str) -> Dict[str, Any]:
    """One ``pgdrill-backup drill --physical`` to the restore point: its wall time, and the RTO and
    step times its evidence record gives."""
    argv = CLI + ["--config", config, "drill", "--physical", "--target", f"name:{point}", "--stanza", repo.stanza, "--pgbackrest-config", repo.config_file]
    started = time.monotonic()
    done = subprocess.run(argv + ["--json"], capture_output=True, text=True)
    seconds = time.monotonic() - started
    try:
        record = json.loads(done.stdout).get("record") or {}
    except ValueError:
        record = {}
    if done.returncode != 0 or not record.get("passed"):
        raise SystemExit(f"the drill failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return {"seconds": round(seconds, 3), "rto_seconds": record.get("rto_seconds"), "timings": record.get("timings")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=20, help="pgbench scale factor (20: about 300 MB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30, help="length of each pgbench run")
    parser.add_argument("--clients", type=int, default=2, help="pgbench clients (and threads)")
    parser.add_argument("--skip-archiving", action="store_true", help="only (b): the drill against raw")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="pgdrill-bench-pitr-", dir="/var/tmp")
    os.chmod(work, 0o711)  # the drill's scratch below it must be reachable by the cluster's OS user
    with S3Server(name="bench-pitr-s3", tls=True) as s3, Cluster(name="bench-pitr") as cluster:
        try:
            print(f"PostgreSQL {cluster.major} ({cluster.bindir}); pgbench -i -s {args.scale} ...", flush=True)
            cluster.psql(f"CREATE DATABASE {DBNAME}")
            subprocess.run(
                [cluster.bin("pgbench"), "-i", "-q", "-s", str(args.scale), DBNAME],
                env=dict(os.environ, **cluster.env(DBNAME)),
                check=True,
                capture_output=True,
            )
            db_bytes = int(cluster.psql(f"SELECT pg_database_size('{DBNAME}')"))
            print(f"database: {db_bytes / 1e6:.0f} MB", flush=True)
            repo = PgBackRestRepo(cluster, s3, "bench-pitr").setup()
            report: Dict[str, Any] = {
                "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "postgresql": cluster.major,
                "database_bytes": db_bytes,
                "rounds": args.rounds,
                "cpus": os.cpu_count(),
                "targets": TARGETS,
            }

            if not args.skip_archiving:
                rounds: Dict[str, List[Dict[str, Any]]] = {"off": [], "on": []}
                for round_no in range(1, args.rounds + 1):
                    order = ("off", "on") if round_no % 2 else ("on", "off")  # neither always goes first
                    for variant in order:
                        result = pgbench_round(cluster, repo, variant == "on", args)
                        rounds[variant].append(result)
                        extra = f", {result['archived_segments']} segments archived, caught up {result['catch_up_seconds']} s after" if variant == "on" else ""
                        print(f"round {round_no}: archiving {variant:<3} {result['tps']:9.1f} tps{extra}", flush=True)
                median = {variant: statistics.median(r["tps"] for r in results) for variant, results in rounds.items()}
                report["archiving"] = {
                    "pgbench": {"seconds": args.seconds, "clients": args.clients, "scale": args.scale},
                    "rounds": rounds,
                    "median_tps": median,
                    "tps_ratio_on_vs_off": ratio(median["on"], median["off"]),
                    "median_catch_up_seconds": statistics.median(r["catch_up_seconds"] for r in rounds["on"]),
                }
                print(
                    f"\nTPS medians: archiving off {median['off']:.1f}, on {median['on']:.1f}: "
                    f"{report['archiving']['tps_ratio_on_vs_off']}x (archive caught up in {report['archiving']['median_catch_up_seconds']} s, median)",
                    flush=True,
                )
                set_archiving(cluster, True)

            repo.backup("full")
            point = pitr.mark(Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile), DBNAME, pitr_point_name())
            repo.wait_archived(point["wal_file"])
            with_drill = drill_available()
            config = drill_config(cluster, work)
            pitr.save_point(os.path.join(work, "b"), point)  # where the drill looks for the point's record, as mark saves it
            raw: List[Dict[str, float]] = []
            drills: List[Dict[str, Any]] = []
            for round_no in range(1, args.rounds + 1):
                timings: Dict[str, float] = {}
                started = time.monotonic()
                restored = repo.restore(f"bench-raw-{round_no}", "name", point["name"], timings=timings)
                wall = time.monotonic() - started
                restored.destroy()
                raw.append({"seconds": round(wall, 3), "restore": round(timings["restore"], 3), "recovery": round(timings["recovery"], 3)})
                line = f"round {round_no}: raw {wall:6.2f} s (restore {timings['restore']:.2f}, recovery {timings['recovery']:.2f})"
                if with_drill:
                    drills.append(timed_drill(config, repo, point["name"]))
                    line += f"  drill {drills[-1]['seconds']:6.2f} s (RTO in its evidence {drills[-1]['rto_seconds']} s)"
                print(line, flush=True)
            raw_median = statistics.median(r["seconds"] for r in raw)
            drill_median = statistics.median(d["seconds"] for d in drills) if drills else None
            # The drill's own restore and recovery steps (its evidence), without its checks and cleanup.
            steps = [float(d["timings"].get("restore") or 0) + float(d["timings"].get("recovery") or 0) for d in drills if d.get("timings")]
            steps_median = statistics.median(steps) if steps else None
            report["drill"] = {
                "target": f"name:{point['name']}",
                "raw": raw,
                "drill": drills,
                "raw_median_seconds": raw_median,
                "drill_median_seconds": drill_median,
                "drill_vs_raw": ratio(drill_median, raw_median),
                "drill_restore_and_recovery_median_seconds": steps_median,
                "drill_restore_and_recovery_vs_raw": ratio(steps_median, raw_median),
                "measured": bool(drills),
            }
            print(f"\nraw pgbackrest restore + recovery: {raw_median:.2f} s (median)")
            if drills:
                print(f"PITR drill: {drill_median:.2f} s (median): {report['drill']['drill_vs_raw']}x raw (target <= {TARGETS['drill_vs_raw']})")
                if steps_median is not None:
                    print(f"  its restore and recovery steps alone: {steps_median:.2f} s, {report['drill']['drill_restore_and_recovery_vs_raw']}x raw")
            else:
                print("PITR drill: not measured (this checkout's pgdrill-backup drill has no --physical)")
            write_results("pitr", json.loads(json.dumps(report)))
            return 0
        finally:
            subprocess.run(["rm", "-rf", work])


def pitr_point_name() -> str:
    return f"pgdrill_bench_{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"


if __name__ == "__main__":
    sys.exit(main())
