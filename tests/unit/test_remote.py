"""Remote URLs, Object Lock settings, remote set layout and upload plans: pure rules."""

import base64
import hashlib
from datetime import datetime, timezone

import pytest
from hypothesis import example, given, strategies as st

from pgdrill import offsite_sets
from pgdrill.errors import PgdrillError
from pgdrill.offsite_sets import plan_upload, remote_debris, remote_set_problems, remote_sets, upload_order
from pgdrill.storage import LockSettings, RemoteObject, object_key, parse_lock, parse_remote, retain_until
from pgdrill.storage.s3 import composite_sha256, part_size_for

STAMP = "20261127_021500"
DB, GLOBALS, MEDIA = (f"shop_db_{STAMP}_utc.dump.zst", f"shop_globals_{STAMP}_utc.sql", f"shop_media_{STAMP}_utc.tar.zst")
MANIFEST, VERIFY = f"shop_manifest_{STAMP}_utc.json", f"shop_verify_{STAMP}_utc.json"


@pytest.mark.parametrize(
    "url, kind, bucket, prefix, remote, text",
    [
        ("s3://backups", "s3", "backups", "", "", "s3://backups"),
        ("s3://backups/pgdrill/db1", "s3", "backups", "pgdrill/db1", "", "s3://backups/pgdrill/db1"),
        (" s3://my.backups-1/pgdrill/ ", "s3", "my.backups-1", "pgdrill", "", "s3://my.backups-1/pgdrill"),
        ("rclone:offsite:pgdrill/db1", "rclone", "", "pgdrill/db1", "offsite", "rclone:offsite:pgdrill/db1"),
        ("rclone:my remote:/srv/backups/", "rclone", "", "/srv/backups", "my remote", "rclone:my remote:/srv/backups"),
        ("rclone:offsite:", "rclone", "", "", "offsite", "rclone:offsite:"),
        ("rclone::local:/srv/copies", "rclone", "", "/srv/copies", ":local", "rclone::local:/srv/copies"),
    ],
)
def test_remote_urls_parse(url, kind, bucket, prefix, remote, text):
    parsed = parse_remote(url)
    assert (parsed.kind, parsed.bucket, parsed.prefix, parsed.rclone_remote, parsed.text) == (kind, bucket, prefix, remote, text)
    assert parse_remote(parsed.text) == parsed


@pytest.mark.parametrize(
    "url, words",
    [
        ("", "not a remote pgdrill understands"),
        ("/srv/backups", "not a remote pgdrill understands"),
        ("ftp://host/x", "s3:// object storage or through rclone"),
        ("s3://", "not a valid bucket name"),
        ("s3://ab", "not a valid bucket name"),
        ("s3://Backups/x", "not a valid bucket name"),
        ("s3://back..ups/x", "not a valid bucket name"),
        ("s3://backups/a//b", "empty, '.' or '..'"),
        ("s3://backups/a/../b", "empty, '.' or '..'"),
        ("rclone:offsite", "rclone:REMOTE:PATH"),
        ("rclone::pgdrill", "rclone::BACKEND:PATH"),
        ("rclone::sftp,host=h,pass=secret:path", "do not belong in the remote URL"),
        ("rclone:offsite,pass=secret:path", "rclone:REMOTE:PATH"),
        ("s3://AKIA:secret@backups/x", "credentials do not belong"),
        ("rclone:offsite:a/../b", "empty, '.' or '..'"),
    ],
)
def test_bad_remote_urls_are_named(url, words):
    with pytest.raises(PgdrillError) as caught:
        parse_remote(url)
    assert words in caught.value.problem and caught.value.fix
    if "secret" in url:
        assert "secret" not in caught.value.problem  # the value is not echoed when it carries parameters


@given(st.text(max_size=60))
@example("s3://backups/pgdrill/db1")
@example(" s3://my.backups-1/pgdrill/ ")
@example("rclone:my remote:/srv/backups/")
@example("rclone::local:/srv/copies")
@example("s3://backups/a\n")
@example("")
def test_whatever_parses_round_trips(text):
    try:
        parsed = parse_remote(text)
    except PgdrillError:
        return
    assert parse_remote(parsed.text) == parsed


def test_object_keys():
    assert object_key("pgdrill/db1", DB) == f"pgdrill/db1/{DB}"
    assert object_key("", DB) == DB


def test_upload_order_puts_the_manifest_last_and_leaves_verify_records_out():
    assert upload_order([MANIFEST, VERIFY, MEDIA, GLOBALS, DB]) == [DB, GLOBALS, MEDIA, MANIFEST]
    assert upload_order([f"{DB}.age", MANIFEST, f"{GLOBALS}.age"]) == [f"{DB}.age", f"{GLOBALS}.age", MANIFEST]
    with pytest.raises(ValueError):
        upload_order(["notes.txt"])
    with pytest.raises(ValueError):
        upload_order([DB, "shop_db_20261128_021500_utc.dump"])


def test_a_remote_set_without_its_manifest_is_debris():
    older = ["shop_db_20261126_021500_utc.dump", "shop_manifest_20261126_021500_utc.json"]
    names = older + [DB, GLOBALS, "other_db_20261127_021500_utc.dump", "README", ".shop_db_x.part-1"]
    sets = remote_sets(names, "shop")
    assert [(s.stamp, s.complete) for s in sets] == [("20261126_021500", True), (STAMP, False)]
    assert sets[0].manifest == "shop_manifest_20261126_021500_utc.json" and sets[1].manifest is None
    assert [s.set_id for s in remote_debris(names, "shop")] == [f"shop_{STAMP}_utc"]
    assert [f.name for f in sets[1].files] == sorted([DB, GLOBALS])


def test_upload_plan_resumes_an_interrupted_push():
    local = {DB: 100, GLOBALS: 10, MANIFEST: 5, VERIFY: 3}
    plan = plan_upload(local, {DB: RemoteObject(DB, 100)})
    assert plan.upload == [GLOBALS, MANIFEST] and plan.present == [DB] and plan.conflicts == []
    done = plan_upload(local, {name: RemoteObject(name, size) for name, size in local.items()})
    assert done.upload == [] and done.present == [DB, GLOBALS, MANIFEST]


def test_upload_plan_never_completes_a_set_over_a_conflicting_object():
    plan = plan_upload({DB: 100, GLOBALS: 10, MANIFEST: 5}, {DB: RemoteObject(DB, 99)})
    assert plan.conflicts == [DB] and plan.upload == [GLOBALS]  # the manifest is withheld


def test_composite_checksum_as_s3_computes_it():
    parts = [b"a" * 10, b"b" * 5]
    digests = [hashlib.sha256(p).digest() for p in parts]
    expected = base64.b64encode(hashlib.sha256(digests[0] + digests[1]).digest()).decode() + "-2"
    assert composite_sha256(digests) == expected


def test_part_size_stays_within_ten_thousand_parts():
    assert part_size_for(10) == 8 << 20
    big = 500 << 30  # 500 GiB
    size = part_size_for(big)
    assert size % (1 << 20) == 0 and -(-big // size) <= 10000


@pytest.mark.parametrize(
    "mode, days, expected",
    [
        (None, None, None),
        ("COMPLIANCE", 0, None),
        (None, 30, LockSettings("GOVERNANCE", 30)),
        ("compliance", 7, LockSettings("COMPLIANCE", 7)),
        ("GOVERNANCE", 1, LockSettings("GOVERNANCE", 1)),
    ],
)
def test_lock_settings(mode, days, expected):
    assert parse_lock(mode, days) == expected


@pytest.mark.parametrize("mode, days, words", [("LEGAL", 3, "not an S3 Object Lock mode"), ("GOVERNANCE", -1, "-1")])
def test_bad_lock_settings(mode, days, words):
    with pytest.raises(PgdrillError, match=words):
        parse_lock(mode, days)


def test_retain_until_is_utc_days_ahead():
    now = datetime(2026, 11, 27, 2, 15, 30, 123456, tzinfo=timezone.utc)
    assert retain_until(now, 30) == datetime(2026, 12, 27, 2, 15, 30, tzinfo=timezone.utc)


def test_an_s3_remote_without_boto3_says_how_to_install_it(monkeypatch):
    import sys

    from pgdrill.storage.backends import open_remote

    for module in ("boto3", "botocore"):  # what an import finds on a host without the SDK (pgdrill imports botocore, its core)
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(PgdrillError) as caught:
        open_remote("s3://backups/pgdrill")
    assert "boto3" in caught.value.problem and "apt install python3-boto3" in caught.value.fix


def test_a_remote_set_compared_with_its_manifest_from_a_listing():
    files = [{"name": DB, "size": 100, "sha256": "a" * 64}, {"name": GLOBALS, "size": 10, "sha256": "b" * 64}, {"name": MEDIA, "size": 5, "sha256": "c" * 64}]
    objects = {DB: RemoteObject(DB, 100, "a" * 64), GLOBALS: RemoteObject(GLOBALS, 10, "d" * 64), MEDIA: RemoteObject(MEDIA, 5)}
    assert remote_set_problems(files, objects, "s3://b/p") == [f"s3://b/p/{GLOBALS} was stored with sha256 {'d' * 64}, the manifest says {'b' * 64}"]
    objects = {DB: RemoteObject(DB, 99, "a" * 64)}
    assert remote_set_problems(files, objects, "s3://b/p") == [
        f"s3://b/p/{DB} has 99 bytes, the manifest says 100",
        f"s3://b/p/{GLOBALS} is missing",
        f"s3://b/p/{MEDIA} is missing",
    ]


def _local_sets(tmp_path, stamps):
    from helpers import fake_set
    from pgdrill.catalog import scan

    for stamp in stamps:
        fake_set(str(tmp_path), "shop", stamp, payload=stamp.encode(), started=f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T02:15:00.000Z")
    return scan(str(tmp_path), "shop")


def _objects(tmp_path, sets, extra=()):
    import os

    found = {name: RemoteObject(name, os.path.getsize(tmp_path / name)) for backup in sets for name in offsite_sets.set_files(backup)}
    found.update({name: RemoteObject(name, 5) for name in extra})
    return found


def test_owed_sets_ignore_the_stamps_a_planted_future_set_stops_nothing(tmp_path):
    """Issue 18, R16: every complete local set the remote lacks (or holds in part) is owed."""
    from pgdrill.retention import Policy

    older, newer = sorted(_local_sets(tmp_path, ["20261118_021500", "20261119_021500"]), key=lambda b: b.stamp)
    planted = ["shop_db_20991231_235959_utc.dump", "shop_manifest_20991231_235959_utc.json"]
    now = datetime(2026, 11, 20, tzinfo=timezone.utc)
    remote = _objects(tmp_path, [], planted)
    assert [b.id for b in offsite_sets.owed_sets([older, newer], remote, "shop", policy=Policy(), now=now)] == [older.id, newer.id]
    remote = _objects(tmp_path, [newer], planted)
    assert [b.id for b in offsite_sets.owed_sets([older, newer], remote, "shop", policy=Policy(), now=now)] == [older.id]
    assert offsite_sets.future_remote_sets(remote, "shop", now) == ["shop_20991231_235959_utc"]
    partial = {name: item for name, item in _objects(tmp_path, [older, newer]).items() if "_manifest_" not in name or newer.stamp in name}
    assert [b.id for b in offsite_sets.owed_sets([older, newer], partial, "shop", policy=Policy(keep_last=1, retention_days=0), now=now)] == [older.id]
    # A set absent from the remote that the remote's retention would remove at once is not owed.
    assert offsite_sets.owed_sets([older, newer], remote, "shop", policy=Policy(keep_last=1, retention_days=0), now=now) == []
    resized = dict(_objects(tmp_path, [older, newer]), **{older.files[0].name: RemoteObject(older.files[0].name, 1)})
    assert [b.id for b in offsite_sets.owed_sets([older, newer], resized, "shop", policy=Policy(), now=now)] == [older.id]


@pytest.mark.parametrize("name", ["", "..", ".", ".hidden_db_20261127_021500_utc.dump", "a/b", "../x", "x\n", "x\x00"])
def test_remote_object_names_are_plain_file_names(name):
    """Rule: no '/', '..' or hidden names among a remote's objects."""
    from pgdrill.storage import check_object_name

    with pytest.raises(ValueError):
        check_object_name(name)
    assert check_object_name(DB) == DB


def test_stale_uploads_are_the_series_own_and_older_than_a_day():
    """R13: only this series' names (matched whole), only uploads started over a day ago."""
    from datetime import datetime, timedelta, timezone

    from pgdrill.storage import stale_uploads

    now = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
    old, young = now - timedelta(days=1, seconds=1), now - timedelta(hours=23)
    uploads = [
        ("shop_db_20261101_000000_utc.dump", "a", old),
        ("shop_db_20261102_000000_utc.dump", "b", young),
        ("shopping_db_20261101_000000_utc.dump", "c", old),
        ("shop_db_20261101_000000_utc.dump\n", "d", old),
        ("notes.txt", "e", old),
    ]
    assert stale_uploads(uploads, "shop", now) == [("shop_db_20261101_000000_utc.dump", "a")]


def test_a_urls_userinfo_never_shows():
    from pgdrill.storage import without_userinfo

    assert without_userinfo("https://key:secret@s3.example.net:9000/x") == "https://...@s3.example.net:9000/x"
    assert without_userinfo("https://key:pa/ss@host") == "https://...@host"
    assert without_userinfo("https://s3.example.net") == "https://s3.example.net"


def test_a_foreign_set_for_an_encrypted_series():
    """R25: plaintext, other recipients, another host than the series' own sets; a plaintext series
    and a directory without sets of the series compare nothing they cannot."""
    from pgdrill.offsite import foreign_problem

    sealed = {"host": "db1", "encryption": {"method": "age", "recipients": ["fp-a", "fp-b"]}}
    assert foreign_problem(sealed, ["fp-a"], ["db1"]) is None
    assert foreign_problem(sealed, ["fp-b", "fp-c"], []) is None  # a key rotation keeps one recipient
    assert "plaintext" in foreign_problem({"host": "db1", "encryption": None}, ["fp-a"], ["db1"])
    assert "other recipients" in foreign_problem(sealed, ["fp-c"], ["db1"])
    assert "'db1'" in foreign_problem(sealed, ["fp-a"], ["db2"])
    assert foreign_problem({"host": "x", "encryption": None}, [], ["db1"]) is None


def test_an_inconclusive_remote_verify_keeps_the_bad_verdict_and_its_cause():
    from pgdrill.offsite_sets import remote_record
    from pgdrill.sets import verified

    at = datetime(2026, 12, 4, 2, 0, tzinfo=timezone.utc)
    damaged = {"name": "remote checksum shop_db.dump", "ok": False, "detail": "sha256 differs", "blame": "set"}
    bad = remote_record({"checks": [damaged], "restored": False}, at, None)
    could_not = {"name": "download", "ok": False, "detail": "endpoint unreachable", "blame": "environment"}
    later = remote_record({"checks": [could_not], "restored": False}, at, bad)
    again = remote_record({"checks": [could_not], "restored": False}, at, later)
    assert verified(bad) == verified(later) == verified(again) == "failed"
    assert bad["problem"] == later["problem"] == again["problem"] == "remote checksum shop_db.dump: sha256 differs"


DIR = f"shop_db_{STAMP}_utc.dir"
MEMBERS = [{"name": "toc.dat.zst", "size": 10, "sha256": "a" * 64}, {"name": "3417.dat.zst", "size": 5, "sha256": "b" * 64}]
DIR_ENTRY = {"name": DIR, "kind": "db", "format": "directory", "size": 15, "sha256": "c" * 64, "members": MEMBERS}


@pytest.mark.parametrize("name, ok", [(f"{DIR}/toc.dat.zst", True), (f"{DIR}/a/b", False), (f"{DIR}/.x", False), ("notes/toc.dat", False), (f"{DIR}/", False)])
def test_a_member_of_a_directory_dump_is_an_object_one_level_down_and_no_deeper(name, ok):
    from pgdrill.storage import is_object_name

    assert is_object_name(name) is ok


def test_a_directory_dump_is_one_file_of_its_remote_set_whatever_its_members():
    members = [f"{DIR}/toc.dat.zst", f"{DIR}/3417.dat.zst"]
    foreign = [f"other_db_{STAMP}_utc.dir/toc.dat.zst", f"shop_db_{STAMP}_utc.dump/x", "notes/readme"]
    (debris,) = remote_sets(members + foreign + [GLOBALS], "shop")
    assert not debris.complete and [f.name for f in debris.files] == [DIR, GLOBALS] and debris.objects == sorted(members + [GLOBALS])
    (whole,) = remote_sets(members + [GLOBALS, MANIFEST], "shop")
    assert whole.complete and whole.manifest == MANIFEST and len(whole.objects) == 4
    # The members go up first, in name order, the manifest last.
    assert upload_order([MANIFEST, GLOBALS, *members]) == sorted(members) + [GLOBALS, MANIFEST]


def test_a_remote_directory_dump_is_checked_member_by_member_against_the_manifest():
    where = "s3://b/p"
    good = {f"{DIR}/{m['name']}": RemoteObject(f"{DIR}/{m['name']}", m["size"], m["sha256"]) for m in MEMBERS}
    assert remote_set_problems([DIR_ENTRY], good, where) == []
    damaged = dict(good, **{f"{DIR}/3417.dat.zst": RemoteObject(f"{DIR}/3417.dat.zst", 5, "d" * 64), f"{DIR}/extra.dat": RemoteObject(f"{DIR}/extra.dat", 1)})
    del damaged[f"{DIR}/toc.dat.zst"]
    assert remote_set_problems([DIR_ENTRY], damaged, where) == [
        f"{where}/{DIR}/toc.dat.zst is missing",
        f"{where}/{DIR}/3417.dat.zst was stored with sha256 {'d' * 64}, the manifest says {'b' * 64}",
    ]
    # An object the manifest does not list (rclone's leftover of a killed upload, anyone's) is not
    # part of the set: the set stays whole, as a pull reads only the listed members.
    leftover = f"{DIR}/3417.dat.zst.0123abcd.partial"
    assert remote_set_problems([DIR_ENTRY], dict(good, **{leftover: RemoteObject(leftover, 3)}), where) == []
    # One object under the directory's own name (planted, or written by something else) is not the set's members.
    flat = {DIR: RemoteObject(DIR, 15)}
    assert remote_set_problems([DIR_ENTRY], flat, where) == [
        f"{where}/{DIR} is one object, not the folder of members the manifest lists",
        f"{where}/{DIR}/3417.dat.zst is missing",
        f"{where}/{DIR}/toc.dat.zst is missing",
    ]
    assert offsite_sets.manifest_digests([DIR_ENTRY]) == {f"{DIR}/toc.dat.zst": "a" * 64, f"{DIR}/3417.dat.zst": "b" * 64}
