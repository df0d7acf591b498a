"""Off-host copies: what encryption and the upload cost a backup, a drill from the remote against a raw
restore, and pgdrill's transfers against the plain tools.

    .venv/bin/python bench/offhost.py [--scale 1400000] [--rounds 3] [--jobs 2] [--backup-only]
        [--format directory --small-tables N] [--baseline DIR]

A throwaway cluster with the sample database and a real S3 server on loopback (SeaweedFS). Interleaved
round by round:
  backup   plain    pgdrill-backup, local only (the engine's defaults)
           offhost  pgdrill-backup with encrypt_recipients (two age recipients, in the pipeline) and
                    remote = s3://... (the dump uploaded while pg_dump writes it, the rest pushed after
                    the set, manifest last, checked)
  drill    raw      createdb; zstd -d the plain archive to a file; pg_restore --jobs N
           remote   pgdrill-backup verify --remote --restore: download and hash every object, pull the
                    set, decrypt, restore --jobs N into a scratch database, compare it with the
                    fingerprint and the row counts, drop it
  transfer upload and download of the encrypted dump: pgdrill's Remote.put/get (whole-file sha256
           checked both ways), boto3's upload_file/download_file (what `aws s3 cp` runs), and
           `rclone copyto` against the same bucket
With --backup-only: --format directory takes directory-format sets (each member uploaded as soon as
it is sealed), --small-tables N adds N small tables to the sample (a set of many members), and
--baseline DIR also runs the encrypted + pushed backup with the engine found in DIR (PYTHONPATH: an
older checkout's module_utils), interleaved, into its own backup directory and remote prefix.
Targets (read here, never asserted in tests): offhost backup <= 1.15x plain, its peak RSS <= 64 MB;
drill from the remote <= 1.3x raw.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import bench_database, write_results  # noqa: E402
from run import directory_size, timed  # noqa: E402
from pgdrill.storage.backends import open_remote  # noqa: E402
from pgdrill_lab.s3server import S3Server  # noqa: E402

TARGETS = {"backup_ratio": 1.15, "backup_peak_rss_mb": 64, "drill_ratio": 1.3}


def keys(directory: str) -> "tuple[str, list]":
    recipients = []
    identity = ""
    for name in ("drill", "escrow"):
        path = os.path.join(directory, f"{name}.key")
        subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True)
        recipients.append(subprocess.run(["age-keygen", "-y", path], check=True, capture_output=True, text=True).stdout.strip())
        identity = identity or path
    return identity, recipients


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used (the S3 server shares the benchmark's cores)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values):
    return round(statistics.median(values), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1_400_000, help="invoices in the sample database (1.4M: about 1.2 GB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--transfer-only", type=int, metavar="MB", help="only the transfers, of a random file of MB megabytes (no database)")
    parser.add_argument("--backup-only", action="store_true", help="only the backups, local against encrypted and pushed (no drill, no transfers)")
    parser.add_argument("--format", choices=("custom", "directory"), default="custom", help="the sets' format (directory: with --backup-only)")
    parser.add_argument("--small-tables", type=int, default=0, metavar="N", help="add N small tables (100 rows each) to the sample")
    parser.add_argument("--baseline", metavar="DIR", help="also the encrypted + pushed backup with the engine in DIR (PYTHONPATH), interleaved")
    args = parser.parse_args()
    if args.format != "custom" and not args.backup_only:
        parser.error("--format directory measures the backups alone: add --backup-only")
    if args.transfer_only:
        return transfer_only(args.transfer_only, args.rounds)
    with S3Server(name="bench-s3") as server, bench_database("bench-offhost", "bench", args.scale) as bench:
        env = dict(os.environ, **server.env())
        os.environ.update(server.env())
        bucket = server.create_bucket("pgdrill-bench")
        identity, recipients = keys(bench.work)
        if args.small_tables:
            bench.cluster.psql(small_tables_sql(args.small_tables), bench.dbname)
        plain_config = bench.write_config(args.format)
        base = open(plain_config, encoding="utf-8").read()
        plain_dir = os.path.join(bench.work, "b" if args.format == "custom" else f"b-{args.format}")
        offhost_config = os.path.join(bench.work, "offhost.conf")
        with open(offhost_config, "w", encoding="utf-8") as handle:
            handle.write(
                base.replace(
                    "[pgdrill]\n",
                    f"[pgdrill]\nencrypt_recipients = {' '.join(recipients)}\nencrypt_identity_file = {identity}\n"
                    f"remote = s3://{bucket}/pgdrill\nremote_endpoint_url = {server.endpoint_url}\nremote_region = us-east-1\n",
                    1,
                ).replace(f"backup_dir = {plain_dir}\n", f"backup_dir = {bench.work}/o\n")
            )
        baseline_config = os.path.join(bench.work, "baseline.conf")
        with open(baseline_config, "w", encoding="utf-8") as handle:
            handle.write(
                open(offhost_config, encoding="utf-8").read().replace(f"{bench.work}/o\n", f"{bench.work}/o-baseline\n").replace("/pgdrill\n", "/baseline\n")
            )
        command = [sys.executable, "-m", "pgdrill.cli", "--no-prune", "--config"]
        results = {"plain": [], "offhost": [], "plain_rss_kb": [], "offhost_rss_kb": [], "server_cpu": [], "raw_restore": [], "drill_remote": []}
        results.update({"baseline": [], "baseline_rss_kb": []} if args.baseline else {})
        for round_no in range(1, args.rounds + 1):
            if args.baseline:
                seconds, peak = timed(command + [baseline_config], dict(env, PYTHONPATH=args.baseline))
                results["baseline"].append(round(seconds, 3))
                results["baseline_rss_kb"].append(peak)
            seconds, peak = timed(command + [plain_config], env)
            results["plain"].append(round(seconds, 3))
            results["plain_rss_kb"].append(peak)
            server_cpu = cpu_seconds(server.proc.pid)
            seconds, peak = timed(command + [offhost_config], env)
            results["server_cpu"].append(round(cpu_seconds(server.proc.pid) - server_cpu, 2))
            results["offhost"].append(round(seconds, 3))
            results["offhost_rss_kb"].append(peak)
            print(
                f"backup round {round_no}: plain {results['plain'][-1]:.2f} s, offhost {results['offhost'][-1]:.2f} s "
                f"(peak RSS {results['plain_rss_kb'][-1] / 1024:.0f} / {results['offhost_rss_kb'][-1] / 1024:.0f} MB; "
                f"the S3 server used {results['server_cpu'][-1]:.2f} s of CPU)" + (f"; baseline {results['baseline'][-1]:.2f} s" if args.baseline else ""),
                flush=True,
            )
        offhost_dir = os.path.join(bench.work, "o")
        if args.backup_only:
            return report_backups(results, offhost_dir, bench, args.rounds)
        archive = os.path.join(plain_dir, sorted(name for name in os.listdir(plain_dir) if "_db_" in name)[-1])
        for round_no in range(1, args.rounds + 1):
            started = time.monotonic()
            bench.raw_restore(archive, f"raw_{round_no}", args.jobs)
            results["raw_restore"].append(round(time.monotonic() - started, 3))
            bench.cluster.psql(f'DROP DATABASE "raw_{round_no}"')
            seconds, _ = timed(command[:-2] + ["verify", "--config", offhost_config, "--remote", "--restore", "--jobs", str(args.jobs)], env)
            results["drill_remote"].append(round(seconds, 3))
            print(f"drill round {round_no}: raw pg_restore {results['raw_restore'][-1]:.2f} s, from the remote {results['drill_remote'][-1]:.2f} s", flush=True)
        sealed = os.path.join(offhost_dir, sorted(name for name in os.listdir(offhost_dir) if "_db_" in name)[-1])
        transfer = transfers(server, bucket, sealed, bench.work, args.rounds)
        med = {name: median(values) for name, values in results.items() if not name.endswith("rss_kb") and values}
        summary = {
            "backup_ratio": round(med["offhost"] / med["plain"], 3),
            "offhost_peak_rss_mb": round(max(results["offhost_rss_kb"]) / 1024, 1),
            "plain_peak_rss_mb": round(max(results["plain_rss_kb"]) / 1024, 1),
            "drill_ratio": round(med["drill_remote"] / med["raw_restore"], 3),
            "dump_bytes": os.path.getsize(sealed),
        }
        print(f"\ndatabase {bench.database_bytes / 1e9:.2f} GB, encrypted dump {summary['dump_bytes'] / 1e6:.1f} MB; medians of {args.rounds} rounds")
        print(
            f"backup: plain {med['plain']:.2f} s, encrypted + pushed {med['offhost']:.2f} s: {summary['backup_ratio']}x "
            f"(target <= {TARGETS['backup_ratio']}); peak RSS {summary['offhost_peak_rss_mb']} MB (target <= {TARGETS['backup_peak_rss_mb']})"
        )
        print(
            f"drill: raw pg_restore -j{args.jobs} {med['raw_restore']:.2f} s, from the remote {med['drill_remote']:.2f} s: "
            f"{summary['drill_ratio']}x (target <= {TARGETS['drill_ratio']})"
        )
        for direction in ("upload", "download"):
            line = ", ".join(
                f"{tool} {transfer[direction][tool]:.2f} s ({summary['dump_bytes'] / 1e6 / transfer[direction][tool]:.0f} MB/s)" for tool in transfer[direction]
            )
            print(f"{direction}: {line}")
        write_results(
            "offhost",
            {
                "results": results,
                "medians": med,
                "summary": summary,
                "transfer": transfer,
                "targets": TARGETS,
                "jobs": args.jobs,
                "postgresql": bench.cluster.major,
                "database_bytes": bench.database_bytes,
            },
        )
    return 0


def report_backups(results: dict, offhost_dir: str, bench, rounds: int) -> int:
    """The backup comparison alone (--backup-only): medians, ratio, peak RSS and the load average."""
    sealed = os.path.join(offhost_dir, sorted(name for name in os.listdir(offhost_dir) if "_db_" in name)[-1])
    med = {name: median(results[name]) for name in ("plain", "offhost", "server_cpu", "baseline") if results.get(name)}
    summary = {
        "backup_ratio": round(med["offhost"] / med["plain"], 3),
        "offhost_peak_rss_mb": round(max(results["offhost_rss_kb"]) / 1024, 1),
        "plain_peak_rss_mb": round(max(results["plain_rss_kb"]) / 1024, 1),
        "dump_bytes": directory_size(sealed) if os.path.isdir(sealed) else os.path.getsize(sealed),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    if "baseline" in med:
        summary.update(baseline_ratio=round(med["baseline"] / med["plain"], 3), baseline_peak_rss_mb=round(max(results["baseline_rss_kb"]) / 1024, 1))
        print(
            f"\nbaseline (the engine in --baseline): {med['baseline']:.2f} s, {summary['baseline_ratio']}x, peak RSS {summary['baseline_peak_rss_mb']} MB",
            end="",
        )
    print(f"\ndatabase {bench.database_bytes / 1e9:.2f} GB, encrypted dump {summary['dump_bytes'] / 1e6:.1f} MB; medians of {rounds} rounds")
    print(
        f"backup: plain {med['plain']:.2f} s, encrypted + pushed {med['offhost']:.2f} s: {summary['backup_ratio']}x (target <= {TARGETS['backup_ratio']}); "
        f"peak RSS {summary['offhost_peak_rss_mb']} MB, local {summary['plain_peak_rss_mb']} MB (target <= {TARGETS['backup_peak_rss_mb']}); "
        f"load average {summary['load_average']}; the S3 server on the same cores used {med['server_cpu']:.2f} s of CPU per pushed backup"
    )
    write_results("offhost-backup", {"results": results, "medians": med, "summary": summary, "targets": TARGETS, "database_bytes": bench.database_bytes})
    return 0


def small_tables_sql(count: int) -> str:
    """SQL adding ``count`` small tables of 100 rows to the sample: a directory set of many members. Pure."""
    return (
        f"DO $$ BEGIN FOR i IN 1..{count} LOOP EXECUTE format("
        "'CREATE TABLE extra_%s AS SELECT g AS id, md5(g::text) AS note, now() AS at FROM generate_series(1, 100) g', i); END LOOP; END $$;"
    )


def transfer_only(megabytes: int, rounds: int) -> int:
    """The transfer comparison alone, on a random (incompressible, like an encrypted dump) file."""
    work = tempfile.mkdtemp(prefix="pgdrill-bench-transfer-")
    try:
        with S3Server(name="bench-s3") as server:
            os.environ.update(server.env())
            bucket = server.create_bucket("pgdrill-bench")
            path = os.path.join(work, "bench_db_20261205_000000_utc.dump.zst.age")
            with open(path, "wb") as handle:
                for _ in range(megabytes):
                    handle.write(os.urandom(1 << 20))
            transfer = transfers(server, bucket, path, work, rounds)
        size = os.path.getsize(path)
        for direction in ("upload", "download"):
            print(f"{direction}: " + ", ".join(f"{tool} {value:.2f} s ({size / 1e6 / value:.0f} MB/s)" for tool, value in transfer[direction].items()))
        write_results("offhost-transfer", {"bytes": size, "rounds": rounds, "transfer": transfer})
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def transfers(server, bucket: str, path: str, work: str, rounds: int) -> dict:
    """Median seconds per tool to upload and to download ``path``."""
    import boto3

    client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1")
    rclone_env = dict(
        os.environ,
        RCLONE_CONFIG_BENCH_TYPE="s3",
        RCLONE_CONFIG_BENCH_PROVIDER="Other",
        RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint_url,
        RCLONE_CONFIG_BENCH_ENV_AUTH="true",
        RCLONE_CONFIG_BENCH_REGION="us-east-1",
    )
    rclone = shutil.which("rclone") or os.path.join(os.path.dirname(sys.executable), "rclone")
    name = os.path.basename(path)
    out = tempfile.mkdtemp(dir=work)
    seconds = {"upload": {"pgdrill": [], "boto3": [], "rclone": []}, "download": {"pgdrill": [], "boto3": [], "rclone": []}}
    for round_no in range(rounds):
        remote = open_remote(f"s3://{bucket}/transfer-{round_no}", endpoint_url=server.endpoint_url, region="us-east-1")
        started = time.monotonic()
        remote.put(path)
        seconds["upload"]["pgdrill"].append(time.monotonic() - started)
        started = time.monotonic()
        client.upload_file(path, bucket, f"boto3-{round_no}/{name}")
        seconds["upload"]["boto3"].append(time.monotonic() - started)
        started = time.monotonic()
        subprocess.run([rclone, "copyto", path, f"bench:{bucket}/rclone-{round_no}/{name}"], env=rclone_env, check=True)
        seconds["upload"]["rclone"].append(time.monotonic() - started)
        for tool, fetch in (
            ("pgdrill", lambda remote=remote: remote.get(name, out)),
            ("boto3", lambda key=f"boto3-{round_no}/{name}": client.download_file(bucket, key, os.path.join(out, name))),
            (
                "rclone",
                lambda key=f"rclone-{round_no}/{name}": subprocess.run(
                    [rclone, "copyto", f"bench:{bucket}/{key}", os.path.join(out, name)], env=rclone_env, check=True
                ),
            ),
        ):
            started = time.monotonic()
            fetch()
            seconds["download"][tool].append(time.monotonic() - started)
            os.unlink(os.path.join(out, name))
    shutil.rmtree(out, ignore_errors=True)
    return {direction: {tool: median(values) for tool, values in tools.items()} for direction, tools in seconds.items()}


if __name__ == "__main__":
    sys.exit(main())
