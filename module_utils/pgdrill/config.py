# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Configuration: one INI file, environment overrides, command-line overrides.

Precedence, lowest first: built-in defaults, the file's ``[pgdrill]`` section, its
``[database NAME]`` section, the environment (``PGDRILL_*``, with the seed's ``EZ360_BACKUP_*``
names as aliases), then command-line flags. Values are checked here, once, and a bad one is
reported with the key, the value, where it came from and what would be accepted.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from . import retention
from .errors import PgdrillError
from .naming import validate_prefix

DEFAULT_CONFIG_PATH = "/etc/pgdrill/pgdrill.conf"
MAIN_SECTION = "pgdrill"
DATABASE_SECTION = "database "

# Environment overrides: the first name that is set wins.
ENV_OVERRIDES: Dict[str, Tuple[str, ...]] = {
    "backup_dir": ("PGDRILL_BACKUP_DIR", "EZ360_BACKUP_DIR"),
    "retention_days": ("PGDRILL_RETENTION_DAYS", "EZ360_BACKUP_RETENTION_DAYS"),
    "keep_last": ("PGDRILL_KEEP_LAST", "EZ360_BACKUP_KEEP_LAST"),
    "media_root": ("PGDRILL_MEDIA_ROOT", "MEDIA_ROOT"),
}
COMPRESSION_METHODS = ("zstd", "gzip", "none")


@dataclass(frozen=True)
class Connection:
    """How to reach PostgreSQL, in libpq terms. Unset fields fall back to libpq's own defaults
    (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSERVICE, PGPASSFILE, ~/.pgpass).

    ``password`` is only ever set programmatically (the Ansible modules take it with no_log); it is
    handed to child processes as PGPASSWORD in their environment, never on a command line, and it
    is left out of repr() so it cannot leak into a log line.
    """

    host: Optional[str] = None
    port: Optional[int] = None
    user: Optional[str] = None
    dbname: Optional[str] = None
    service: Optional[str] = None
    passfile: Optional[str] = None
    sslmode: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)

    def libpq_env(self, dbname: Optional[str] = None) -> Dict[str, str]:
        """Environment variables that make libpq clients connect here."""
        pairs = {
            "PGHOST": self.host,
            "PGPORT": str(self.port) if self.port else None,
            "PGUSER": self.user,
            "PGDATABASE": dbname or self.dbname,
            "PGSERVICE": self.service,
            "PGPASSFILE": self.passfile,
            "PGSSLMODE": self.sslmode,
            "PGPASSWORD": self.password,
        }
        return {key: value for key, value in pairs.items() if value}

    def psycopg_kwargs(self, dbname: Optional[str] = None) -> Dict[str, object]:
        pairs = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": dbname or self.dbname,
            "service": self.service,
            "passfile": self.passfile,
            "sslmode": self.sslmode,
            "password": self.password,
        }
        return {key: value for key, value in pairs.items() if value}

    def describe(self, dbname: Optional[str] = None) -> str:
        """A secret-free description for messages: ``database 'shop' on /run/postgresql:5432``."""
        where = self.host or os.environ.get("PGHOST") or "the default socket"
        port = self.port or os.environ.get("PGPORT")
        target = dbname or self.dbname or os.environ.get("PGDATABASE") or "(libpq default)"
        return f"database '{target}' on {where}{':' + str(port) if port else ''}"


@dataclass(frozen=True)
class DatabaseConfig:
    """Everything one backup series needs. One per database on a host."""

    label: str
    connection: Connection
    backup_dir: str
    prefix: str
    retention_days: int = 14
    keep_last: int = 14
    debris_grace_hours: float = 24.0
    compression: str = "zstd"
    compression_level: Optional[int] = None
    globals: bool = True
    role_passwords: bool = True
    row_counts: bool = True
    media: bool = False
    media_root: Optional[str] = None
    pg_bin_dir: Optional[str] = None
    prune_after_backup: bool = True
    restore_jobs: int = 2
    lock_wait: float = 0.0
    work_dir: Optional[str] = None
    # Seconds pg_dump (and the row count beside it) may wait for a table lock; 0: forever.
    lock_wait_timeout: float = 300.0
    # Seconds a whole run may take before it fails and cleans up; 0: no limit.
    max_runtime: float = 0.0
    # node_exporter's textfile directory: every run rewrites the series' metrics there.
    metrics_dir: Optional[str] = None
    # Healthchecks-style heartbeat URL (it carries the check's key: kept out of repr and messages),
    # and whether a failure pings /<exit code> instead of /fail.
    ping_url: Optional[str] = field(default=None, repr=False)
    ping_exit_codes: bool = False
    # age recipients (public keys) every file of a set is encrypted to; empty: no encryption.
    encrypt_recipients: Tuple[str, ...] = ()
    # The age identity (secret key file) that decrypts: only where sets are decrypted.
    encrypt_identity_file: Optional[str] = None
    # Off-host copies: s3://BUCKET/PREFIX or rclone:REMOTE:PATH, and how to reach it (never a secret).
    remote: Optional[str] = None
    remote_endpoint_url: Optional[str] = None
    remote_region: Optional[str] = None
    remote_profile: Optional[str] = None
    # Push each set after a successful backup (the default when remote is set).
    remote_upload: bool = True
    remote_object_lock_days: int = 0
    remote_object_lock_mode: str = "GOVERNANCE"
    # Grandfather-father-son tiers (0: off), keep_within in seconds (0: off), and the time zone
    # whose calendar days, weeks, months and years the tiers count in. See retention.py.
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: float = 0.0
    retention_timezone: str = "UTC"
    # The off-host copy's own retention; None: the local value of the same key.
    remote_keep_last: Optional[int] = None
    remote_retention_days: Optional[int] = None
    remote_keep_daily: Optional[int] = None
    remote_keep_weekly: Optional[int] = None
    remote_keep_monthly: Optional[int] = None
    remote_keep_yearly: Optional[int] = None
    remote_keep_within: Optional[float] = None
    source: str = "defaults"

    @property
    def encrypted(self) -> bool:
        return bool(self.encrypt_recipients)

    @property
    def dbname(self) -> str:
        return self.connection.dbname or "postgres"

    def effective_level(self, method: Optional[str] = None) -> int:
        method = method or self.compression
        if self.compression_level is not None:
            return self.compression_level
        return {"zstd": 3, "gzip": 6, "none": 0}[method]


# key -> (parser, description of what is accepted)
# Numbers are plain ASCII digits (Python's int() would also take "٣" or "1_000") within bounds far
# beyond any real use, so an absurd value is refused here, naming the key, not later as a crash.
_INT_RE = re.compile(r"^[+]?[0-9]{1,12}$")
_FLOAT_RE = re.compile(r"^[+]?([0-9]{1,12}(\.[0-9]*)?|\.[0-9]+)$")


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


def _int_at_least(minimum: int, maximum: int = 10**9) -> "Rule":
    def parse(text: str) -> int:
        if not _INT_RE.match(text.strip()):
            raise ValueError
        value = int(text.strip())
        if not minimum <= value <= maximum:
            raise ValueError
        return value

    return Rule(parse, f"a whole number from {minimum} to {maximum}")


def _float_at_least(minimum: float, maximum: float = 10.0**9) -> "Rule":
    def parse(text: str) -> float:
        if not _FLOAT_RE.match(text.strip()):
            raise ValueError
        value = float(text.strip())
        if not minimum <= value <= maximum:
            raise ValueError
        return value

    return Rule(parse, f"a number from {minimum:g} to {maximum:g} (digits and a decimal point)")


def seconds(text: str) -> float:
    """A command-line number of seconds (--wait): the same rule as the config's."""
    return _SECONDS(text)


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


@accepting("yes or no (also true/false, on/off, 1/0)")
def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError


def _choice(*options: str) -> "Rule":
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError
        return value

    return Rule(parse, "one of " + ", ".join(options))


@accepting("a non-empty value")
def _text(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError
    return value


@accepting("an http:// or https:// URL (a Healthchecks-style check URL), or @FILE holding one")
def _ping_url(text: str) -> str:
    """A check URL, or ``@FILE`` holding one (so the secret can live in a 0600 file of its own)."""
    from .ping import valid

    value = text.strip()
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as handle:
                value = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            raise ValueError from None
    if not valid(value):
        raise ValueError
    return value


class _Refused(ValueError):
    """A value refused with its own explanation (the parser knows better than a generic rule)."""

    def __init__(self, error: PgdrillError) -> None:
        super().__init__(error.message)
        self.error = error


@accepting("age recipients (age1...) separated by commas or spaces, or @/path/to/recipients.txt")
def _recipients(text: str) -> Tuple[str, ...]:
    """age recipients: ``age1...`` separated by commas or spaces, or ``@/path`` files of them.
    Anything that does not parse refuses the whole configuration: never a plaintext backup."""
    from .encryption import parse_recipients

    try:
        return tuple(parse_recipients(text))
    except PgdrillError as exc:
        raise _Refused(exc) from None


@accepting("s3://BUCKET/PREFIX or rclone:REMOTE:PATH")
def _remote(text: str) -> str:
    from .storage import parse_remote

    try:
        return parse_remote(text).text
    except PgdrillError as exc:
        raise _Refused(exc) from None


@accepting("an http:// or https:// URL of the S3 endpoint, without credentials")
def _endpoint(text: str) -> str:
    from .storage import S3_CREDENTIALS_FIX, without_userinfo

    value = text.strip()
    if "@" in value:  # user:secret@host: refused, and never repeated (the config, logs and process lists would keep it)
        raise _Refused(
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
def _compression_level(text: str) -> int:
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
def _duration(text: str) -> float:
    """A duration in seconds: ``36h``, ``14d``, ``2w``; a plain number is days, as retention_days."""
    match = _DURATION_RE.match(text.strip().lower())
    if not match:
        raise ValueError
    value = int(match[1]) * _DURATION_UNITS[match[2]]
    if value > MAX_DURATION_DAYS * 86400:
        raise ValueError
    return float(value)


@accepting(
    (
        "an IANA time zone name such as UTC, Europe/Berlin or America/New_York, as listed under "
        "/usr/share/zoneinfo (install the tzdata package if the system has none)"
    )
)
def _timezone(text: str) -> str:
    value = text.strip()
    try:
        retention.zone(value)
    except ValueError:
        raise ValueError from None
    return value


SETTINGS = {
    "backup_dir": _text,
    "prefix": _text,
    "retention_days": _int_at_least(0, 36500),
    "keep_last": _int_at_least(0, 100000),
    "debris_grace_hours": _float_at_least(0, 876000),
    "compression": _choice(*COMPRESSION_METHODS),
    "compression_level": _compression_level,
    "globals": _bool,
    "role_passwords": _bool,
    "row_counts": _bool,
    "media": _bool,
    "media_root": _text,
    "pg_bin_dir": _text,
    "prune_after_backup": _bool,
    "restore_jobs": _int_at_least(1, 256),
    "lock_wait": _float_at_least(0, 604800),
    "work_dir": _text,
    "lock_wait_timeout": _float_at_least(0, 604800),
    "max_runtime": _float_at_least(0, 2592000),
    "metrics_dir": _text,
    "ping_url": _ping_url,
    "ping_exit_codes": _bool,
    "encrypt_recipients": _recipients,
    "encrypt_identity_file": _text,
    "remote": _remote,
    "remote_endpoint_url": _endpoint,
    "remote_region": _text,
    "remote_profile": _text,
    "remote_upload": _bool,
    "remote_object_lock_days": _int_at_least(0, 36500),
    "remote_object_lock_mode": _choice("governance", "compliance"),
    "keep_daily": _int_at_least(0, 100000),
    "keep_weekly": _int_at_least(0, 100000),
    "keep_monthly": _int_at_least(0, 100000),
    "keep_yearly": _int_at_least(0, 1000),
    "keep_within": _duration,
    "retention_timezone": _timezone,
}
# The off-host copy's retention: the same rules as the local keys; unset means the local value.
REMOTE_RETENTION_KEYS = ("keep_last", "retention_days", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within")
SETTINGS.update({f"remote_{key}": SETTINGS[key] for key in REMOTE_RETENTION_KEYS})
_SECONDS = _float_at_least(0, 604800)
CONNECTION_SETTINGS = {
    "host": _text,
    "port": _int_at_least(1, 65535),
    "user": _text,
    "dbname": _text,
    "service": _text,
    "passfile": _text,
    "sslmode": _choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
}
FORBIDDEN_KEYS = ("password", "pgpassword")


def parse_value(key: str, raw: str, origin: str):
    parser = SETTINGS.get(key) or CONNECTION_SETTINGS.get(key)
    if parser is None:
        known = ", ".join(sorted(list(SETTINGS) + list(CONNECTION_SETTINGS)))
        if key in FORBIDDEN_KEYS:
            raise PgdrillError(
                f"bad config: {origin} sets a password",
                "put the password in a .pgpass file (mode 0600) and set 'passfile' to its path; pgdrill never keeps passwords in its config",
            )
        raise PgdrillError(f"bad config: unknown key '{key}' in {origin}", f"use one of: {known}")
    try:
        return parser(raw)
    except _Refused as refused:
        raise PgdrillError(f"bad config value in {origin}: {refused.error.problem}", refused.error.fix) from None
    except ValueError:
        shown = "(hidden: it holds a secret)" if key in SECRET_SETTINGS else repr(raw)
        raise PgdrillError(
            f"bad config value: {key} = {shown} in {origin}",
            f"{key} must be {parser.accepts}",
        ) from None


def _read_file(path: str) -> configparser.ConfigParser:
    # No implicit DEFAULT section: [pgdrill] is merged explicitly, so a typo'd section name is caught.
    parser = configparser.ConfigParser(default_section="pgdrill:unused", interpolation=None)
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise PgdrillError(f"config file {path} does not exist", "pass an existing file with --config") from None
    except PermissionError:
        raise PgdrillError(
            f"config file {path} is not readable by this user",
            "run pgdrill-backup as the backup user, or fix the file's owner (it should be mode 0600)",
        ) from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise PgdrillError(f"bad config file {path}: {first_line}", "see README.md, 'Configuration', for the format") from None
    for section in parser.sections():
        is_database = section.startswith(DATABASE_SECTION) and section[len(DATABASE_SECTION) :].strip()
        if section not in (MAIN_SECTION, DRILL_SECTION) and not is_database:
            raise PgdrillError(
                f"bad config file {path}: unknown section [{section}]",
                "use [pgdrill] for settings shared by all databases, [database NAME] for each database and [drill] for scheduled drills",
            )
    return parser


def _resolve(values: Mapping[str, str], origin: str) -> Dict[str, object]:
    return {key: parse_value(key, raw, origin) for key, raw in values.items()}


def _environment_values(environ: Mapping[str, str]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for key, names in ENV_OVERRIDES.items():
        for name in names:
            if environ.get(name, "").strip():
                out[key] = parse_value(key, environ[name], f"environment variable {name}")
                break
    return out


def default_dbname(label: str, values: Mapping[str, object], environ: Mapping[str, str]) -> str:
    """libpq's choice of database, made explicit: the section's name, PGDATABASE, the user name."""
    if label != "default":
        return label
    user = values.get("user") or environ.get("PGUSER") or environ.get("USER") or "postgres"
    return environ.get("PGDATABASE") or str(user)


def _checked(values: Mapping[str, object], source: str) -> Dict[str, object]:
    """Every value through the same parser, whether it came as text (file, environment) or typed
    (module options, command-line overrides), so no absurd number slips past the rules."""
    out: Dict[str, object] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, (list, tuple)):
            text = " ".join(str(item) for item in value)
        elif isinstance(value, float) and SETTINGS.get(key) is _duration:
            text = retention.duration_text(value)  # already parsed: seconds back to 36h, 14d, 2w
        elif isinstance(value, float):
            text = format(value, "f")  # never "1e-05"; inf and nan stay words the parser refuses
        else:
            text = str(value)
        out[key] = parse_value(key, text, source)
    return out


def build_database_config(label: str, values: Mapping[str, object], base_dir: str, source: str, environ: Mapping[str, str]) -> DatabaseConfig:
    values = _checked(values, source)
    connection = Connection(**{key: values[key] for key in CONNECTION_SETTINGS if key in values})  # type: ignore[arg-type]
    settings = {key: values[key] for key in SETTINGS if key in values and key != "prefix"}
    if not connection.dbname:
        connection = replace(connection, dbname=default_dbname(label, values, environ))
    config = DatabaseConfig(
        label=label,
        connection=connection,
        backup_dir=str(settings.pop("backup_dir", os.path.join(base_dir, "backups"))),
        prefix="",
        source=source,
        **settings,  # type: ignore[arg-type]
    )
    prefix = str(values.get("prefix") or config.dbname)
    problem = validate_prefix(prefix)
    if problem:
        raise PgdrillError(f"bad config value in {source}: {problem}", "set 'prefix' to a plain name such as the database name")
    config = replace(config, prefix=prefix, backup_dir=os.path.abspath(os.path.expanduser(config.backup_dir)))
    if label == "default":
        config = replace(config, label=prefix)  # a config without [database NAME] sections: its messages name the series
    config = replace(config, remote_object_lock_mode=config.remote_object_lock_mode.upper())
    if config.remote_object_lock_days and not (config.remote or "").startswith("s3://"):
        raise PgdrillError(
            f"bad config value in {source}: remote_object_lock_days is set, but Object Lock needs an s3:// remote",
            "set remote = s3://BUCKET/PREFIX on a bucket with Object Lock, or remove remote_object_lock_days",
        )
    if config.compression_level is not None and config.compression == "gzip" and config.compression_level > 9:
        raise PgdrillError(f"bad config value in {source}: compression_level {config.compression_level} with gzip", "gzip levels run from 0 to 9")
    return config


def load_configs(
    path: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    overrides: Optional[Mapping[str, object]] = None,
    only: Optional[List[str]] = None,
) -> List[DatabaseConfig]:
    """Load the configuration of every database, or of those named in ``only``.

    ``path`` None means $PGDRILL_CONFIG, else /etc/pgdrill/pgdrill.conf when it exists, else none.
    """
    environ = os.environ if environ is None else environ
    explicit = path or environ.get("PGDRILL_CONFIG")
    if explicit is None and os.path.exists(DEFAULT_CONFIG_PATH):
        explicit = DEFAULT_CONFIG_PATH
    sections: Dict[str, Dict[str, object]] = {}
    base_dir = environ.get("PGDRILL_BASE_DIR") or os.getcwd()
    if explicit:
        parser = _read_file(explicit)
        base_dir = environ.get("PGDRILL_BASE_DIR") or os.path.dirname(os.path.abspath(explicit))
        shared = _resolve(dict(parser.items(MAIN_SECTION)) if parser.has_section(MAIN_SECTION) else {}, f"{explicit} [pgdrill]")
        for section in parser.sections():
            if section in (MAIN_SECTION, DRILL_SECTION):
                continue
            name = section[len(DATABASE_SECTION) :].strip()
            sections[name] = {**shared, **_resolve(dict(parser.items(section)), f"{explicit} [{section}]")}
        if not sections:
            sections["default"] = shared
    else:
        sections["default"] = {}
    env_values = _environment_values(environ)
    extra = dict(overrides or {})
    origin = explicit or "defaults and environment"
    configs = [build_database_config(name, {**values, **env_values, **extra}, base_dir, origin, environ) for name, values in sections.items()]
    if only:
        unknown = [name for name in only if name not in sections]
        if unknown:
            raise PgdrillError(
                f"database {unknown[0]!r} is not in the configuration",
                "name one of: " + ", ".join(sorted(sections)),
            )
        configs = [config for name, config in zip(sections, configs) if name in only]
    _check_distinct_series(configs)
    return configs


def retention_policy(config: DatabaseConfig, remote: bool = False) -> retention.Policy:
    """The retention rules of a series: its local ones, or (``remote``) those of its off-host copy,
    where each ``remote_*`` key that is set replaces the local value. Pure."""

    def value(key: str):
        own = getattr(config, f"remote_{key}") if remote else None
        return getattr(config, key) if own is None else own

    return retention.Policy(
        keep_last=value("keep_last"),
        retention_days=value("retention_days"),
        keep_daily=value("keep_daily"),
        keep_weekly=value("keep_weekly"),
        keep_monthly=value("keep_monthly"),
        keep_yearly=value("keep_yearly"),
        keep_within=value("keep_within"),
        timezone=config.retention_timezone,
        debris_grace_hours=config.debris_grace_hours,
    )


def _check_distinct_series(configs: List[DatabaseConfig]) -> None:
    seen: Dict[Tuple[str, str], str] = {}
    for config in configs:
        key = (config.backup_dir, config.prefix)
        if key in seen:
            raise PgdrillError(
                f"bad config: databases '{seen[key]}' and '{config.label}' would share the backup series '{config.prefix}' in {config.backup_dir}",
                "give each database its own 'prefix' or 'backup_dir'",
            )
        seen[key] = config.label
        if config.remote:
            # One remote series per prefix: two sections pushing the same prefix to the same remote
            # would mix their sets there, and a pull for one could fetch the other's.
            there = ("remote:" + config.remote.rstrip("/"), config.prefix)
            if there in seen:
                raise PgdrillError(
                    f"bad config: databases '{seen[there]}' and '{config.label}' would share the remote series '{config.prefix}' in {config.remote}",
                    "give each database its own 'prefix' or its own 'remote' path",
                )
            seen[there] = config.label


# The [drill] section: what ``pgdrill-backup drill`` (a scheduled restore drill on staging) restores
# from, into which server, and where its evidence goes. Same parsing rules as the other sections.
DRILL_SECTION = "drill"


@accepting("one entry a line")
def _lines(text: str) -> Tuple[str, ...]:
    """One entry a line (post-restore commands); blank lines are skipped."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@accepting("a JSON list (of smoke checks, in the pgdrill_smoke module's format)")
def _json_list(text: str) -> Tuple[object, ...]:
    import json

    value = json.loads(text or "[]")
    if not isinstance(value, list):
        raise ValueError
    return tuple(value)


DRILL_SETTINGS = {
    "database": _text,
    "prefix": _text,
    "source": _choice("local", "ssh", "remote"),
    "source_dir": _text,
    "source_ssh": _text,
    "ssh_options": _lines,
    "source_host": _text,
    "max_age_hours": _float_at_least(0, 876000),
    "work_dir": _text,
    "maintenance_db": _text,
    "scratch_prefix": _text,
    "restore_globals": _bool,
    "role_passwords": _bool,
    "owners": _bool,
    "privileges": _bool,
    "jobs": _int_at_least(1, 256),
    "pg_bin_dir": _text,
    "post_restore": _lines,
    "post_restore_dir": _text,
    "checks": _json_list,
    "command_timeout": _float_at_least(1, 604800),
    "keep": _choice("never", "on_failure", "always"),
    "evidence_dir": _text,
    "log_file": _text,
    "metrics_dir": _text,
    "ping_url": _ping_url,
    "ping_exit_codes": _bool,
    # source = remote: the off-host copy the source pushes to, and the identity that decrypts.
    "remote": _remote,
    "remote_endpoint_url": _endpoint,
    "remote_region": _text,
    "remote_profile": _text,
    "identity_file": _text,
    **{key: CONNECTION_SETTINGS[key] for key in ("host", "port", "user", "passfile", "sslmode")},
}


@dataclass(frozen=True)
class DrillConfig:
    """One scheduled drill: the newest complete set of series ``prefix`` in ``source_dir`` (or from
    the off-host copies), restored into a fresh scratch database on the staging server."""

    database: str
    prefix: str
    connection: Connection
    evidence_dir: str
    source: str = "local"
    source_dir: Optional[str] = None
    # source = ssh: [user@]host the sets are copied from (scp), source_dir being the directory there.
    source_ssh: Optional[str] = None
    ssh_options: Tuple[str, ...] = ("-o BatchMode=yes", "-o ConnectTimeout=30")
    source_host: str = "local"
    max_age_hours: float = 48.0
    work_dir: Optional[str] = None
    maintenance_db: str = "postgres"
    scratch_prefix: str = "drill_"
    restore_globals: bool = True
    role_passwords: bool = False
    owners: bool = True
    privileges: bool = True
    jobs: int = 2
    pg_bin_dir: Optional[str] = None
    post_restore: Tuple[str, ...] = ()
    post_restore_dir: Optional[str] = None
    checks: Tuple[Dict[str, Any], ...] = ()
    command_timeout: float = 3600.0
    keep: str = "never"
    log_file: Optional[str] = None
    metrics_dir: Optional[str] = None
    ping_url: Optional[str] = field(default=None, repr=False)
    ping_exit_codes: bool = False
    remote: Optional[str] = None
    remote_endpoint_url: Optional[str] = None
    remote_region: Optional[str] = None
    remote_profile: Optional[str] = None
    identity_file: Optional[str] = None
    source_file: str = "defaults"


def load_drill_config(path: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> DrillConfig:
    """The [drill] section of the config file (same file lookup as load_configs)."""
    environ = os.environ if environ is None else environ
    explicit = path or environ.get("PGDRILL_CONFIG") or (DEFAULT_CONFIG_PATH if os.path.exists(DEFAULT_CONFIG_PATH) else None)
    if not explicit:
        raise PgdrillError("a drill needs a config file with a [drill] section", "pass --config FILE (see README.md, 'Scheduled drills')")
    parser = _read_file(explicit)
    origin = f"{explicit} [{DRILL_SECTION}]"
    if not parser.has_section(DRILL_SECTION):
        raise PgdrillError(f"{explicit} has no [{DRILL_SECTION}] section", "add one (see README.md, 'Scheduled drills')")
    values: Dict[str, object] = {}
    for key, raw in parser.items(DRILL_SECTION):
        if key not in DRILL_SETTINGS:
            raise PgdrillError(f"bad config: unknown key '{key}' in {origin}", "use one of: " + ", ".join(sorted(DRILL_SETTINGS)))
        try:
            values[key] = DRILL_SETTINGS[key](raw)
        except ValueError:
            shown = "(hidden: it holds a secret)" if key in SECRET_SETTINGS else repr(raw)
            raise PgdrillError(f"bad config value: {key} = {shown} in {origin}", f"{key} must be {DRILL_SETTINGS[key].accepts}") from None
    if "database" not in values:
        raise PgdrillError(f"bad config: {origin} lacks 'database'", "set database to the name of the drilled database (its evidence and metrics carry it)")
    if values.get("source", "local") in ("local", "ssh") and "source_dir" not in values:
        raise PgdrillError(f"bad config: {origin} lacks 'source_dir'", "set source_dir to the directory holding the backup sets to drill")
    if values.get("source") == "remote" and "remote" not in values:
        raise PgdrillError(
            f"bad config: {origin} has source = remote but no 'remote'",
            "set remote to the off-host copy the source pushes to (s3://BUCKET/PREFIX or rclone:REMOTE:PATH)",
        )
    if values.get("source") == "ssh" and "source_ssh" not in values:
        raise PgdrillError(f"bad config: {origin} lacks 'source_ssh'", "set source_ssh to the [user@]host the sets are copied from")
    from .drill import validate_checks

    try:
        checks = values.get("checks", ())
        validate_checks(list(checks) if isinstance(checks, (list, tuple)) else [])
    except PgdrillError as exc:
        raise PgdrillError(f"bad config value: checks in {origin}: {exc.problem}", exc.fix) from None
    base_dir = os.path.dirname(os.path.abspath(explicit))
    connection = Connection(
        **{key: values.pop(key) for key in ("host", "port", "user", "passfile", "sslmode") if key in values},  # type: ignore[arg-type]
        dbname=str(values.get("maintenance_db", "postgres")),
    )
    prefix = str(values.pop("prefix", values["database"]))
    problem = validate_prefix(prefix)
    if problem:
        raise PgdrillError(f"bad config value in {origin}: {problem}", "set 'prefix' to the series' file name prefix")
    evidence_dir = str(values.pop("evidence_dir", os.path.join(base_dir, "drills", "evidence")))
    return DrillConfig(prefix=prefix, connection=connection, evidence_dir=evidence_dir, source_file=explicit, **values)  # type: ignore[arg-type]
