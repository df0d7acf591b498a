"""encrypt_recipients parsing, argument lists, fingerprints, keyless header checks: pure rules."""

import base64
import os

import pytest
from hypothesis import example, given, strategies as st

from pgdrill.encryption import (
    age_error_line,
    check_identity,
    decrypt_argv,
    encrypt_argv,
    encrypted_name,
    explain_age_failure,
    find_age,
    header_problem,
    identity_problem,
    manifest_entry,
    parse_recipients,
    recipient_fingerprint,
    recipient_problem,
    redact,
)
from pgdrill.errors import PgdrillError
from pgdrill.naming import parse_file_name

# Public keys printed by age-keygen (public, so fine to keep in a test).
R1 = "age1cawmgtflnewv54pxl3trv0wxf2yypnm4apcf830sc6l55mucz9hq9rl3ht"
R2 = "age13l6z2s3qtchyy2c6cypg7xgztazeg4jwq7utm743qs2m4qyln4pssqrjlp"
SECRET = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"


@pytest.mark.parametrize("value", [R1, f" {R1} ", f"{R1},{R2}", f"{R1}, {R2}", f"{R1}\n{R2}", f"{R1}\t,\n {R2} ,"])
def test_recipients_split_on_commas_and_whitespace(value):
    expected = [R1, R2] if R2 in value else [R1]
    assert parse_recipients(value) == expected


def test_duplicates_are_dropped_in_order():
    assert parse_recipients(f"{R2} {R1} {R2}") == [R2, R1]


def test_recipients_file_with_comments(tmp_path):
    path = tmp_path / "recipients.txt"
    path.write_text(f"# drill key on staging\n{R1}\n\n   # escrow, offline\n{R2}  # trailing comment\n")
    assert parse_recipients(f"@{path}") == [R1, R2]
    assert parse_recipients(f"{R2}, @{path}") == [R2, R1]


def test_relative_recipients_file_needs_a_base_dir(tmp_path):
    (tmp_path / "keys.txt").write_text(R1 + "\n")
    assert parse_recipients("@keys.txt", base_dir=str(tmp_path)) == [R1]
    with pytest.raises(PgdrillError, match="absolute path"):
        parse_recipients("@keys.txt")


@pytest.mark.parametrize(
    "value, words",
    [
        ("", "empty"),
        ("  , ", "empty"),
        ("age1bad", "not an age recipient"),
        (R1[:-1] + ("q" if R1[-1] != "q" else "p"), "checksum does not match"),
        (R1.upper(), "lower case"),
        ("ssh-ed25519", "SSH key"),
        ("hello", "start with age1"),
        ("@", "followed by a file name"),
    ],
)
def test_bad_values_are_refused_naming_the_value(value, words):
    with pytest.raises(PgdrillError) as caught:
        parse_recipients(value)
    assert words in caught.value.problem and "encrypt_recipients" in caught.value.problem
    assert caught.value.fix  # every refusal says what to write instead
    if value.strip(" ,") and value != "@":
        assert repr(value) in caught.value.problem


def test_one_bad_token_among_good_ones_fails_the_whole_value():
    with pytest.raises(PgdrillError, match="'age1typo'"):
        parse_recipients(f"{R1}, age1typo, {R2}")


def test_a_secret_key_is_refused_and_never_echoed(tmp_path):
    with pytest.raises(PgdrillError) as caught:
        parse_recipients(SECRET)
    assert "secret key" in caught.value.problem and SECRET not in caught.value.message
    path = tmp_path / "identity.txt"
    path.write_text(f"# created: 2026-11-27\n# public key: {R1}\n{SECRET}\n")
    with pytest.raises(PgdrillError) as caught:
        parse_recipients(f"@{path}")
    assert "line 3" in caught.value.problem and SECRET not in caught.value.message


def test_recipients_file_missing_or_empty(tmp_path):
    with pytest.raises(PgdrillError, match="does not exist"):
        parse_recipients(f"@{tmp_path}/nope.txt")
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    with pytest.raises(PgdrillError, match="names no recipient"):
        parse_recipients(f"@{tmp_path}/empty.txt")
    (tmp_path / "bad.txt").write_text(f"{R1}\nage1oops\n")
    with pytest.raises(PgdrillError, match="bad.txt line 2: 'age1oops'"):
        parse_recipients(f"@{tmp_path}/bad.txt")


def test_plugin_recipients_are_named_as_such():
    # A well-formed bech32 string with a longer human-readable part, as age plugins use.
    from pgdrill.encryption import _BECH32_CHARSET, _bech32_polymod

    hrp, data = "age1yubikey", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    polymod = _bech32_polymod(expanded + data + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    token = hrp + "1" + "".join(_BECH32_CHARSET[d] for d in data + checksum)
    assert "plugin recipient" in recipient_problem(token)


@given(st.text(max_size=80))
@example(R1)
@example(f"{R1}, {R2}")
@example(f"# escrow\n{R2}\n")
@example("age1nope")
@example("")
def test_anything_parsed_is_a_valid_recipient(text):
    try:
        found = parse_recipients(text)
    except PgdrillError:
        return
    assert found and all(recipient_problem(r) is None for r in found)


def test_argv_for_both_directions():
    assert encrypt_argv([R1, R2], age="/usr/bin/age") == ["/usr/bin/age", "--encrypt", "-r", R1, "-r", R2]
    assert decrypt_argv("/etc/pgdrill/drill.key") == ["age", "--decrypt", "-i", "/etc/pgdrill/drill.key"]
    assert decrypt_argv("/k", "/b/x.dump.age") == ["age", "--decrypt", "-i", "/k", "--", "/b/x.dump.age"]
    with pytest.raises(ValueError):
        encrypt_argv([])
    with pytest.raises(ValueError):
        encrypt_argv(["age1nope"])


def test_fingerprints_are_short_stable_and_distinct():
    assert recipient_fingerprint(R1) == recipient_fingerprint(R1)
    assert recipient_fingerprint(R1) != recipient_fingerprint(R2)
    assert recipient_fingerprint(R1).startswith("sha256:") and len(recipient_fingerprint(R1)) == 7 + 16
    entry = manifest_entry([R1, R2])
    assert entry == {"method": "age", "format": "age-encryption.org/v1", "recipients": [recipient_fingerprint(R1), recipient_fingerprint(R2)]}
    assert R1 not in str(entry)


def test_encrypted_files_keep_the_engine_naming():
    name = encrypted_name("shop_db_20261126_021500_utc.dump.zst")
    assert name == "shop_db_20261126_021500_utc.dump.zst.age"
    assert parse_file_name(name).ext == "dump.zst.age"
    assert parse_file_name(encrypted_name("shop_globals_20261126_021500_utc.sql")).kind == "globals"
    assert parse_file_name("shop_manifest_20261126_021500_utc.json.age") is None  # manifests stay readable


def _stanza(kind=b"X25519", body=b"x" * 43):
    return b"-> " + kind + b" " + base64.b64encode(b"\1" * 32).rstrip(b"=") + b"\n" + body + b"\n"


MAC = base64.b64encode(b"\2" * 32).rstrip(b"=")


def _header(*stanzas, mac=MAC):
    return b"age-encryption.org/v1\n" + b"".join(stanzas) + b"--- " + mac + b"\n"


def test_header_of_two_recipients_parses():
    data = _header(_stanza(), _stanza()) + os.urandom(64)
    header, problem = header_problem(data)
    assert problem is None and header.stanzas == ["X25519", "X25519"] and header.recipients == 2
    assert header.length == len(data) - 64


def test_header_with_a_long_stanza_body():
    body = b"A" * 64 + b"\n" + b"B" * 10
    header, problem = header_problem(_header(_stanza(body=body)) + os.urandom(40))
    assert problem is None and header.recipients == 1


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"PGDMP\x01\x0e", "not an age file"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "ASCII-armored"),
        (b"age-encryption.org/v1\n-> X25519 abc\n", "truncated age header"),
        (_header(), "without any recipient stanza"),
        (_header(_stanza(), mac=b"short"), "MAC line is malformed"),
        (_header(_stanza(body=b"not base64!")), "not base64"),
        (_header(_stanza()), "no encrypted payload"),
        (b"age-encryption.org/v1\nhello\n", "neither a stanza nor the MAC"),
    ],
)
def test_damaged_headers_are_named(data, words):
    header, problem = header_problem(data)
    assert header is None and words in problem


def test_pipeline_errors_show_ages_message_not_its_trailer():
    from pgdrill.pipeline import last_line

    stderr = 'age: error: malformed recipient "age1x"\nage: report unexpected or unhelpful errors at https://filippo.io/age/report\n'
    assert last_line(stderr) == 'age: error: malformed recipient "age1x"'


def test_age_error_line_skips_the_bug_report_line():
    stderr = "age: error: no identity matched any of the recipients\nage: report unexpected or unhelpful errors at https://filippo.io/age/report\n"
    assert age_error_line(stderr) == "no identity matched any of the recipients"
    assert redact(f"bad {SECRET} here") == "bad AGE-SECRET-KEY-1...(secret, not shown) here"


@pytest.mark.parametrize(
    "said, words, damaged",
    [
        # A key that is not a recipient proves nothing about the file: never "damaged".
        ("no identity matched any of the recipients", "not one of the recipients", False),
        ("failed to decrypt and authenticate payload chunk", "damaged or truncated", True),
        ("failed to read header: parsing age header: unexpected intro", "not an intact age file", True),
        ("reading identity file: open /k/drill.key: permission denied", "could not use identity", False),
    ],
)
def test_age_failures_are_explained(said, words, damaged):
    problem, fix, proven_bad = explain_age_failure(f"age: error: {said}\nage: report unexpected\n", "/k/drill.key", "/b/x.dump.age")
    assert words in problem and fix
    assert "/b/x.dump.age" in problem or "identity file" in said
    assert proven_bad is damaged


def test_identity_file_checks(tmp_path):
    assert "does not exist" in identity_problem(str(tmp_path / "nope"))
    (tmp_path / "pub").write_text(R1 + "\n")
    assert "not an identity" in identity_problem(str(tmp_path / "pub"))
    (tmp_path / "id").write_text(f"# public key: {R1}\n{SECRET}\n")
    assert identity_problem(str(tmp_path / "id")) is None


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o620, 0o660, 0o666])
def test_an_identity_file_others_can_read_or_write_is_refused_as_ssh_refuses_its_keys(tmp_path, mode):
    path = tmp_path / "drill.key"
    path.write_text(f"# public key: {R1}\n{SECRET}\n")
    path.chmod(mode)
    with pytest.raises(PgdrillError) as caught:
        check_identity(str(path))
    assert f"mode {mode:04o}" in caught.value.problem and str(path) in caught.value.problem
    assert caught.value.fix.startswith(f"chmod 600 {path}") and SECRET not in caught.value.message
    for private in (0o600, 0o400):
        path.chmod(private)
        assert check_identity(str(path)) == str(path)


def test_find_age_says_how_to_install(tmp_path):
    with pytest.raises(PgdrillError) as caught:
        find_age(path_env=str(tmp_path))
    assert "apt install age" in caught.value.fix
