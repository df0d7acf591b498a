"""The physical drill's amcheck proof on a real server with a damaged index: the index is named as
failed and a problem says why, while the healthy ones pass (a drill over such a restore fails)."""

import os

from pgdrill_lab.cluster import Cluster

from ansible.module_utils.pgdrill.config import Connection
from ansible.module_utils.pgdrill.physical_steps import amcheck


def test_amcheck_names_a_damaged_index_and_passes_healthy_ones():
    with Cluster(name="amcheck") as cluster:
        cluster.psql("CREATE DATABASE shop")
        cluster.psql(
            "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric); CREATE INDEX orders_total ON orders (total);"
            " INSERT INTO orders SELECT g, g % 97 FROM generate_series(1, 20000) g; CHECKPOINT",
            dbname="shop",
        )
        connection = Connection(host=cluster.host, port=cluster.port, user="postgres", passfile=cluster.passfile)
        found, problems = amcheck(connection, "shop")
        assert found["failed"] == [] and problems == [] and found["indexes"] > 50  # the catalogs' indexes are checked too

        relative = cluster.psql("SELECT pg_relation_filepath('orders_total')", dbname="shop")
        cluster.stop()
        with open(os.path.join(cluster.data, relative), "r+b") as index_file:
            index_file.seek(8192)  # block 1: the first page after the metapage
            index_file.write(b"\0" * 8192)
        cluster.start_server()

        found, problems = amcheck(connection, "shop")
        assert found["failed"] == ["orders_total"], (found, problems)
        assert len(problems) == 1 and problems[0].startswith("amcheck: index orders_total: ") and "zero page" in problems[0], problems
