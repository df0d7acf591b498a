"""Directory-format sets, the pure rules: what the manifest may list for a directory, what its stat
says is wrong, the names and the compression. Pure."""

import pytest

from pgdrill import dirsets, manifest
from pgdrill.errors import PgdrillError

PREFIX, STAMP = "app", "20261120_021500"
NAME = f"{PREFIX}_db_{STAMP}_utc.dir"


def _entry(members=None, **changes):
    members = (
        members if members is not None else [{"name": "toc.dat.zst", "size": 10, "sha256": "a" * 64}, {"name": "3417.dat.zst", "size": 5, "sha256": "b" * 64}]
    )
    entry = {"name": NAME, "kind": "db", "format": "directory", "members": members}
    entry.update(
        size=sum(m["size"] for m in members if isinstance(m, dict) and type(m.get("size")) is int),
        sha256=manifest.members_digest(members) if members else "0" * 64,
    )
    entry.update(changes)
    return entry


def _problems(entry):
    document = {
        "format": manifest.FORMAT,
        "format_version": manifest.FORMAT_VERSION,
        "prefix": PREFIX,
        "stamp": STAMP,
        "started_at": "2026-11-20T02:15:00.000Z",
        "files": [entry],
    }
    return manifest.problems(document, PREFIX, STAMP)


def test_a_directory_entry_with_its_members_is_trusted():
    assert _problems(_entry()) == []


@pytest.mark.parametrize(
    "entry, words",
    [
        (_entry([{"name": "../etc/passwd", "size": 1, "sha256": "a" * 64}, {"name": "toc.dat", "size": 1, "sha256": "a" * 64}]), "not a plain file name"),
        (_entry([{"name": "sub/toc.dat", "size": 1, "sha256": "a" * 64}]), "not a plain file name"),
        (_entry([{"name": ".hidden", "size": 1, "sha256": "a" * 64}, {"name": "toc.dat", "size": 1, "sha256": "a" * 64}]), "not a plain file name"),
        (_entry([{"name": "toc.dat", "size": 1, "sha256": "a" * 64}] * 2), "lists a member twice"),
        (_entry([{"name": "3417.dat", "size": 1, "sha256": "a" * 64}]), "lists no toc.dat"),
        (_entry([]), "lists no members"),
        (_entry([{"name": "toc.dat", "size": "1", "sha256": "a" * 64}]), "lacks name, size or sha256"),
        (_entry(size=999), "does not match its member list"),
        (_entry(sha256="c" * 64), "does not match its member list"),
        (_entry(format=None), "is listed as format 'None'"),
        ({**_entry(), "name": f"{PREFIX}_db_{STAMP}_utc.dump"}, "is listed as format 'directory'"),
    ],
)
def test_a_directory_entry_that_cannot_be_trusted_is_named(entry, words):
    found = _problems(entry)
    assert found and any(words in problem for problem in found), found


def test_the_stat_of_a_directory_names_every_missing_extra_resized_or_odd_member():
    listed = [{"name": "toc.dat.zst", "size": 10}, {"name": "1.dat.zst", "size": 5}, {"name": "2.dat.zst", "size": 7}, {"name": "3.dat.zst", "size": 1}]
    found = dirsets.member_problems("d.dir", listed, {"toc.dat.zst": 10, "1.dat.zst": 6, "3.dat.zst": -1, "planted": 3})
    assert found == [
        "d.dir/2.dat.zst is missing",
        "d.dir/planted is not in the manifest",
        "d.dir/1.dat.zst is 6 bytes, the manifest says 5",
        "d.dir/3.dat.zst is not a regular file (a link, a directory)",
    ]
    assert dirsets.member_problems("d.dir", listed[:1], {"toc.dat.zst": 10}) == []


def test_member_names_and_what_their_decoded_bytes_are():
    assert dirsets.member_name("toc.dat", True, True) == "toc.dat.zst.age" and dirsets.member_name("3417.dat", False, False) == "3417.dat"
    assert [manifest.plain_member(name) for name in ("toc.dat.zst.age", "toc.dat.age", "3417.dat.zst", "blobs.toc")] == [
        "toc.dat",
        "toc.dat",
        "3417.dat",
        "blobs.toc",
    ]


def test_a_directory_dump_compresses_with_zstd_or_not_at_all():
    assert dirsets.compression_plan("zstd", 5, "/usr/bin/zstd")[:3] == ("zstd", 5, True)
    assert dirsets.compression_plan("none", 3, None)[:3] == ("none", 0, False)
    with pytest.raises(PgdrillError) as caught:
        dirsets.compression_plan("zstd", 3, None)
    assert "zstd is not installed" in caught.value.problem and "compression = none" in caught.value.fix
    with pytest.raises(PgdrillError):
        dirsets.compression_plan("gzip", 6, "/usr/bin/zstd")


def test_pg_dump_runs_in_the_exported_snapshot_with_its_jobs_and_no_compression_of_its_own():
    argv = dirsets.dump_argv("/usr/bin/pg_dump", "/b/.x.part-1/.plain", "00000003-1", 3, 5000)
    assert argv == [
        "/usr/bin/pg_dump",
        "--format=directory",
        "--jobs=3",
        "--compress=0",
        "--snapshot=00000003-1",
        "--file=/b/.x.part-1/.plain",
        "--lock-wait-timeout=5000",
    ]


def test_only_a_finished_table_data_item_names_a_whole_file():
    assert dirsets.finished_file("pg_dump: finished item 3417 TABLE DATA ledger_entries") == "3417.dat"
    assert dirsets.finished_file("pg_dump: pg_dump: finished item 12 TABLE DATA a b") == "12.dat"  # two processes' writes interleaved
    assert dirsets.finished_file("pg_dump: finished item 3420 BLOBS BLOBS") is None
    assert dirsets.finished_file("pg_dump: dumping contents of table public.ledger_entries") is None
    assert dirsets.PROGRESS.search("pg_dump: reading extensions") and not dirsets.PROGRESS.search("pg_dump: error: query failed: ERROR:  lock timeout")
