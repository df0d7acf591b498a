# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Driving pgBackRest, the physical backup and WAL archiving engine pgdrill provisions and proves:
its configuration file, its commands as argument lists, and what its ``info --output=json`` says.
pgdrill never reads or writes repository files itself. Pure, but for ``run`` and ``include_path``."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .errors import LockBusy, PgdrillError
from .rules import STANZA_RE

# Option names as pgBackRest spells them; values are single lines.
_OPTION = re.compile(r"[a-z][a-z0-9-]*")
TARGET_TYPES = ("name", "time", "lsn", "immediate", "default")


def check_stanza(stanza: str) -> str:
    if not isinstance(stanza, str) or not STANZA_RE.fullmatch(stanza):
        raise PgdrillError(f"{stanza!r} is not a usable pgBackRest stanza name", "use letters, digits and _ . - (at most 63 characters), e.g. main")
    return stanza


def render_conf(global_options: Mapping[str, Any], stanza: str, stanza_options: Mapping[str, Any]) -> str:
    """pgbackrest.conf text: a [global] section and one stanza. Refuses option names and values
    that could break out of their line. Pure."""
    check_stanza(stanza)
    lines: List[str] = []
    for section, options in (("global", global_options), (stanza, stanza_options)):
        lines.append(f"[{section}]")
        for key, value in options.items():
            if value is None:
                continue
            text = ("y" if value else "n") if isinstance(value, bool) else str(value)
            if not _OPTION.fullmatch(key) or "\n" in text or "\r" in text:
                raise PgdrillError(
                    f"pgBackRest option {key!r} cannot be written to pgbackrest.conf", "option names are lower-case words with dashes; values are one line"
                )
            lines.append(f"{key}={text}")
        lines.append("")
    return "\n".join(lines)


def include_path(config_file: str) -> Optional[str]:
    """The ``conf.d`` directory beside ``config_file`` when it exists (the pgdrill_pitr role keeps the
    secrets there, so the main file diffs without them). pgBackRest reads its default include path
    only when no ``--config`` is given, so every command that names the file must name it too."""
    directory = os.path.join(os.path.dirname(config_file), "conf.d")
    return directory if os.path.isdir(directory) else None


def argv(config_file: str, stanza: str, command: str, *options: str, program: str = "pgbackrest") -> List[str]:
    """One pgBackRest command as an argument list (secrets stay in the config files)."""
    included = include_path(config_file)
    return [
        program,
        f"--config={config_file}",
        *([f"--config-include-path={included}"] if included else []),
        f"--stanza={check_stanza(stanza)}",
        *options,
        command,
    ]


def restore_argv(
    config_file: str,
    stanza: str,
    data_dir: str,
    target_type: str = "default",
    target: Optional[str] = None,
    set_label: Optional[str] = None,
    tablespaces_under: Optional[str] = None,
) -> List[str]:
    """Restore into ``data_dir`` (a new, empty directory: never a running cluster's), to the
    latest archived WAL (``default``) or to a target, promoting when it is reached. Archiving stays
    off in the restored cluster: a drill must never push WAL into the source's repository. With
    ``tablespaces_under`` every tablespace goes there and no link is restored to where it pointed
    on the source (a drill writes nothing outside its own directory). Pure."""
    if target_type not in TARGET_TYPES:
        raise PgdrillError(f"unknown recovery target type {target_type!r}", f"use one of {', '.join(TARGET_TYPES)}")
    options = [f"--pg1-path={data_dir}", "--archive-mode=off"]
    if set_label:
        options.append(f"--set={set_label}")
    if tablespaces_under:
        options += [f"--tablespace-map-all={tablespaces_under}", "--no-link-all"]
    if target_type != "default":
        options.append(f"--type={target_type}")
        if target_type != "immediate":
            if not target:
                raise PgdrillError(f"a recovery target of type {target_type} needs a target", "name the restore point, time or LSN")
            options.append(f"--target={target}")
        options.append("--target-action=promote")
    return argv(config_file, stanza, "restore", *options)


def run(command: Sequence[str], env: Optional[Mapping[str, str]] = None, user: Optional[str] = None, what: str = "pgbackrest") -> str:
    """Run a pgBackRest command (as ``user`` through runuser when given); its stdout, or a
    PgdrillError with pgBackRest's own error line."""
    full = (["runuser", "-u", user, "--"] if user else []) + list(command)
    try:
        done = subprocess.run(full, env=dict(env) if env is not None else None, capture_output=True, text=True)
    except FileNotFoundError:
        raise PgdrillError("pgBackRest is not installed", "install the distribution's package: apt-get install pgbackrest") from None
    if done.returncode != 0:
        said = error_line(done.stdout + "\n" + done.stderr)
        # Another pgBackRest run holds the stanza's lock: a busy series, as pgdrill's own lock says (exit 75).
        raise (LockBusy if done.returncode == LOCK_HELD else PgdrillError)(
            f"{what} failed (exit {done.returncode}): {said}",
            fix_for(done.stdout + "\n" + done.stderr),
            rc=done.returncode,
            stderr=done.stderr[-4000:],
        )
    return done.stdout


# What pgBackRest's own words mean for the user, most specific first: (words it prints, the fix).
LOCK_HELD = 50  # pgBackRest's exit code when another of its processes holds the lock
FIXES = (
    ("unable to acquire lock", "another pgBackRest run of the stanza holds its lock: try again when it has ended (a timer's next run does)"),
    (
        "Permission denied",
        "pgBackRest's files are the cluster's OS user's: run this as that user (postgres), or let this user read pgBackRest's configuration",
    ),
    ("unable to open missing file", "a file pgBackRest needs is missing: pass its config file with --pgbackrest-config FILE (or set pitr_config)"),
    (
        "requires option: pg1-path",
        "the stanza is not defined in pgBackRest's configuration: pass the stanza it defines (--stanza), or provision it with playbooks/provision_pitr.yml",
    ),
    (
        "HostConnectError",
        "the repository cannot be reached: check that the storage is up and repo1-s3-endpoint/repo1-storage-port point at it (pgbackrest check says more)",
    ),
    ("archive_mode", "archiving is off: set archive_mode = on and archive_command to pgbackrest archive-push (the pgdrill_pitr role does; it needs a restart)"),
    ("archive_command", "archive_command does not run pgBackRest: set it to 'pgbackrest --stanza=STANZA archive-push %p' (the pgdrill_pitr role does)"),
    (
        "stanza-create",
        "the stanza does not exist in the repository yet: run 'pgbackrest --stanza=STANZA stanza-create' as postgres (the pgdrill_pitr role does)",
    ),
    (
        "missing stanza path",
        "the stanza does not exist in the repository yet: run 'pgbackrest --stanza=STANZA stanza-create' as postgres (the pgdrill_pitr role does)",
    ),
)


def fix_for(output: str) -> str:
    """The fix for what pgBackRest printed, or a pointer to its log. Pure."""
    return next((fix for words, fix in FIXES if words in output), "read pgBackRest's message; its log is under log-path")


def error_line(output: str) -> str:
    """pgBackRest's first ERROR line, or the last line it printed. Pure."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if line.startswith("ERROR:")), lines[-1] if lines else "(no output)")


def _epoch(value: Any) -> Optional[str]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat().replace("+00:00", "Z")
    return None


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def info_summary(document: Any, stanza: str) -> Dict[str, Any]:
    """What ``pgbackrest info --output=json`` says about a stanza: its status, the newest full and
    differential backups, and the window a point-in-time restore can reach (from the oldest
    backup's start to the newest archived WAL's backup stop, a lower bound). Pure."""
    entries = document if isinstance(document, list) else []
    entry = next((item for item in entries if isinstance(item, dict) and item.get("name") == stanza), None)
    if entry is None:
        return {"stanza": stanza, "ok": False, "status": "no such stanza in the repository", "backups": []}
    status = _dict(entry.get("status"))
    backups = []
    for item in entry.get("backup") or []:
        if not isinstance(item, dict):
            continue
        stamps = _dict(item.get("timestamp"))
        archive = _dict(item.get("archive"))
        backups.append(
            {
                "label": item.get("label"),
                "type": item.get("type"),
                "started_at": _epoch(stamps.get("start")),
                "stopped_at": _epoch(stamps.get("stop")),
                "wal_start": archive.get("start"),
                "wal_stop": archive.get("stop"),
            }
        )
    newest: Dict[str, Optional[Dict[str, Any]]] = {kind: next((b for b in reversed(backups) if b["type"] == kind), None) for kind in ("full", "diff", "incr")}
    return {
        "stanza": stanza,
        "ok": status.get("code") == 0,
        "status": status.get("message"),
        "backups": backups,
        "newest_full": newest["full"],
        "newest_diff": newest["diff"],
        "oldest_restorable_at": backups[0]["stopped_at"] if backups else None,
    }


def parse_info(text: str, stanza: str) -> Dict[str, Any]:
    try:
        return info_summary(json.loads(text), stanza)
    except ValueError:
        raise PgdrillError("pgbackrest info did not print JSON", "run 'pgbackrest info --output=json' by hand and read what it says") from None
