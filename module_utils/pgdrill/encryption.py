# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""age encryption as a pipeline stage: recipients, argument lists, headers, and age's failures.

A host holds public keys (recipients) only; an identity (secret key) is needed only where a set is
decrypted. Encryption is a program in the backup pipeline, ``pg_dump | zstd | age -e``, so no
plaintext reaches the disk. The program is the Debian ``age`` CLI (1.1+), run from an argument
list; the host needs no Python package for it.

age's exit status is final. ``age -d`` writes plaintext as it authenticates each 64 KiB chunk and
finds a truncated or damaged file only when it reaches the damage: it then exits 1 *after* the
good prefix went down the pipe. A program after it (pg_restore, tar) may not notice, so:

- a decrypting pipeline succeeds only when age exits 0 (``pipeline.stream`` checks every exit
  code, and :func:`decrypt_to` names age's failure first);
- whatever age wrote before it failed is discarded (the caller's AtomicWriter is aborted);
- a *head read* (``pg_restore --list``, which closes the pipe after the table of contents) stops
  age early and proves nothing about the rest of the file: whole-file integrity comes from the
  sha256 in the manifest (keyless) or from a full decryption (:func:`decrypt_to` with a sink).

Pure functions decide (parsing recipients, building argv, reading a header); the I/O is thin.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from .errors import PgdrillError, SetDamaged
from .pipeline import stream

HEADER_INTRO = b"age-encryption.org/v1"
ARMOR_INTRO = b"-----BEGIN AGE ENCRYPTED FILE-----"
EXTENSION = "age"
METHOD = "age"
# A header is a few hundred bytes per recipient; anything longer than this is not one of ours.
HEADER_LIMIT = 64 * 1024
FINGERPRINT_CHARS = 16

INSTALL_FIX = "install age: apt install age (Debian 12+, Ubuntu 22.04+), or put the age binary on PATH"
# An encrypting stage that failed while a backup streamed through it: the run keeps nothing.
ENCRYPT_FAILED_FIX = f"nothing was kept from this run; read age's message (memory, a signal) and run the backup again; if age is missing: {INSTALL_FIX}"
RECIPIENTS_FIX = (
    "give age public keys (age1..., as age-keygen prints them; 'age-keygen -y IDENTITY' shows an "
    "identity's), separated by commas or spaces, or @/path/to/recipients.txt with one per line"
)
# Identities are secret: never echo one back, in any message.
_SECRET_RE = re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+", re.IGNORECASE)
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
# X25519 recipients: "age" + separator "1" + 52 data characters (32 bytes) + 6 checksum characters.
_X25519_LENGTH = 62


# --- recipients ---------------------------------------------------------------------------------
def _bech32_polymod(values: Sequence[int]) -> int:
    generator = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for index in range(5):
            check ^= generator[index] if (top >> index) & 1 else 0
    return check


def _bech32_valid(text: str) -> bool:
    """True when ``text`` is a well-formed bech32 string (BIP 173 checksum, any length)."""
    hrp, _, data = text.rpartition("1")
    if not hrp or len(data) < 6 or any(char not in _BECH32_CHARSET for char in data):
        return False
    expanded = [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]
    return _bech32_polymod(expanded + [_BECH32_CHARSET.index(char) for char in data]) == 1


def redact(text: str) -> str:
    """``text`` with any age secret key replaced, so that it can be shown."""
    return _SECRET_RE.sub("AGE-SECRET-KEY-1...(secret, not shown)", text)


def recipient_problem(token: str) -> Optional[str]:
    """Why ``token`` is not an age X25519 recipient, or None. Pure."""
    if _SECRET_RE.match(token):
        return "is an age identity (a secret key), not a recipient: the host needs only the public key ('age-keygen -y IDENTITY' prints it)"
    if token.lower().startswith("age1") and token != token.lower():
        return "is not an age recipient: age recipients are lower case"
    if not token.startswith("age1"):
        if token.startswith(("ssh-", "ecdsa-")):
            return "is an SSH key; pgdrill encrypts to age X25519 recipients (age1...) only"
        return "is not an age recipient (they start with age1)"
    if len(token) != _X25519_LENGTH:
        if token.count("1") > 1 and _bech32_valid(token):
            return "is an age plugin recipient; pgdrill encrypts to age X25519 recipients (age1 and 58 characters) only"
        return f"is not an age recipient: it has {len(token)} characters, an age X25519 recipient has {_X25519_LENGTH}"
    if not _bech32_valid(token):
        return "is not an age recipient: its checksum does not match (a typing or copying error?)"
    return None


def split_recipients(value: str) -> List[str]:
    """The tokens of an ``encrypt_recipients`` value: separated by commas and whitespace. Pure."""
    return [token for token in re.split(r"[,\s]+", value.strip()) if token]


def recipients_from_text(text: str, source: str) -> List[str]:
    """Recipients of a recipients file: one per line; blank lines and ``#`` comments ignored.

    Raises PgdrillError naming ``source`` and the line. Pure.
    """
    found: List[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        for token in split_recipients(content):
            problem = recipient_problem(token)
            if problem:
                raise PgdrillError(f"encrypt_recipients: {source} line {number}: {redact(token)!r} {problem}", RECIPIENTS_FIX)
            found.append(token)
    return found


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def parse_recipients(value: Optional[str], base_dir: Optional[str] = None, read: Callable[[str], str] = _read_text) -> List[str]:
    """The recipients an ``encrypt_recipients`` value names, in order, without duplicates.

    ``value`` holds ``age1...`` recipients and ``@FILE`` references (one recipient per line,
    ``#`` comments allowed), separated by commas or whitespace. A relative FILE is taken relative
    to ``base_dir``. Anything that does not parse, an empty value, a file that is missing, empty
    or holds a secret key raises PgdrillError naming the bad value and the fix: a configuration
    that asks for encryption never yields a plaintext backup.
    """
    tokens = split_recipients(value or "")
    if not tokens:
        raise PgdrillError(
            "encrypt_recipients is set but empty: pgdrill will not fall back to a plaintext backup",
            RECIPIENTS_FIX + "; or remove the key to back up unencrypted",
        )
    found: List[str] = []
    for token in tokens:
        if token.startswith("@"):
            path = token[1:]
            if not path:
                raise PgdrillError("encrypt_recipients: '@' must be followed by a file name", RECIPIENTS_FIX)
            if not os.path.isabs(path):
                if base_dir is None:
                    raise PgdrillError(f"encrypt_recipients: recipients file {path!r} must be an absolute path", "write @/full/path/to/recipients.txt")
                path = os.path.join(base_dir, path)
            try:
                text = read(path)
            except FileNotFoundError:
                raise PgdrillError(
                    f"encrypt_recipients: recipients file {path} does not exist", "create it with one age1... recipient per line, or fix the path"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise PgdrillError(
                    f"encrypt_recipients: cannot read recipients file {path}: {reason}", "make it readable by the backup user (it holds public keys only)"
                ) from None
            from_file = recipients_from_text(text, path)
            if not from_file:
                raise PgdrillError(f"encrypt_recipients: recipients file {path} names no recipient", "add at least one age1... recipient, one per line")
            found.extend(from_file)
            continue
        problem = recipient_problem(token)
        if problem:
            raise PgdrillError(f"encrypt_recipients: {redact(token)!r} {problem}", RECIPIENTS_FIX)
        found.append(token)
    unique: List[str] = []
    for recipient in found:
        if recipient not in unique:
            unique.append(recipient)
    return unique


def recipient_fingerprint(recipient: str) -> str:
    """A short, stable name for a recipient in manifests and logs: ``sha256:`` and the first 16
    hex digits of the sha256 of the recipient string. A recipient is public; the fingerprint only
    keeps manifests short and lets a reader match keys without holding the list."""
    return "sha256:" + hashlib.sha256(recipient.encode("ascii")).hexdigest()[:FINGERPRINT_CHARS]


def manifest_entry(recipients: Sequence[str]) -> Dict[str, object]:
    """What a manifest records about a set's encryption: readable without any key."""
    return {"method": METHOD, "format": HEADER_INTRO.decode(), "recipients": [recipient_fingerprint(r) for r in recipients]}


def encrypted_name(name: str) -> str:
    """The file name of an encrypted file: ``.age`` appended (``x_db_..._utc.dump.zst.age``)."""
    return f"{name}.{EXTENSION}"


# --- the age program ----------------------------------------------------------------------------
def find_age(path_env: Optional[str] = None) -> str:
    """The ``age`` program on PATH, or a PgdrillError saying how to install it."""
    found = shutil.which("age", path=path_env)
    if not found:
        raise PgdrillError("age is not installed on this host (pgdrill encrypts and decrypts backups with it)", INSTALL_FIX)
    return found


def encrypt_argv(recipients: Sequence[str], age: str = "age") -> List[str]:
    """The pipeline stage that encrypts its input to every recipient: ``age --encrypt -r R1 -r R2``.

    Recipients are public keys, so they may appear in an argument list. Refuses an empty or
    invalid list (ValueError: a caller's bug), because age with no recipient would not run and a
    caller that skipped the stage would write plaintext.
    """
    if not recipients:
        raise ValueError("encrypt_argv needs at least one recipient")
    argv = [age, "--encrypt"]
    for recipient in recipients:
        problem = recipient_problem(recipient)
        if problem:
            raise ValueError(f"{redact(recipient)!r} {problem}")
        argv += ["-r", recipient]
    return argv


def decrypt_argv(identity_file: str, source: Optional[str] = None, age: str = "age") -> List[str]:
    """The stage that decrypts: ``age --decrypt -i IDENTITY [-- SOURCE]`` (stdin without SOURCE).

    The identity is passed as a file name; the secret key itself never appears in an argument.
    """
    argv = [age, "--decrypt", "-i", identity_file]
    if source is not None:
        argv += ["--", source]
    return argv


def identity_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot serve as an age identity file, or None. Reads the file; shows no secret."""
    try:
        text = _read_text(path)
    except FileNotFoundError:
        return f"identity file {path} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
        return f"cannot read identity file {path}: {reason}"
    if not _SECRET_RE.search(text):
        if "age1" in text:
            return f"{path} holds recipients (public keys), not an identity: decrypting needs the secret key file age-keygen wrote"
        return f"{path} holds no age identity (AGE-SECRET-KEY-1...)"
    return None


def identity_mode_problem(path: str, mode: int) -> Optional[str]:
    """Why a secret key file with permission bits ``mode`` is refused, as ssh refuses its keys:
    any access for group or others. Pure."""
    if mode & 0o077:
        return f"identity file {path} is open to other users (mode {mode & 0o7777:04o}): a secret key must be readable by its owner alone"
    return None


def check_identity(path: str) -> str:
    """``path`` as an absolute path when it holds an age identity only its owner can read; else a
    PgdrillError."""
    problem = identity_problem(path)
    if problem:
        raise PgdrillError(problem, "set encrypt_identity_file to the file age-keygen wrote for one of the set's recipients")
    problem = identity_mode_problem(path, os.stat(path).st_mode)
    if problem:
        raise PgdrillError(problem, f"chmod 600 {path}; if others could read it, treat the key as exposed and rotate it")
    return os.path.abspath(path)


# --- the header: keyless checks -----------------------------------------------------------------
class AgeHeader(NamedTuple):
    stanzas: List[str]  # the type of each recipient stanza, e.g. ["X25519", "X25519"]
    length: int  # bytes up to and including the header's MAC line

    @property
    def recipients(self) -> int:
        return len(self.stanzas)


_B64_RE = re.compile(rb"^[A-Za-z0-9+/]*$")


def _b64_ok(text: bytes) -> bool:
    if not _B64_RE.match(text):
        return False
    try:
        base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        return False
    return True


def header_problem(data: bytes) -> "tuple[Optional[AgeHeader], Optional[str]]":
    """Parse the age v1 header at the start of ``data``: ``(header, None)`` or ``(None, why not)``.

    Checks structure only (version line, ``-> TYPE args`` stanzas with base64 bodies of 64-column
    lines, ``--- MAC``, at least a nonce and one chunk after it); the MAC needs a key. Pure.
    """
    if data.startswith(ARMOR_INTRO):
        return None, "is ASCII-armored age; pgdrill writes binary age files"
    if not data.startswith(HEADER_INTRO + b"\n"):
        if not data:
            return None, "is empty"
        return None, "is not an age file (its first line is not age-encryption.org/v1)"
    position = len(HEADER_INTRO) + 1
    stanzas: List[str] = []
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            return None, "has a truncated age header"
        line = data[position:end]
        position = end + 1
        if line.startswith(b"--- "):
            if not stanzas:
                return None, "has an age header without any recipient stanza"
            mac = line[4:]
            if len(mac) != 43 or not _b64_ok(mac):
                return None, "has a damaged age header (its MAC line is malformed)"
            break
        if not line.startswith(b"-> "):
            return None, "has a damaged age header (a line is neither a stanza nor the MAC)"
        words = line[3:].split(b" ")
        if not words or not words[0] or any(not word for word in words):
            return None, "has a damaged age header (an empty stanza type or argument)"
        stanzas.append(words[0].decode("ascii", "replace"))
        while True:  # the stanza body: full 64-column lines, then one shorter (possibly empty) line
            end = data.find(b"\n", position)
            if end < 0:
                return None, "has a truncated age header"
            body = data[position:end]
            position = end + 1
            if len(body) > 64 or not _b64_ok(body):
                return None, "has a damaged age header (a stanza body is not base64)"
            if len(body) < 64:
                break
    # After the header: a 16-byte nonce and at least one chunk with its 16-byte tag.
    if len(data) - position < 32:
        return None, "is truncated right after its age header (no encrypted payload)"
    return AgeHeader(stanzas, position), None


def read_header(path: str) -> AgeHeader:
    """The age header of a file, checked without any key; a PgdrillError naming the file if it is
    not an intact age header. (Keyless verify: this plus the manifest's sha256 and size.)"""
    try:
        with open(path, "rb") as handle:
            data = handle.read(HEADER_LIMIT + 32)
    except OSError as exc:
        raise PgdrillError(f"cannot read {path}: {exc.strerror}") from None
    header, problem = header_problem(data)
    if header is None:
        raise SetDamaged(f"{path} {problem}", "this file is not an intact pgdrill-encrypted backup; use another set")
    return header


# --- age's failures ------------------------------------------------------------------------------
def age_error_line(stderr: str) -> str:
    """age's own error line (it ends its output with a line asking for bug reports)."""
    for line in stderr.splitlines():
        if line.startswith("age: error:"):
            return redact(line[len("age: error:") :].strip())
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "report unexpected" not in line]
    return redact(lines[-1]) if lines else "(no error output)"


def explain_age_failure(stderr: str, identity_file: Optional[str], subject: str) -> "tuple[str, str, bool]":
    """(problem, fix, damaged) for a failed ``age --decrypt`` of ``subject``. ``damaged`` is true only
    when age proved the file itself bad (it does not authenticate, is truncated, has no intact
    header); a key that does not match says nothing about the file. Pure."""
    said = age_error_line(stderr)
    if "no identity matched" in said:
        return (
            f"{subject} cannot be decrypted with identity {identity_file}: it is not one of the recipients the set was encrypted to",
            "use the identity of one of the recipients in the set's manifest (compare fingerprints), e.g. the escrow key",
            False,
        )
    if "failed to decrypt and authenticate payload chunk" in said or "unexpected EOF" in said or "last chunk" in said:
        return (
            f"{subject} is damaged or truncated: age found it does not authenticate ({said}); whatever was decrypted before that was discarded",
            "use another set or another copy (local or remote); this file cannot be trusted",
            True,
        )
    if "header" in said:
        return (f"{subject} is not an intact age file: {said}", "use another set or another copy; the file is damaged or not encrypted by pgdrill", True)
    if "identity" in said or (identity_file and identity_file in said):
        return (f"age could not use identity {identity_file}: {said}", "set encrypt_identity_file to a readable file age-keygen wrote", False)
    return (f"age could not decrypt {subject}: {said}", "read age's message above", False)


def age_failure(stderr: str, identity_file: Optional[str], subject: str, label: str, details: Dict[str, object]) -> PgdrillError:
    """The error for a failed decryption: SetDamaged when age proved the file bad."""
    problem, fix, damaged = explain_age_failure(stderr, identity_file, subject)
    return (SetDamaged if damaged else PgdrillError)(f"{label} failed: {problem}", fix, **details)


def decrypt_to(
    source: str,
    identity_file: str,
    sink: Callable[[bytes], None],
    env: Dict[str, str],
    then: Sequence[Sequence[str]] = (),
    age: Optional[str] = None,
    what: Optional[str] = None,
    head_read: bool = False,
) -> None:
    """Decrypt ``source`` with ``identity_file`` through ``then`` (e.g. ``[zstd -d]``) into ``sink``.

    Succeeds only when age and every later program exit 0. When age fails, the error names the
    file and the identity (wrong key, damaged or truncated ciphertext), even if a later program
    had exited 0 on the plaintext prefix age wrote before failing; the caller must discard
    everything the sink received (abort its AtomicWriter).
    """
    program = age or find_age()
    identity = check_identity(identity_file)
    commands = [decrypt_argv(identity, os.path.abspath(source), program)] + [list(argv) for argv in then]
    label = what or f"decrypting {source}"
    try:
        stream(commands, sink, env, label, head_read=head_read)
    except PgdrillError as exc:
        stderr = str(exc.details.get("stderr", ""))
        if "age: error:" in stderr or ": age " in exc.problem:
            raise age_failure(stderr, identity, source, label, exc.details) from None
        raise
