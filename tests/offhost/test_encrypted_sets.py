"""Encrypted backup sets end to end through pgdrill-backup: the pipeline encrypts before anything
reaches the disk, the manifest stays readable without a key, keyless and keyed verification, and
every way decryption can go wrong is named."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pgdrill.encryption import recipient_fingerprint


@pytest.fixture
def sealed(backup_env, keys, tmp_path):
    """The sample database's series, encrypted to the drill key and the escrow key, with media."""
    media = tmp_path / "media"
    (media / "uploads").mkdir(parents=True)
    (media / "uploads" / "logo.png").write_bytes(os.urandom(5000))
    (media / "notes.txt").write_text("hello\n")
    backup_env.rewrite(encrypt_recipients=f"{keys['drill'][1]}, {keys['escrow'][1]}", media_root=str(media))
    return backup_env


def age_decrypt(identity, path):
    return subprocess.run(["age", "--decrypt", "-i", identity, path], check=True, capture_output=True).stdout


def test_every_file_of_an_encrypted_set_is_age_and_the_manifest_needs_no_key(sealed, keys):
    sealed.run("--db", "--media")
    names = sealed.files()
    data = [name for name in names if "_manifest_" not in name and not name.startswith(".")]
    assert data and all(name.endswith(".age") for name in data), names
    document = sealed.manifests()[0]
    assert document["encryption"]["method"] == "age"
    assert document["encryption"]["recipients"] == [recipient_fingerprint(keys["drill"][1]), recipient_fingerprint(keys["escrow"][1])]
    assert document["client"]["toc_entries"] > 10  # pg_restore --list read the plaintext as it streamed past
    for name in data:
        raw = open(os.path.join(sealed.backup_dir, name), "rb").read(200)
        assert raw.startswith(b"age-encryption.org/v1\n")
        assert os.stat(os.path.join(sealed.backup_dir, name)).st_mode & 0o777 == 0o600
    # The Debian age CLI is the oracle: each key alone decrypts; the plaintexts are what they claim.
    globals_name = next(name for name in data if "_globals_" in name)
    assert b"CREATE ROLE" in age_decrypt(keys["escrow"][0], os.path.join(sealed.backup_dir, globals_name))
    dump_name = next(name for name in data if "_db_" in name)
    plain = age_decrypt(keys["drill"][0], os.path.join(sealed.backup_dir, dump_name))
    if dump_name.endswith(".zst.age"):
        plain = subprocess.run(["zstd", "-dcq"], input=plain, check=True, capture_output=True).stdout
    assert plain.startswith(b"PGDMP")


def test_keyless_verify_checks_checksums_and_headers_and_says_what_it_did_not(sealed):
    sealed.run("--db", "--media")
    done = sealed.run("verify")
    assert "age header" in done.stdout and "not tried: no encrypt_identity_file" in done.stdout
    assert "FAILED" not in done.stdout


def test_verify_with_the_identity_decrypts_lists_and_restores(sealed, keys):
    sealed.run("--db", "--media")
    sealed.rewrite(encrypt_recipients=keys["drill"][1], encrypt_identity_file=keys["escrow"][0], media_root="/nonexistent")
    done = sealed.run("verify", "--restore")
    assert "decrypted with the identity" in done.stdout and "tar read" in done.stdout
    assert "ok      fingerprint" in done.stdout and "ok      row counts" in done.stdout


def test_wrong_identity_fails_by_name(sealed, keys):
    sealed.run()
    sealed.rewrite(encrypt_recipients=keys["drill"][1], encrypt_identity_file=keys["stranger"][0])
    done = sealed.run("verify", "--restore", check=1)
    assert "not one of the recipients" in done.stdout, done.stdout


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_ciphertext_fails_verify_even_when_the_manifest_is_rewritten_to_match(sealed, keys, damage):
    """A file whose sha256 was forged into the manifest: only age's authentication can tell."""
    import hashlib

    sealed.run()
    dump_name = next(name for name in sealed.files() if "_db_" in name)
    path = os.path.join(sealed.backup_dir, dump_name)
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[: len(data) - 70000] if len(data) > 140000 else data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x40
    open(path, "wb").write(bytes(data))
    manifest_name = next(name for name in sealed.files() if "_manifest_" in name)
    document = json.load(open(os.path.join(sealed.backup_dir, manifest_name)))
    for entry in document["files"]:
        if entry["name"] == dump_name:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(bytes(data)).hexdigest()
    json.dump(document, open(os.path.join(sealed.backup_dir, manifest_name), "w"))
    sealed.rewrite(encrypt_recipients=keys["drill"][1], encrypt_identity_file=keys["drill"][0])
    done = sealed.run("verify", "--restore", check=1)
    assert "damaged or truncated" in done.stdout, done.stdout


def test_recipients_that_do_not_parse_refuse_the_configuration(backup_env, tmp_path):
    backup_env.rewrite(encrypt_recipients="age1notakey")
    done = backup_env.run(check=2)
    assert "encrypt_recipients" in done.stderr and backup_env.files() == []
    backup_env.rewrite(encrypt_recipients=f"@{tmp_path}/missing-recipients.txt")
    done = backup_env.run(check=2)
    assert "does not exist" in done.stderr and backup_env.files() == []


def _held_pg_restore_bin(pg, tmp_path):
    """A pg_bin_dir whose pg_restore, when run with parallel jobs (the restore that reads a decoded
    work file), says so in a marker file and waits: the moment a real kill -9 is sent."""
    bindir = tmp_path / "held-bin"
    bindir.mkdir()
    for name in os.listdir(pg.bindir):
        if name != "pg_restore":
            os.symlink(os.path.join(pg.bindir, name), bindir / name)
    marker = tmp_path / "pg_restore-started"
    script = bindir / "pg_restore"
    script.write_text(f'#!/bin/sh\ncase "$*" in *--jobs=*) echo "$*" > {marker}; sleep 60;; esac\nexec {pg.bin("pg_restore")} "$@"\n')
    script.chmod(0o755)
    return str(bindir), marker


def _kill_when_restoring(config, marker, *args):
    import signal
    import sys
    import time

    from helpers import cli_env

    process = subprocess.Popen([sys.executable, "-m", "pgdrill.cli", "--config", config, *args], env=cli_env(), start_new_session=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"pg_restore never started (exit {process.poll()})"
    os.kill(process.pid, signal.SIGKILL)  # the run itself, as the OOM killer or an operator would
    process.wait()
    os.killpg(process.pid, signal.SIGKILL)  # then the programs it left, so nothing holds a file open
    return marker.read_text()


def _plaintext_left(root, keys):
    """Regular files under ``root`` that are not age ciphertext nor pgdrill's own lock files."""
    found = []
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            if name == ".in-use" or name.endswith(".lock") or not os.path.isfile(path) or os.path.getsize(path) == 0:
                continue
            with open(path, "rb") as handle:
                if not handle.read(30).startswith(b"age-encryption.org/v1") and "_manifest_" not in name and "_verify_" not in name:
                    found.append(path)
    return found


@pytest.mark.parametrize("where", ["local", "remote"])
def test_kill_9_of_verify_restore_leaves_no_plaintext_and_the_next_run_removes_its_work_directory(sealed, keys, tmp_path, where, request):
    """Issue 18 item 7 (E8/E9): the decoded archive a parallel restore needs never outlives the run,
    and its private directory (or the pulled set's) goes with the next run of the series."""
    pg = sealed.cluster
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    settings = dict(encrypt_recipients=keys["drill"][1], encrypt_identity_file=keys["drill"][0], work_dir=str(work), restore_jobs=2)
    if where == "remote":
        from test_disaster_recovery import remote_settings

        aws_env = request.getfixturevalue("aws_env")
        settings.update(remote_settings(aws_env, request.getfixturevalue("bucket")))
    sealed.rewrite(**settings)
    sealed.run()
    bindir, marker = _held_pg_restore_bin(pg, tmp_path)
    sealed.rewrite(pg_bin_dir=bindir, **settings)
    args = ["verify", "--restore"] + (["--remote"] if where == "remote" else [])
    argv = _kill_when_restoring(sealed.config, marker, *args)
    assert "--jobs=2" in argv
    left = _plaintext_left(work, keys) + _plaintext_left(sealed.backup_dir, keys)
    assert not left, f"plaintext left after kill -9: {left}"
    for name in os.listdir(work):
        assert os.stat(work / name).st_mode & 0o777 == 0o700, name  # private, whatever is left
    os.unlink(os.path.join(bindir, "pg_restore"))
    os.symlink(pg.bin("pg_restore"), os.path.join(bindir, "pg_restore"))
    done = sealed.run(*args)
    assert "FAILED" not in done.stdout, done.stdout
    assert [name for name in os.listdir(work) if name.startswith(".pgdrill-")] == [], os.listdir(work)
    for name in pg.psql("SELECT datname FROM pg_database WHERE datname LIKE 'pgdrill%'").split():
        pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # the killed run's scratch database


def _tree(root):
    """{relative path: bytes or link target or 'dir'} of everything under ``root``."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[rel] = "dir"
            else:
                found[rel] = open(path, "rb").read()
    return found


def test_an_encrypted_series_with_gzip_verifies_and_restores_its_media(sealed, keys, tmp_path):
    """compression = gzip and encryption: the media archive is .tar.gz.age; verify decrypts and
    gunzips it and reads every member, restore-media brings back the same files."""
    media = tmp_path / "media"
    os.symlink("notes.txt", media / "link-to-notes")
    sealed.rewrite(encrypt_recipients=keys["drill"][1], encrypt_identity_file=keys["drill"][0], media_root=str(media), compression="gzip")
    sealed.run("--db", "--media")
    (archive,) = [name for name in sealed.files() if "_media_" in name]
    assert archive.endswith(".tar.gz.age"), archive
    done = sealed.run("verify", "--restore")
    assert "FAILED" not in done.stdout and "tar read 5 members" in done.stdout, done.stdout  # media, uploads, logo.png, notes.txt, the link
    target = tmp_path / "restored"
    sealed.run("restore-media", "--to", str(target))
    restored = target / "media" if os.listdir(target) == ["media"] else target  # DIR/media or DIR (issue 18 item 16 decides)
    assert _tree(restored) == _tree(media)
