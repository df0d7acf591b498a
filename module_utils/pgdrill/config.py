# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Configuration: one INI file, environment overrides, command-line overrides.

Precedence, lowest first: built-in defaults, the file's ``[pgdrill]`` section, its
``[database NAME]`` section, the environment (``PGDRILL_*``, and the aliases a caller passes:
pgdrill-backup passes the seed's names, see compat.py), then command-line flags. Values are checked here, once, and a bad one is
reported with the key, the value, where it came from and what would be accepted.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Tuple

from . import retention
from .errors import PgdrillError
from .naming import validate_prefix
from .storage import LOCK_MODES, MAX_LOCK_DAYS
from .rules import (
    bool_rule,
    choice,
    compression_level_rule,
    duration_rule,
    endpoint_rule,
    float_at_least,
    int_at_least,
    parse_with,
    ping_url_rule,
    recipients_rule,
    remote_rule,
    size_rule,
    stanza_rule,
    text_rule,
    timezone_rule,
)

DEFAULT_CONFIG_PATH = "/etc/pgdrill/pgdrill.conf"
MAIN_SECTION = "pgdrill"
DRILL_SECTION = "drill"  # read by drill_config.py; the backup series skip it
DATABASE_SECTION = "database "

# Environment overrides; a caller's aliases (name -> key) come after these: the first name that is set wins.
ENV_OVERRIDES: Dict[str, str] = {
    "PGDRILL_BACKUP_DIR": "backup_dir",
    "PGDRILL_RETENTION_DAYS": "retention_days",
    "PGDRILL_KEEP_LAST": "keep_last",
    "PGDRILL_MEDIA_ROOT": "media_root",
}
COMPRESSION_METHODS = ("zstd", "gzip", "none")
# custom: one pg_dump archive file; directory: pg_dump -Fd -j dump_jobs, each file compressed (and
# encrypted) on its own (see dirsets.py); auto: directory for a database of directory_above bytes or
# more, custom below (backup_plan.dump_format).
DUMP_FORMATS = ("custom", "directory", "auto")


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
    format: str = "custom"
    directory_above: int = 1 << 30  # format = auto: the database size from which a set is directory-format
    dump_jobs: int = 2
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
    # Point-in-time recovery: the pgBackRest stanza of the database's cluster (None: off), its
    # configuration file, and whether every logical backup marks a restore point in its snapshot.
    pitr_stanza: Optional[str] = None
    pitr_config: str = "/etc/pgbackrest/pgbackrest.conf"
    pitr_mark: bool = True
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


SETTINGS = {
    "backup_dir": text_rule,
    "prefix": text_rule,
    "retention_days": int_at_least(0, 36500),
    "keep_last": int_at_least(0, 100000),
    "debris_grace_hours": float_at_least(0, 876000),
    "compression": choice(*COMPRESSION_METHODS),
    "compression_level": compression_level_rule,
    "format": choice(*DUMP_FORMATS),
    "directory_above": size_rule,
    "dump_jobs": int_at_least(1, 64),
    "globals": bool_rule,
    "role_passwords": bool_rule,
    "row_counts": bool_rule,
    "media": bool_rule,
    "media_root": text_rule,
    "pg_bin_dir": text_rule,
    "prune_after_backup": bool_rule,
    "restore_jobs": int_at_least(1, 256),
    "lock_wait": float_at_least(0, 604800),
    "work_dir": text_rule,
    "lock_wait_timeout": float_at_least(0, 604800),
    "max_runtime": float_at_least(0, 2592000),
    "metrics_dir": text_rule,
    "ping_url": ping_url_rule,
    "ping_exit_codes": bool_rule,
    "encrypt_recipients": recipients_rule,
    "encrypt_identity_file": text_rule,
    "remote": remote_rule,
    "remote_endpoint_url": endpoint_rule,
    "remote_region": text_rule,
    "remote_profile": text_rule,
    "remote_upload": bool_rule,
    # The Object Lock rule is storage's (the modes S3 knows, the days' bound), read here once.
    "remote_object_lock_days": int_at_least(0, MAX_LOCK_DAYS),
    "remote_object_lock_mode": choice(*(mode.lower() for mode in LOCK_MODES)),
    "keep_daily": int_at_least(0, 100000),
    "keep_weekly": int_at_least(0, 100000),
    "keep_monthly": int_at_least(0, 100000),
    "keep_yearly": int_at_least(0, 1000),
    "keep_within": duration_rule,
    "retention_timezone": timezone_rule,
    "pitr_stanza": stanza_rule,
    "pitr_config": text_rule,
    "pitr_mark": bool_rule,
}
# The off-host copy's retention: the same rules as the local keys; unset means the local value.
REMOTE_RETENTION_KEYS = ("keep_last", "retention_days", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within")
SETTINGS.update({f"remote_{key}": SETTINGS[key] for key in REMOTE_RETENTION_KEYS})
CONNECTION_SETTINGS = {
    "host": text_rule,
    "port": int_at_least(1, 65535),
    "user": text_rule,
    "dbname": text_rule,
    "service": text_rule,
    "passfile": text_rule,
    "sslmode": choice("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
}
FORBIDDEN_KEYS = ("password", "pgpassword")
ALL_SETTINGS = {**SETTINGS, **CONNECTION_SETTINGS}


def parse_value(key: str, raw: str, origin: str):
    """One setting of a database section (or a flag or option standing for one), by its rule."""
    if key in FORBIDDEN_KEYS:
        raise PgdrillError(
            f"bad config: {origin} sets a password",
            "put the password in a .pgpass file (mode 0600) and set 'passfile' to its path; pgdrill never keeps passwords in its config",
        )
    return parse_with(ALL_SETTINGS, key, raw, origin)


def argument_type(key: str, flag: str):
    """An argparse type that checks a flag by the config key's own rule (one rule for both)."""
    import argparse

    def parse(text: str):
        try:
            return parse_value(key, text, flag)
        except PgdrillError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return parse


def config_file(path: Optional[str], environ: Mapping[str, str]) -> Optional[str]:
    """The config file to read: ``path``, else $PGDRILL_CONFIG, else /etc/pgdrill/pgdrill.conf when it
    exists, else none. An empty $PGDRILL_CONFIG counts as unset."""
    explicit = path or environ.get("PGDRILL_CONFIG") or None
    if explicit is None and os.path.exists(DEFAULT_CONFIG_PATH):
        explicit = DEFAULT_CONFIG_PATH
    return explicit


def read_file(path: str) -> configparser.ConfigParser:
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
        raise PgdrillError(f"bad config file {path}: {first_line}", "see docs/configuration.md for the format") from None
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


def _environment_values(environ: Mapping[str, str], aliases: Mapping[str, str]) -> Dict[str, object]:
    out: Dict[str, object] = {}
    for name, key in {**ENV_OVERRIDES, **aliases}.items():
        if key not in out and environ.get(name, "").strip():
            out[key] = parse_value(key, environ[name], f"environment variable {name}")
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
        elif isinstance(value, float) and SETTINGS.get(key) is duration_rule:
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
    if config.format != "custom" and config.compression == "gzip":
        raise PgdrillError(
            f"bad config value in {source}: format = {config.format} with compression = gzip",
            "a directory-format set compresses each file with zstd: set compression = zstd (or none), or format = custom for gzip",
        )
    return config


def load_configs(
    path: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    overrides: Optional[Mapping[str, object]] = None,
    only: Optional[List[str]] = None,
    env_aliases: Optional[Mapping[str, str]] = None,
) -> List[DatabaseConfig]:
    """Load the configuration of every database, or of those named in ``only``. ``env_aliases``
    (variable name -> key) are read after the ``PGDRILL_*`` names (compat.py has the seed's).

    ``path`` None means $PGDRILL_CONFIG, else /etc/pgdrill/pgdrill.conf when it exists, else none.
    """
    environ = os.environ if environ is None else environ
    explicit = config_file(path, environ)
    sections: Dict[str, Dict[str, object]] = {}
    base_dir = environ.get("PGDRILL_BASE_DIR") or os.getcwd()
    if explicit:
        parser = read_file(explicit)
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
    env_values = _environment_values(environ, env_aliases or {})
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
