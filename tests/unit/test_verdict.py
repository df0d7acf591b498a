"""What a verification record concludes about its set (pure): only a check that blames the set's own
bytes makes it bad; a check that could not run keeps the last conclusive verdict."""

from datetime import datetime, timezone

import pytest

from pgdrill import verdict
from pgdrill.manifest import build_verification
from pgdrill.archives import archive_damage

NOW = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
OK = {"name": "checksum a", "ok": True, "detail": ""}
SET_BAD = {"name": "checksum a", "ok": False, "detail": "sha256 differs", "blame": "set"}
NO_KEY = {"name": "archive a", "ok": False, "detail": "could not verify: no identity matched", "blame": "environment"}


@pytest.mark.parametrize(
    "checks, expected",
    [
        ([OK], "passed"),
        ([OK, NO_KEY], "inconclusive"),
        ([OK, SET_BAD], "bad"),
        ([NO_KEY, SET_BAD], "bad"),
        # Records of older versions: no blame; a checksum or manifest failure proves the bytes bad.
        ([{"name": "checksum a", "ok": False}], "bad"),
        ([{"name": "manifest", "ok": False}], "bad"),
        ([{"name": "restore", "ok": False}], "inconclusive"),
        ([{"name": "archive a", "ok": False}], "inconclusive"),
    ],
)
def test_the_verdict_of_checks(checks, expected):
    assert verdict.of_checks(checks) == expected


def test_an_inconclusive_run_keeps_the_last_conclusive_verdict():
    passed = build_verification([OK], restored=True, checked_at=NOW)
    assert passed["verdict"] == "passed" and passed["ok"] is True
    blocked = build_verification([OK, NO_KEY], restored=False, checked_at=NOW, previous=passed)
    assert blocked["ok"] is False and blocked["verdict"] == "inconclusive"
    assert verdict.conclusive(blocked) == {"verdict": "passed", "restored": True, "checked_at": passed["checked_at"]}
    assert verdict.could_not_verify(blocked) == NO_KEY["detail"]
    # Twice inconclusive: still the same conclusive verdict.
    again = build_verification([NO_KEY], restored=False, checked_at=NOW, previous=blocked)
    assert verdict.conclusive(again)["verdict"] == "passed"
    # A bad verdict is replaced only by another conclusive one.
    bad = build_verification([SET_BAD], restored=False, checked_at=NOW, previous=again)
    assert verdict.conclusive(build_verification([NO_KEY], restored=False, checked_at=NOW, previous=bad))["verdict"] == "bad"
    # Never verified conclusively: nothing to keep.
    assert verdict.conclusive(build_verification([NO_KEY], restored=False, checked_at=NOW)) is None


@pytest.mark.parametrize(
    "record", [None, "x", {}, {"ok": "yes"}, {"verdict": "maybe", "checks": "x"}, {"verdict": "inconclusive", "last_conclusive": "passed"}]
)
def test_damaged_records_conclude_nothing(record):
    assert verdict.conclusive(record) is None


@pytest.mark.parametrize(
    "stderr, damaged",
    [
        ("pg_restore: error: did not find magic string in file header", True),
        ("pg_restore: error: could not read from input file: end of file", True),
        ("/*stdin*\\ : Decoding error (36) : Restored data doesn't match checksum", True),
        ("zstd: /*stdin*\\ : unexpected end of file", True),
        ('pg_restore: error: connection to server on socket "/tmp/x" failed: No such file or directory', False),
        ("pg_restore: error: could not execute query: ERROR:  permission denied to create database", False),
        ("pg_restore: error: unsupported version (1.16) in file header", False),
    ],
)
def test_what_proves_an_archive_damaged(stderr, damaged):
    assert (archive_damage(stderr) is not None) is damaged


def test_failure_words_name_a_check_that_blames_the_set_and_never_blame_it_otherwise():
    environment = {"name": "restore", "ok": False, "detail": "cannot connect", "blame": "environment"}
    damaged = {"name": "checksum shop_db.dump", "ok": False, "detail": "sha256 differs", "blame": "set"}
    passed = {"name": "manifest", "ok": True, "detail": "ok"}
    assert verdict.failure_words("shop_1", [passed]) is None
    text, blames = verdict.failure_words("shop_1", [passed, environment, damaged])
    assert blames and text == "backup set shop_1 failed verification: checksum shop_db.dump: sha256 differs"
    text, blames = verdict.failure_words("shop_1", [passed, environment])
    assert not blames and text == "backup set shop_1 could not be verified (the set is not blamed): restore: cannot connect"
