"""The fingerprint's cost on a database with many objects.

A database of --tables tables (each with a primary key, an index, a GRANT and a few rows; a third of
them partitions of partitioned tables) is fingerprinted --rounds times on a throwaway cluster, beside
what the backup does anyway for the same database: the row counts (one count(*) per table) and a
schema-only pg_dump (what pg_dump itself reads from the catalogs). Reported as medians, with the
fingerprint's size in the manifest.

    .venv/bin/python bench/fingerprint.py --tables 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import write_results  # noqa: E402
from pgdrill import db, fingerprint  # noqa: E402
from pgdrill.config import Connection  # noqa: E402
from pgdrill_lab.cluster import Cluster  # noqa: E402


def populate(cluster: Cluster, dbname: str, tables: int) -> None:
    cluster.psql(f'CREATE DATABASE "{dbname}"')
    cluster.psql("CREATE ROLE bench_reader NOLOGIN")
    parents = tables // 30
    statements = ["CREATE SCHEMA app"]
    for p in range(parents):
        statements.append(f"CREATE TABLE app.part_{p} (id int, day date, note text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)")
        for q in range(10):
            statements.append(f"CREATE TABLE app.part_{p}_{q} PARTITION OF app.part_{p} FOR VALUES FROM ('{2000 + q}-01-01') TO ('{2001 + q}-01-01')")
    plain = tables - parents * 11
    for t in range(plain):
        statements.append(
            f"CREATE TABLE app.t_{t} (id serial PRIMARY KEY, name text, amount numeric); CREATE INDEX ON app.t_{t} (name);"
            f" GRANT SELECT ON app.t_{t} TO bench_reader; INSERT INTO app.t_{t} (name, amount) VALUES ('a', 1), ('b', 2)"
        )
    for start in range(0, len(statements), 200):
        cluster.psql("; ".join(statements[start : start + 200]), dbname)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with Cluster(name="bench-fingerprint") as cluster:
        dbname = "many"
        populate(cluster, dbname, args.tables)
        connection = Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile)
        results = {"fingerprint": [], "row_counts": [], "pg_dump_schema_only": []}
        size = objects = 0
        for _ in range(args.rounds):
            conn = db.connect(connection, dbname)
            try:
                started = time.monotonic()
                document = fingerprint.take(conn)
                results["fingerprint"].append(round(time.monotonic() - started, 3))
                size, objects = len(json.dumps(document)), len(document["objects"])
                started = time.monotonic()
                db.count_rows(conn)
                results["row_counts"].append(round(time.monotonic() - started, 3))
            finally:
                conn.close()
            started = time.monotonic()
            subprocess.run([cluster.bin("pg_dump"), "--schema-only", "-f", os.devnull], env=dict(os.environ, **cluster.env(dbname)), check=True)
            results["pg_dump_schema_only"].append(round(time.monotonic() - started, 3))
        med = {name: statistics.median(values) for name, values in results.items()}
        print(f"{args.tables} tables, {objects} objects in the fingerprint, {size / 1e6:.2f} MB of JSON in the manifest")
        for name, value in med.items():
            print(f"  {name:<22} median {value:.3f} s  rounds {results[name]}")
        print(f"  fingerprint / pg_dump --schema-only: {med['fingerprint'] / med['pg_dump_schema_only']:.2f}")
        write_results("fingerprint", {"tables": args.tables, "objects": objects, "json_bytes": size, "results": results, "medians": med})
    return 0


if __name__ == "__main__":
    sys.exit(main())
