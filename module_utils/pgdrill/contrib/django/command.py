# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The management command behind ``ez360_backup`` and ``pgdrill_backup``: Django's settings become
the engine's config (``engine_config.py``), then the engine's own command handlers (``pgdrill.cli``)
do the work, so the Django command and ``pgdrill-backup`` behave alike.

    manage.py ez360_backup [--db] [--media] [--out-dir DIR] [--no-prune]   back up (default: --db)
    manage.py ez360_backup list                                           the sets, with state
    manage.py ez360_backup verify [SET] [--restore] [--all] [--jobs N]     checksums, archive, restore
    manage.py ez360_backup prune                                          apply retention now

Each also takes ``--database ALIAS`` (a DATABASES alias, default ``default``), ``--dry-run``,
``--json`` and ``--wait SECONDS``. Failures raise CommandError with pgdrill-backup's exit codes:
1 a backup, check or prune failed, 2 bad usage or configuration, 75 another run holds the lock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import threading
from dataclasses import replace
from typing import Dict, Iterator

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ... import cli
from ...console import on_sigterm
from ...errors import EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE, PgdrillError
from ...fsio import os_error
from .engine_config import database_config


class _Writer:
    """print() into a Django OutputWrapper (which would add its own line endings)."""

    def __init__(self, wrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> int:
        self._wrapper.write(text, ending="")
        return len(text)

    def flush(self) -> None:
        self._wrapper.flush()


@contextlib.contextmanager
def _environment(values: Dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _engine_log(stream, verbose: bool) -> Iterator[None]:
    logger = logging.getLogger("pgdrill")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("pgdrill: %(message)s"))
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@contextlib.contextmanager
def _unwind_on_sigterm() -> Iterator[None]:
    """As pgdrill-backup does: SIGTERM unwinds like Ctrl-C, so partial files are removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class BackupCommand(BaseCommand):
    help = "Back up the project's PostgreSQL database (and MEDIA_ROOT) into checksummed, verifiable backup sets, with pgdrill."
    # A backup must run even when the project's own system checks fail.
    requires_system_checks: list = []

    @staticmethod
    def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
        default = argparse.SUPPRESS if suppress else None
        flag_default = argparse.SUPPRESS if suppress else False
        parser.add_argument(
            "--database", metavar="ALIAS", default=argparse.SUPPRESS if suppress else "default", help="the DATABASES alias to back up (default: default)"
        )
        parser.add_argument("--out-dir", metavar="DIR", default=default, help="backup directory, overriding EZ360_BACKUP_DIR and PGDRILL")
        parser.add_argument("--dry-run", action="store_true", default=flag_default, help="say what would be done, change nothing")
        parser.add_argument("--json", action="store_true", default=flag_default, help="print a machine-readable result")
        parser.add_argument("--wait", metavar="SECONDS", type=cli._seconds, default=default, help="wait this long for another run of the same series to finish")

    def add_arguments(self, parser) -> None:
        self._common(parser, suppress=False)
        parser.add_argument("--db", action="store_true", help="back up the database (the default when neither --db nor --media is given)")
        parser.add_argument("--media", action="store_true", help="back up MEDIA_ROOT into the same set")
        parser.add_argument("--no-prune", action="store_true", help="do not apply retention after the backup")
        sub = parser.add_subparsers(dest="action", metavar="{list,verify,prune}")
        verify = sub.add_parser("verify", help="check a set's checksums and archive; --restore restores it into a scratch database")
        self._common(verify, suppress=True)
        verify.add_argument("set", nargs="?", metavar="SET", help="set name, stamp or file name (default: the newest complete set)")
        verify.add_argument("--restore", action="store_true", help="also restore into a fresh scratch database and compare")
        verify.add_argument("--jobs", type=cli._jobs, metavar="N", help="parallel pg_restore jobs (default: restore_jobs)")
        verify.add_argument("--all", action="store_true", help="verify every complete set, not just one")
        self._common(sub.add_parser("prune", help="apply retention now"), suppress=True)
        self._common(sub.add_parser("list", help="show the backup sets"), suppress=True)

    def handle(self, *args, **options) -> None:
        action = options.get("action") or "backup"
        if options.get("no_prune") and action != "backup":
            raise CommandError(f"--no-prune applies to backups only; it cannot be combined with '{action}'", returncode=EXIT_USAGE)
        if action == "verify" and options.get("all") and options.get("set"):
            raise CommandError("verify --all checks every set: pass either --all or one SET, not both", returncode=EXIT_USAGE)
        overrides = {} if options.get("out_dir") is None else {"backup_dir": options["out_dir"]}
        try:
            config, libpq_env = database_config(settings, options.get("database") or "default", overrides)
        except PgdrillError as exc:
            raise CommandError(exc.message, returncode=EXIT_USAGE) from None
        if action == "backup" and options.get("no_prune"):
            config = replace(config, prune_after_backup=False)
        engine_args = argparse.Namespace(
            db=options.get("db", False),
            media=options.get("media", False),
            dry_run=options.get("dry_run", False),
            json=options.get("json", False),
            wait=options.get("wait"),
            set=options.get("set"),
            all=options.get("all", False),
            restore=options.get("restore", False),
            jobs=options.get("jobs"),
            remote=False,  # the off-host copy is pgdrill-backup's (push, pull, --remote); the project's command works locally
        )
        handler = {"backup": cli.cmd_backup, "prune": cli.cmd_prune, "verify": cli.cmd_verify, "list": cli.cmd_list}[action]
        with (
            contextlib.redirect_stdout(_Writer(self.stdout)),
            _engine_log(_Writer(self.stderr), options.get("verbosity", 1) >= 2),
            _environment(libpq_env),
            _unwind_on_sigterm(),
        ):
            try:
                results = handler(engine_args, [config])
            except OSError as exc:
                error = os_error(exc, "work on", getattr(exc, "filename", None) or "a file")
                raise CommandError(error.message, returncode=EXIT_FAILED) from None
        ok = all(result.get("ok") for result in results)
        if engine_args.json:
            self.stdout.write(json.dumps({"ok": ok, "command": action, "results": results}, indent=2, default=str))
        if ok:
            return
        failed = [result for result in results if not result.get("ok")]
        errors = "; ".join(result["error"] for result in failed if result.get("error")) or "a check failed (see above)"
        if all(result.get("locked") for result in failed):
            raise CommandError(f"{action}: {errors}", returncode=EXIT_LOCKED)
        raise CommandError(f"{action} failed: {errors}", returncode=EXIT_FAILED)
