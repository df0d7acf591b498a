# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The value rules: how a setting's text becomes a value, and the words for what it accepts.

One rule per kind of value, shared by the config file, the environment, command-line flags, module
options and Django settings (``config.SETTINGS`` says which key takes which rule), and one way to
report a refused value (``parse_with``): the key, the value (never a secret), where it came from and
what would be accepted. Pure, apart from reading an ``@FILE`` a value names.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Optional, Tuple

from . import ping
from .encryption import parse_recipients
from .errors import PgdrillError
from .storage import S3_CREDENTIALS_FIX, parse_remote, without_userinfo
from .retention import zone

# key -> (parser, description of what is accepted)
# Numbers are plain ASCII digits (Python's int() would also take "٣" or "1_000") within bounds far
# beyond any real use, so an absurd value is refused here, naming the key, not later as a crash.
_INT_RE = re.compile(r"^[+]?[0-9]{1,12}$")
_FLOAT_RE = re.compile(r"^[+]?([0-9]{1,12}(\.[0-9]*)?|\.[0-9]+)$")
STANZA_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class Rule:
    """How one setting's text becomes a value, and the words for what it accepts (in messages).
    Calling it parses; a refused value raises ValueError."""

    def __init__(self, parse: Callable[[str], Any], accepts: str) -> None:
        self.parse = parse
        self.accepts = accepts

    def __call__(self, text: str) -> Any:
        return self.parse(text)


def accepting(words: str) -> Callable[[Callable[[str], Any]], Rule]:
    """Make a parsing function a Rule that accepts ``words``."""
    return lambda parse: Rule(parse, words)


def int_at_least(minimum: int, maximum: int = 10**9) -> "Rule":
    def parse(text: str) -> int:
        if not _INT_RE.match(text.strip()):
            raise ValueError
        value = int(text.strip())
        if not minimum <= value <= maximum:
            raise ValueError
        return value

    return Rule(parse, f"a whole number from {minimum} to {maximum}")


def float_at_least(minimum: float, maximum: float = 10.0**9) -> "Rule":
    def parse(text: str) -> float:
        if not _FLOAT_RE.match(text.strip()):
            raise ValueError
        value = float(text.strip())
        if not minimum <= value <= maximum:
            raise ValueError
        return value

    return Rule(parse, f"a number from {minimum:g} to {maximum:g} (digits and a decimal point)")


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


@accepting("yes or no (also true/false, on/off, 1/0)")
def bool_rule(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError


def choice(*options: str) -> "Rule":
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError
        return value

    return Rule(parse, "one of " + ", ".join(options))


@accepting("a non-empty value")
def text_rule(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError
    return value


@accepting("a pgBackRest stanza name: letters, digits and _ . - (at most 63 characters), e.g. main")
def stanza_rule(text: str) -> str:
    value = text.strip()
    if not STANZA_RE.fullmatch(value):
        raise ValueError
    return value


@accepting("an http:// or https:// URL (a Healthchecks-style check URL), or @FILE holding one")
def ping_url_rule(text: str) -> str:
    """A check URL, or ``@FILE`` holding one (so the secret can live in a 0600 file of its own)."""
    value = text.strip()
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as handle:
                value = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            raise ValueError from None
    if not ping.valid(value):
        raise ValueError
    return value


class Refused(ValueError):
    """A value refused with its own explanation (the parser knows better than a generic rule)."""

    def __init__(self, error: PgdrillError) -> None:
        super().__init__(error.message)
        self.error = error


@accepting("age recipients (age1...) separated by commas or spaces, or @/path/to/recipients.txt")
def recipients_rule(text: str) -> Tuple[str, ...]:
    """age recipients: ``age1...`` separated by commas or spaces, or ``@/path`` files of them.
    Anything that does not parse refuses the whole configuration: never a plaintext backup."""
    try:
        return tuple(parse_recipients(text))
    except PgdrillError as exc:
        raise Refused(exc) from None


@accepting("s3://BUCKET/PREFIX or rclone:REMOTE:PATH")
def remote_rule(text: str) -> str:
    try:
        return parse_remote(text).text
    except PgdrillError as exc:
        raise Refused(exc) from None


@accepting("an http:// or https:// URL of the S3 endpoint, without credentials")
def endpoint_rule(text: str) -> str:
    value = text.strip()
    if "@" in value:  # user:secret@host: refused, and never repeated (the config, logs and process lists would keep it)
        raise Refused(
            PgdrillError(
                f"remote_endpoint_url {without_userinfo(value)!r} holds credentials (before the '@'); they do not belong in the URL",
                "write the endpoint without them (https://HOST[:PORT]) and " + S3_CREDENTIALS_FIX,
            )
        )
    if not re.match(r"^https?://[A-Za-z0-9.\[\]:_-]+(/[^\s@]*)?$", value):
        raise ValueError
    return value.rstrip("/")


# Values never repeated in messages: they carry a secret.
SECRET_SETTINGS = ("ping_url",)


@accepting("a whole number from 0 to 22 (gzip uses 0-9)")
def compression_level_rule(text: str) -> int:
    if not _INT_RE.match(text.strip()):
        raise ValueError
    value = int(text.strip())
    if not 0 <= value <= 22:
        raise ValueError
    return value


_DURATION_RE = re.compile(r"^([0-9]{1,7})([hdw]?)$")
_DURATION_UNITS = {"h": 3600, "d": 86400, "w": 604800, "": 86400}
MAX_DURATION_DAYS = 36500


@accepting((f"a duration: whole hours, days or weeks such as 36h, 14d or 2w (a plain number is days; 0 is off), at most {MAX_DURATION_DAYS} days"))
def duration_rule(text: str) -> float:
    """A duration in seconds: ``36h``, ``14d``, ``2w``; a plain number is days, as retention_days."""
    match = _DURATION_RE.match(text.strip().lower())
    if not match:
        raise ValueError
    value = int(match[1]) * _DURATION_UNITS[match[2]]
    if value > MAX_DURATION_DAYS * 86400:
        raise ValueError
    return float(value)


_SIZE_RE = re.compile(r"^([0-9]{1,15})\s*(b|kb|mb|gb|tb)?$")
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}


@accepting("a size in bytes, or whole kB, MB, GB or TB (1024-based, as PostgreSQL's settings): e.g. 1GB or 500MB")
def size_rule(text: str) -> int:
    """A size in bytes: ``1GB``, ``500MB``, ``1073741824``; units are 1024-based, as in postgresql.conf."""
    match = _SIZE_RE.match(text.strip().lower())
    if not match:
        raise ValueError
    return int(match[1]) * _SIZE_UNITS[match[2]]


@accepting(
    (
        "an IANA time zone name such as UTC, Europe/Berlin or America/New_York, as listed under "
        "/usr/share/zoneinfo (install the tzdata package if the system has none)"
    )
)
def timezone_rule(text: str) -> str:
    value = text.strip()
    try:
        zone(value)
    except ValueError:
        raise ValueError from None
    return value


def parse_with(rules: Mapping[str, Rule], key: str, raw: str, origin: str, name: Optional[str] = None) -> Any:
    """``raw`` through the rule of ``name`` (default ``key``) in ``rules``; a refusal names ``key``
    as written, its value (unless secret), ``origin`` and what would be accepted."""
    rule = rules.get(name or key)
    if rule is None:
        raise PgdrillError(f"bad config: unknown key '{key}' in {origin}", "use one of: " + ", ".join(sorted(rules)))
    try:
        return rule(raw)
    except Refused as refused:
        raise PgdrillError(f"bad config value in {origin}: {refused.error.problem}", refused.error.fix) from None
    except ValueError:
        shown = "(hidden: it holds a secret)" if (name or key) in SECRET_SETTINGS else repr(raw)
        raise PgdrillError(f"bad config value: {key} = {shown} in {origin}", f"{key} must be {rule.accepts}") from None
