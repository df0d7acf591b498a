"""age encryption for real: a pg_dump stream through zstd and age, with the Debian age CLI as the
oracle in both directions, several recipients, wrong keys and damaged ciphertext."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from offhost_helpers import NAME, dump_env, encrypt_dump
from pgdrill.encryption import check_identity, decrypt_to, read_header
from pgdrill.errors import PgdrillError
from pgdrill.fsio import AtomicWriter
from pgdrill.pipeline import child_env, stream


def oracle_decrypt(identity, source, target):
    """The Debian age CLI, on its own."""
    return subprocess.run(["age", "--decrypt", "-i", identity, "-o", str(target), str(source)], capture_output=True, text=True)


def pg_restore_list(pg, path):
    done = subprocess.run([pg.bin("pg_restore"), "--list", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_pg_dump_zstd_age_stream_is_decrypted_by_the_age_cli(pg, sample_db, keys, tmp_path):
    path, writer = encrypt_dump(pg, sample_db, tmp_path, [keys["drill"][1]])
    data = open(path, "rb").read()
    assert data.startswith(b"age-encryption.org/v1\n") and b"PGDMP" not in data
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert writer.sha256 == sha256(path) and writer.size == len(data)  # the manifest's ciphertext sha256 and size
    assert read_header(path).stanzas == ["X25519"]  # keyless verify
    assert not [n for n in os.listdir(tmp_path) if ".part-" in n]
    oracle = oracle_decrypt(keys["drill"][0], path, tmp_path / "plain.dump.zst")
    assert oracle.returncode == 0, oracle.stderr
    subprocess.run(["zstd", "-q", "-d", str(tmp_path / "plain.dump.zst"), "-o", str(tmp_path / "plain.dump")], check=True)
    listing = pg_restore_list(pg, tmp_path / "plain.dump")
    assert "TABLE DATA public" in listing


def test_pgdrill_decrypts_what_the_age_cli_wrote_straight_into_pg_restore(pg, sample_db, keys, tmp_path):
    plain = tmp_path / "plain.dump"
    subprocess.run([pg.bin("pg_dump"), "--format=custom", "-f", str(plain)], env=dump_env(pg, sample_db), check=True)
    cipher = tmp_path / "by-age-cli.dump.age"
    subprocess.run(["age", "--encrypt", "-r", keys["escrow"][1], "-o", str(cipher), str(plain)], check=True)
    with AtomicWriter(str(tmp_path), "decrypted.dump") as writer:
        decrypt_to(str(cipher), keys["escrow"][0], writer.write, child_env())
        writer.commit()
    assert writer.sha256 == sha256(plain)
    out = []
    # pg_restore --list closes the pipe after the table of contents: a head read.
    decrypt_to(str(cipher), keys["escrow"][0], out.append, child_env(), then=[[pg.bin("pg_restore"), "--list"]], head_read=True)
    assert b"".join(out).decode() == pg_restore_list(pg, plain)


def test_two_recipients_each_decrypt_alone(pg, sample_db, keys, tmp_path):
    path, writer = encrypt_dump(pg, sample_db, tmp_path, [keys["drill"][1], keys["escrow"][1]], compress=False)
    assert read_header(path).recipients == 2
    digests = set()
    for name in ("drill", "escrow"):
        target = tmp_path / f"by-{name}.dump"
        oracle = oracle_decrypt(keys[name][0], path, target)
        assert oracle.returncode == 0, oracle.stderr
        digests.add(sha256(target))
        with AtomicWriter(str(tmp_path), f"pgdrill-{name}.dump") as mine:
            decrypt_to(path, keys[name][0], mine.write, child_env())
            mine.commit()
        digests.add(mine.sha256)
    assert len(digests) == 1
    assert "TABLE DATA public" in pg_restore_list(pg, tmp_path / "by-drill.dump")


def test_wrong_identity_fails_naming_it_and_keeps_nothing(pg, sample_db, keys, tmp_path):
    path, _ = encrypt_dump(pg, sample_db, tmp_path, [keys["drill"][1]])
    out = tmp_path / "out"
    out.mkdir()
    writer = AtomicWriter(str(out), "restored.dump.zst")
    with pytest.raises(PgdrillError) as caught:
        with writer:
            decrypt_to(path, keys["stranger"][0], writer.write, child_env())
            writer.commit()
    assert keys["stranger"][0] in caught.value.problem and "not one of the recipients" in caught.value.problem
    assert caught.value.details["rc"] == 1
    assert os.listdir(out) == []
    with pytest.raises(PgdrillError, match="holds recipients .public keys., not an identity"):
        pub = tmp_path / "drill.pub"
        pub.write_text(keys["drill"][1] + "\n")
        check_identity(str(pub))


def _downstream_ignores_damage(keys, damaged):
    """The danger this guards against: in the plain shell pipe `age -d FILE | cat`, the program
    after age reads the good prefix to its end and exits 0 while age exits 1."""
    age = subprocess.Popen(["age", "--decrypt", "-i", keys["drill"][0], str(damaged)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    after = subprocess.run(["cat"], stdin=age.stdout, capture_output=True)
    age.stdout.close()
    age.wait()
    return age.returncode, after.returncode, len(after.stdout)


@pytest.mark.parametrize("damage", ["truncated", "bit flipped"])
def test_damaged_ciphertext_fails_even_when_the_next_program_did_not_notice(pg, sample_db, keys, tmp_path, damage):
    path, _ = encrypt_dump(pg, sample_db, tmp_path, [keys["drill"][1]], compress=False)
    data = bytearray(open(path, "rb").read())
    assert len(data) > 200_000  # several 64 KiB chunks
    if damage == "truncated":
        data = data[:-100]
    else:
        data[-1000] ^= 0x01  # inside the last chunk: everything before it decrypts
    damaged = tmp_path / "damaged.dump.age"
    damaged.write_bytes(bytes(data))
    assert read_header(str(damaged)).recipients == 1  # the header alone cannot tell; the manifest's sha256 does
    age_rc, cat_rc, prefix = _downstream_ignores_damage(keys, damaged)
    assert (age_rc, cat_rc) == (1, 0) and prefix > 100_000
    for then, head_read in (([["cat"]], False), ([["cat"]], True), ([[pg.bin("pg_restore"), "-f", "-"]], False)):
        with pytest.raises(PgdrillError) as caught:
            decrypt_to(str(damaged), keys["drill"][0], lambda data: None, child_env(), then=then, head_read=head_read)
        assert "damaged or truncated" in caught.value.problem and str(damaged) in caught.value.problem, caught.value.message
        assert caught.value.details["rc"] == 1
    out = tmp_path / "out"
    out.mkdir()
    writer = AtomicWriter(str(out), "restored.dump")
    with pytest.raises(PgdrillError, match="damaged or truncated"):
        with writer:
            decrypt_to(str(damaged), keys["drill"][0], writer.write, child_env())
            writer.commit()
    assert writer.size > 100_000 and os.listdir(out) == []  # age wrote a plaintext prefix; none of it was kept


def test_encrypting_stage_failure_stops_the_backup(pg, sample_db, keys, tmp_path):
    """age refusing to run (here: a recipient it cannot parse slipped past) fails the pipeline."""
    commands = [[pg.bin("pg_dump"), "--format=custom"], ["age", "--encrypt", "-r", "age1notarecipient"]]
    writer = AtomicWriter(str(tmp_path), NAME)
    with pytest.raises(PgdrillError, match='age exited with 1: age: error: malformed recipient "age1notarecipient"'):
        with writer:
            stream(commands, writer.write, dump_env(pg, sample_db), "pg_dump")
            writer.commit()
    assert os.listdir(tmp_path) == []
