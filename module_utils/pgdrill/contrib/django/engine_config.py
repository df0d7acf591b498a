# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The engine's configuration of one backup series, built from a Django project's settings.

Lowest first: the engine's defaults; the connection from ``DATABASES[alias]`` (``HOST``, ``PORT``,
``NAME``, ``USER``, and ``sslmode``, ``passfile`` and ``service`` from ``OPTIONS``); ``MEDIA_ROOT``;
the seed's ``EZ360_BACKUP_DIR``, ``EZ360_BACKUP_RETENTION_DAYS`` and ``EZ360_BACKUP_KEEP_LAST``;
the ``PGDRILL`` dict (any key of the engine's config file, e.g. ``prefix``, ``compression``,
``metrics_dir``); then the command's flags (``--out-dir``). Every value goes through the engine's
own checks (``pgdrill.config.build_database_config``), so a bad one is refused naming the setting.

``PASSWORD`` becomes the engine's ``Connection.password``, which reaches pg_dump, pg_restore and psql
as PGPASSWORD in their environment only. libpq settings of ``OPTIONS`` that the engine's config has
no key for (``sslrootcert``, ``connect_timeout``, ...) are returned as libpq environment variables
for the command to set while it runs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Dict, Mapping, Optional, Tuple

from ...compat import SEED_SETTINGS
from ...config import DatabaseConfig, build_database_config
from ...errors import PgdrillError

# OPTIONS keys the engine's config has a key of its own for.
CONNECTION_OPTIONS = ("sslmode", "passfile", "service")
# Other libpq connection parameters, passed to the engine's children (and psycopg) by environment.
LIBPQ_ENVIRONMENT = {
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "options": "PGOPTIONS",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
}


def _postgresql(alias: str, databases: Mapping[str, Any]) -> Mapping[str, Any]:
    if alias not in databases:
        raise PgdrillError(f"DATABASES has no alias {alias!r}", "name one of: " + ", ".join(sorted(databases)) if databases else "configure DATABASES")
    database = databases[alias]
    engine = str(database.get("ENGINE", ""))
    if "postgresql" not in engine and "postgis" not in engine:
        raise PgdrillError(f"DATABASES[{alias!r}] uses {engine or 'no ENGINE'}, not PostgreSQL", "pgdrill backs up PostgreSQL databases only")
    return database


def database_config(
    settings: Any, alias: str = "default", overrides: Optional[Mapping[str, object]] = None, environ: Optional[Mapping[str, str]] = None
) -> Tuple[DatabaseConfig, Dict[str, str]]:
    """(the series' config, libpq environment variables from OPTIONS) for ``DATABASES[alias]``."""
    environ = os.environ if environ is None else environ
    database = _postgresql(alias, getattr(settings, "DATABASES", {}) or {})
    values: Dict[str, object] = {}
    for setting, key in (("HOST", "host"), ("PORT", "port"), ("NAME", "dbname"), ("USER", "user")):
        if database.get(setting) not in (None, ""):
            values[key] = database[setting]
    options = dict(database.get("OPTIONS") or {})
    libpq_env: Dict[str, str] = {}
    for key, value in options.items():
        if value in (None, ""):
            continue
        if key in CONNECTION_OPTIONS:
            values[key] = value
        elif key in LIBPQ_ENVIRONMENT:
            libpq_env[LIBPQ_ENVIRONMENT[key]] = str(value)
        # Anything else (isolation_level, pool, server_side_binding, ...) concerns Django's own
        # connections, not pg_dump's.
    media_root = getattr(settings, "MEDIA_ROOT", "")
    if media_root:
        values["media_root"] = media_root
    for setting, key in SEED_SETTINGS.items():
        value = getattr(settings, setting, None)
        if value not in (None, ""):
            values[key] = value
    extra = getattr(settings, "PGDRILL", None) or {}
    if not isinstance(extra, Mapping):
        raise PgdrillError(f"settings.PGDRILL is a {type(extra).__name__}", "make it a dict of pgdrill config keys, e.g. {'prefix': 'ez360pm'}")
    values.update(extra)
    values.update(overrides or {})
    base_dir = str(getattr(settings, "BASE_DIR", "") or os.getcwd())  # the seed's default: <BASE_DIR>/backups
    config = build_database_config(alias, values, base_dir, f"Django settings (DATABASES[{alias!r}], PGDRILL)", environ)
    password = database.get("PASSWORD")
    if password:
        config = replace(config, connection=replace(config.connection, password=str(password)))
    return config, libpq_env
