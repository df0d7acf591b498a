#!/usr/bin/env python3
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Write docs/settings.md from the engine's settings tables (``config.SETTINGS``,
``config.CONNECTION_SETTINGS``, ``drill_config.DRILL_SETTINGS``): every key with its default, what
it accepts, its environment variable and the backup role's variable.

    tools/settings_doc.py            rewrite docs/settings.md
    tools/settings_doc.py --check    exit 1 when docs/settings.md is not what the tables say

The tables are the one source; tests/unit/test_settings_sources.py fails when the page, the example
config (docs/pgdrill.conf.example), the backup role's config template or its defaults disagree
with them. This file also holds what the role knows about each key (the lists below), so that a new
key is one edit here besides its rule and its field.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "module_utils"))

from pgdrill.compat import ENV_ALIASES  # noqa: E402
from pgdrill.config import CONNECTION_SETTINGS, ENV_OVERRIDES, REMOTE_RETENTION_KEYS, SETTINGS, DatabaseConfig  # noqa: E402
from pgdrill.drill_config import DRILL_SETTINGS, OLD_NAMES, DrillConfig  # noqa: E402

PAGE = os.path.join(ROOT, "docs", "settings.md")
ROLE_PREFIX = "pgdrill_backup_"

# Keys the backup role's config template (roles/pgdrill_backup/templates/etc/pgdrill/pgdrill.conf.j2)
# does not write, and why: the engine's default applies on hosts the role sets up.
NOT_MANAGED_BY_ROLE = {
    "debris_grace_hours": "the engine's default",
    "pg_bin_dir": "the engine finds the installed client tools",
    "restore_jobs": "the engine's default",
    "dump_jobs": "the engine's default",
    "lock_wait": "a timer run that finds the series locked ends with 75 and runs again next time",
    "work_dir": "the backup directory",
    "encrypt_identity_file": "a backup host holds only public keys; identities live where sets are decrypted",
    "remote_profile": "the role writes the credentials to the backup user's own AWS files",
    "dbname": "each [database NAME] section's name",
    "service": "the role connects with host, port, user and passfile",
    "sslmode": "libpq's default",
}
# Role variables named otherwise than pgdrill_backup_<key>; keys set per database in pgdrill_backup_databases; keys the role always writes the same.
ROLE_VARIABLES = {"backup_dir": "pgdrill_backup_dir", "user": "pgdrill_backup_login_user"}
ROLE_PER_DATABASE = ("prefix", "media", "media_root")
ROLE_FIXED = {"prune_after_backup": "yes", "passfile": "`<pgdrill_backup_config_dir>/pgpass`"}
# Keys written from one variable for all of them: pgdrill_backup_remote_retention, a dict of the keys without remote_.
ROLE_DICT_KEYS = {f"remote_{key}": "pgdrill_backup_remote_retention" for key in REMOTE_RETENTION_KEYS}
# Role defaults that differ from the engine's on purpose, and why.
ROLE_DIFFERS = {
    "backup_dir": "a fixed directory on a host, where the engine's default follows the config file",
    "max_runtime": "a scheduled run must end before the next one starts (6 hours)",
    "host": "the local server's socket directory",
    "port": "written out, as libpq's default",
    "user": "the backup user",
}

# Defaults that are not a plain value.
SPECIAL_DEFAULTS = {
    "backup_dir": "`backups` beside the config file",
    "prefix": "the database name",
    "compression_level": "3 for zstd, 6 for gzip",
    "directory_above": "1GB (1073741824 bytes)",
    "dbname": "the section's name",
    **{f"remote_{key}": f"the value of `{key}`" for key in REMOTE_RETENTION_KEYS},
}
SPECIAL_DRILL_DEFAULTS = {
    "database": "(required)",
    "prefix": "the value of `database`",
    "source_dir": "(required with source = local or ssh)",
    "evidence_dir": "`drills/evidence` beside the config file",
}


def shown(value: Any) -> str:
    if value is None or value == () or value == "":
        return "(unset)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, tuple):
        return "; ".join(str(item) for item in value)
    return str(value)


def defaults(cls: Any) -> Dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def role_variable(key: str) -> str:
    if key in NOT_MANAGED_BY_ROLE:
        return "not managed by the role"
    if key in ROLE_PER_DATABASE:
        return f"`pgdrill_backup_databases[].{key}`"
    if key in ROLE_FIXED:
        return f"always {ROLE_FIXED[key]}"
    return f"`{ROLE_DICT_KEYS.get(key) or ROLE_VARIABLES.get(key) or ROLE_PREFIX + key}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    engine = defaults(DatabaseConfig)
    environment = {key: f"`{name}`" for name, key in ENV_OVERRIDES.items()}
    for name, key in ENV_ALIASES.items():
        environment[key] += f"; pgdrill-backup also `{name}`"
    lines: List[str] = [
        "# Settings",
        "",
        "<!-- Written by tools/settings_doc.py from the engine's settings tables; do not edit by hand. -->",
        "",
        "Every key of pgdrill's config file, with its default and what it accepts. The `[pgdrill]` section's keys",
        "apply to every database, and each `[database NAME]` section may set any of them again. A commented",
        "example is [pgdrill.conf.example](pgdrill.conf.example). Environment variables override the file, and",
        "command-line flags override both. A value that is refused names the key, where it came from and what",
        "would be accepted.",
        "",
        "## [pgdrill] and [database NAME]",
        "",
        "| key | default | accepts | environment | backup role |",
        "|---|---|---|---|---|",
    ]
    for key, rule in SETTINGS.items():
        default = SPECIAL_DEFAULTS.get(key) or shown(engine.get(key))
        lines.append(f"| `{key}` | {_cell(default)} | {_cell(rule.accepts)} | {environment.get(key, '')} | {role_variable(key)} |")
    lines += [
        "",
        "## Connection (in either section)",
        "",
        "In libpq's terms; a key not set follows libpq (PGHOST, PGPORT, PGUSER, PGSERVICE, PGPASSFILE, ~/.pgpass).",
        "A password is never accepted here: put it in the passfile.",
        "",
        "| key | default | accepts | backup role |",
        "|---|---|---|---|",
    ]
    for key, rule in CONNECTION_SETTINGS.items():
        default = SPECIAL_DEFAULTS.get(key) or "libpq's"
        lines.append(f"| `{key}` | {_cell(default)} | {_cell(rule.accepts)} | {role_variable(key)} |")
    drill = defaults(DrillConfig)
    old = {new: old for old, new in OLD_NAMES.items()}
    lines += [
        "",
        "## [drill]",
        "",
        "What `pgdrill-backup drill` restores from, into which server, and where its evidence goes. Connection keys",
        "(`host`, `port`, `user`, `passfile`, `sslmode`) name the staging server.",
        "",
        "| key | default | accepts |",
        "|---|---|---|",
    ]
    for key, rule in DRILL_SETTINGS.items():
        if key in CONNECTION_SETTINGS:
            continue
        default = SPECIAL_DRILL_DEFAULTS.get(key) or shown(drill.get(key))
        name = f"`{key}`" + (f" (formerly `{old[key]}`, still read)" if key in old else "")
        lines.append(f"| {name} | {_cell(default)} | {_cell(rule.accepts)} |")
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/settings.md is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        with open(PAGE, encoding="utf-8") as handle:
            current = handle.read() == text
        print("docs/settings.md is current" if current else "docs/settings.md is stale: run tools/settings_doc.py")
        return 0 if current else 1
    with open(PAGE, "w", encoding="utf-8") as handle:
        handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
