# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The ``[drill]`` section: what ``pgdrill-backup drill`` (a scheduled restore drill on staging)
restores from, into which server, and where its evidence goes.

Same file lookup, same value rules and same error words as the database sections (``config.py``).
Keys that mean the same as a database section's key have its name (``restore_jobs``,
``encrypt_identity_file``); the drill's first names (``jobs``, ``identity_file``) are still read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from .config import CONNECTION_SETTINGS, DRILL_SECTION, Connection, DatabaseConfig, config_file, read_file
from .drill import validate_checks
from .errors import PgdrillError
from .naming import validate_prefix
from .rules import accepting, bool_rule, choice, endpoint_rule, float_at_least, int_at_least, parse_with, ping_url_rule, remote_rule, text_rule


@accepting("one entry a line")
def _lines(text: str) -> Tuple[str, ...]:
    """One entry a line (post-restore commands); blank lines are skipped."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@accepting("a JSON list (of smoke checks, in the pgdrill_smoke module's format)")
def _json_list(text: str) -> Tuple[object, ...]:
    value = json.loads(text or "[]")
    if not isinstance(value, list):
        raise ValueError
    return tuple(value)


DRILL_SETTINGS = {
    "database": text_rule,
    "prefix": text_rule,
    "source": choice("local", "ssh", "remote"),
    "source_dir": text_rule,
    "source_ssh": text_rule,
    "ssh_options": _lines,
    "source_host": text_rule,
    "max_age_hours": float_at_least(0, 876000),
    "work_dir": text_rule,
    "maintenance_db": text_rule,
    "scratch_prefix": text_rule,
    "restore_globals": bool_rule,
    "role_passwords": bool_rule,
    "owners": bool_rule,
    "privileges": bool_rule,
    "restore_jobs": int_at_least(1, 256),
    "pg_bin_dir": text_rule,
    "post_restore": _lines,
    "post_restore_dir": text_rule,
    "checks": _json_list,
    "command_timeout": float_at_least(1, 604800),
    "keep": choice("never", "on_failure", "always"),
    "evidence_dir": text_rule,
    "log_file": text_rule,
    "metrics_dir": text_rule,
    "ping_url": ping_url_rule,
    "ping_exit_codes": bool_rule,
    # source = remote: the off-host copy the source pushes to, and the identity that decrypts.
    "remote": remote_rule,
    "remote_endpoint_url": endpoint_rule,
    "remote_region": text_rule,
    "remote_profile": text_rule,
    "encrypt_identity_file": text_rule,
    # pgdrill-backup drill --physical: the pgBackRest stanza and config on staging, the source to measure the RPO against.
    "pitr_stanza": text_rule,
    "pitr_config": text_rule,
    "pitr_source": text_rule,
    "pitr_recovery_timeout": float_at_least(1, 604800),
    **{key: CONNECTION_SETTINGS[key] for key in ("host", "port", "user", "passfile", "sslmode")},
}
# The drill's first key names, still read: old name -> the database section's name.
OLD_NAMES = {"jobs": "restore_jobs", "identity_file": "encrypt_identity_file"}


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
    restore_jobs: int = 2
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
    encrypt_identity_file: Optional[str] = None
    pitr_stanza: Optional[str] = None
    pitr_config: str = "/etc/pgbackrest/pgbackrest.conf"
    pitr_source: Optional[str] = None
    pitr_recovery_timeout: float = 3600.0
    source_file: str = "defaults"


def _values(pairs, origin: str) -> Dict[str, object]:
    """The section's values by their current names; an old name and its new one together are refused."""
    values: Dict[str, object] = {}
    for key, raw in pairs:
        name = OLD_NAMES.get(key, key)
        if name in values:
            raise PgdrillError(f"bad config: {origin} sets both '{key}' and '{name}'", f"keep only '{name}' ('{key}' is its old name)")
        values[name] = parse_with(DRILL_SETTINGS, key, raw, origin, name=name)
    return values


def _require(values: Mapping[str, object], origin: str) -> None:
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
    try:
        checks = values.get("checks", ())
        validate_checks(list(checks) if isinstance(checks, (list, tuple)) else [])
    except PgdrillError as exc:
        raise PgdrillError(f"bad config value: checks in {origin}: {exc.problem}", exc.fix) from None


def load_drill_config(path: Optional[str] = None, environ: Optional[Mapping[str, str]] = None) -> DrillConfig:
    """The [drill] section of the config file (the same file lookup as load_configs)."""
    explicit = config_file(path, os.environ if environ is None else environ)
    if not explicit:
        raise PgdrillError("a drill needs a config file with a [drill] section", "pass --config FILE (see docs/drills.md, 'Scheduled drills')")
    parser = read_file(explicit)
    origin = f"{explicit} [{DRILL_SECTION}]"
    if not parser.has_section(DRILL_SECTION):
        raise PgdrillError(f"{explicit} has no [{DRILL_SECTION}] section", "add one (see docs/drills.md, 'Scheduled drills')")
    values = _values(parser.items(DRILL_SECTION), origin)
    _require(values, origin)
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


def series_config(config: DrillConfig, directory: str) -> DatabaseConfig:
    """The drilled series as the engine's other commands see it: its sets in ``directory``, its
    off-host copy, the staging server and the identity that decrypts. Pure."""
    return DatabaseConfig(
        label=config.database,
        connection=config.connection,
        backup_dir=directory,
        prefix=config.prefix,
        pg_bin_dir=config.pg_bin_dir,
        work_dir=config.work_dir,
        restore_jobs=config.restore_jobs,
        encrypt_identity_file=config.encrypt_identity_file,
        remote=config.remote,
        remote_endpoint_url=config.remote_endpoint_url,
        remote_region=config.remote_region,
        remote_profile=config.remote_profile,
    )
