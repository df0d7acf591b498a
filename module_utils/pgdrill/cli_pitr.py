# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""``pgdrill-backup``'s point-in-time recovery commands: ``mark`` (an exact restore point, saved
beside the sets), and ``pitr-backup`` and ``pitr-status``, which drive pgBackRest as the cluster's
OS user: every value they need can come from flags, so they need no pgdrill config file (that is
the backup user's, 0600). Without --stanza they read the config's pitr_* settings."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable, Dict, List, Optional

from . import metrics, operations
from .config import Connection, DatabaseConfig, argument_type
from .compat import load_seed_configs
from .errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE, LockBusy, PgdrillError
from .pitr_restore import pitr_restore

log = logging.getLogger("pgdrill")
DEFAULT_PGBACKREST_CONFIG = DatabaseConfig.pitr_config
BACKUP_TYPES = ("full", "diff", "incr")


def add_parsers(sub, common: Callable[[argparse.ArgumentParser, bool], None]) -> None:
    mark = sub.add_parser("mark", help="mark an exact restore point: its fingerprint and row counts, saved in <backup_dir>/points/")
    common(mark, True)
    mark.add_argument("--name", metavar="NAME", help="the restore point's name (default: pgdrill_<prefix>_<YYYYmmddTHHMMSSZ>)")
    for command in ("pitr-backup", "pitr-status"):
        backup = command == "pitr-backup"
        parser = sub.add_parser(
            command,
            help="a pgBackRest backup of the cluster, with metrics and pings (run as its OS user)"
            if backup
            else "pgBackRest's info and the server's WAL archiver, as JSON",
        )
        parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="pgdrill config, read only without --stanza")
        parser.add_argument("--database", metavar="NAME", action="append", default=argparse.SUPPRESS, help="only this [database NAME] of the config")
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a machine-readable result on stdout")
        parser.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="log each step")
        if backup:
            parser.add_argument("--type", required=True, choices=BACKUP_TYPES, help="full, diff (since the last full) or incr (since the last backup)")
        parser.add_argument("--stanza", type=argument_type("pitr_stanza", "--stanza"), help="pgBackRest stanza (default: the config's pitr_stanza)")
        parser.add_argument("--pgbackrest-config", metavar="FILE", help=f"pgBackRest's config file (default: pitr_config, else {DEFAULT_PGBACKREST_CONFIG})")
        parser.add_argument("--metrics-dir", metavar="DIR", help="write pgdrill_pitr_<stanza>.prom there (default: the config's metrics_dir)")
        if backup:
            parser.add_argument(
                "--ping-url",
                type=argument_type("ping_url", "--ping-url"),
                metavar="URL|@FILE",
                help="heartbeat URL, or @FILE holding it (the URL holds a secret: @FILE keeps it out of the process list)",
            )
            parser.add_argument("--ping-exit-codes", action="store_true", default=None, help="a failure pings /<exit code> instead of /fail")
    add_restore_parser(sub)


def add_restore_parser(sub) -> None:
    """``pitr-restore``: disaster recovery to a point, from flags alone (run as root or the cluster's OS user)."""
    parser = sub.add_parser("pitr-restore", help="restore the cluster from pgBackRest into its data directory, recover to a point, promote")
    parser.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS, help="check the request and the repository, change nothing")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a machine-readable result on stdout")
    parser.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help="log each step")
    parser.add_argument("--stanza", required=True, type=argument_type("pitr_stanza", "--stanza"), help="pgBackRest stanza")
    parser.add_argument("--pgbackrest-config", metavar="FILE", default=DEFAULT_PGBACKREST_CONFIG, help="pgBackRest's config file")
    parser.add_argument("--data-dir", required=True, metavar="DIR", help="the cluster's data directory: empty or absent, or confirmed with --confirm DIR")
    parser.add_argument("--confirm", metavar="DIR", help="the data directory again: stop its server and replace the cluster in it")
    parser.add_argument("--target", default="latest", help="latest (default), time:ISO8601 or name:POINT")
    parser.add_argument("--config-dir", metavar="DIR", help="where postgresql.conf lives (default: the data directory)")
    parser.add_argument("--pg-bin-dir", metavar="DIR", help="the server binaries (default: the installed ones of the repository's major)")
    parser.add_argument("--host", help="how to reach the restored server: its socket directory (default: libpq's)")
    parser.add_argument("--port", type=int, help="its port (default: libpq's)")
    parser.add_argument("--passfile", metavar="FILE", help="a .pgpass file for the postgres user")
    parser.add_argument("--recovery-timeout", type=float, default=3600.0, metavar="SECONDS", help="how long recovery may take (default 3600)")


def restore(args) -> int:
    """``pitr-restore``; the exit code."""
    try:
        outcome = pitr_restore(
            args.stanza,
            args.pgbackrest_config,
            args.data_dir,
            target=args.target,
            confirm=args.confirm,
            connection=Connection(host=args.host, port=args.port, user="postgres", passfile=args.passfile),
            pg_bin_dir=args.pg_bin_dir,
            config_dir=args.config_dir,
            recovery_timeout=args.recovery_timeout,
            check=args.dry_run,
        )
    except PgdrillError as exc:
        return _fail(args, exc, EXIT_FAILED)
    if args.json:
        print(json.dumps({"ok": True, "command": args.command, **outcome}, indent=2, default=str))
    elif args.dry_run:
        print(outcome["msg"])
    else:
        reached = outcome["reached"]
        print(
            f"{args.stanza}: restored into {args.data_dir} (backup {outcome['backup_label']}), reached LSN {reached['lsn']}, last commit {reached['commit_time']}"
        )
        print(outcome["note"])
    return EXIT_OK


def _settings(args) -> Dict[str, Any]:
    """The stanza and its companions: flags first; only without --stanza, the config's pitr_* settings
    (the one stanza its databases name) and its connection, metrics directory and ping."""
    chosen: Dict[str, Any] = {"connection": Connection(), "ping_exit_codes": bool(getattr(args, "ping_exit_codes", None))}
    config: Optional[DatabaseConfig] = None
    if args.stanza is None:
        try:
            configs = [c for c in load_seed_configs(args.config, only=args.database) if c.pitr_stanza]
        except PgdrillError as exc:
            raise PgdrillError(f"without --stanza the pgdrill config is read, and {exc.problem}", "pass --stanza NAME and --pgbackrest-config FILE") from None
        stanzas = sorted({c.pitr_stanza for c in configs if c.pitr_stanza})
        if len(stanzas) != 1:
            raise PgdrillError(
                "no stanza to work on: " + ("the config names none (pitr_stanza)" if not stanzas else f"the config names several ({', '.join(stanzas)})"),
                "pass --stanza NAME (and --pgbackrest-config FILE), or set pitr_stanza in the config",
            )
        config = configs[0]
        chosen.update(connection=config.connection, ping_exit_codes=chosen["ping_exit_codes"] or config.ping_exit_codes)
    chosen["stanza"] = args.stanza or (config.pitr_stanza if config else None)
    chosen["pgbackrest_config"] = args.pgbackrest_config or (config.pitr_config if config else DEFAULT_PGBACKREST_CONFIG)
    chosen["metrics_dir"] = args.metrics_dir or (config.metrics_dir if config else None)
    chosen["ping_url"] = getattr(args, "ping_url", None) or (config.ping_url if config else None)
    return chosen


def run(args) -> int:
    """``pitr-backup`` and ``pitr-status``; the exit code."""
    try:
        settings = _settings(args)
    except PgdrillError as exc:
        return _fail(args, exc, EXIT_USAGE)
    try:
        if args.command == "pitr-backup":
            outcome = operations.pitr_backup(
                settings["stanza"],
                settings["pgbackrest_config"],
                args.type,
                settings["connection"],
                settings["metrics_dir"],
                settings["ping_url"],
                settings["ping_exit_codes"],
            )
            if not args.json:
                print(f"{settings['stanza']}: pgBackRest {args.type} backup done in {outcome['duration_seconds']:.1f} s")
        else:
            outcome = operations.pitr_status(settings["stanza"], settings["pgbackrest_config"], settings["connection"])
            if settings["metrics_dir"]:
                metrics.update_pitr(settings["metrics_dir"], settings["stanza"], outcome)
            if not args.json:
                print(json.dumps(outcome, indent=2, default=str))
            if not outcome["ok"]:
                print(f"pgdrill: {outcome['stanza']}: {outcome['status']}", file=sys.stderr)
                if args.json:
                    print(json.dumps({"ok": False, "command": args.command, **outcome}, indent=2, default=str))
                return EXIT_FAILED
    except PgdrillError as exc:
        return _fail(args, exc, EXIT_LOCKED if isinstance(exc, LockBusy) else EXIT_FAILED)
    if args.json:
        print(json.dumps({"ok": True, "command": args.command, **outcome}, indent=2, default=str))
    return EXIT_OK


def _fail(args, exc: PgdrillError, code: int) -> int:
    print(f"pgdrill: {exc.message}", file=sys.stderr)
    if args.json:
        print(json.dumps({"ok": False, "command": args.command, "error": exc.message}))
    return code


def cmd_mark(args, configs: List[DatabaseConfig], each: Callable[..., List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """``mark``: a restore point in each database with pitr_stanza (or in each one named), through
    the front end's ``each`` (a failure is a result naming its database)."""
    targets = configs if args.database else [config for config in configs if config.pitr_stanza]
    if not targets:
        message = "no database of the config has pitr_stanza set; set it in the database's section, or name the database with --database"
        log.error("%s", message)
        return [{"ok": False, "error": message}]

    def work(config: DatabaseConfig) -> Dict[str, Any]:
        if args.dry_run:
            if not args.json:
                print(f"{config.label}: would mark a restore point (stanza {config.pitr_stanza}) and save it in {config.backup_dir}/points")
            return {"dry_run": True}
        record = operations.mark(config, args.name)
        if not args.json:
            print(json.dumps({key: value for key, value in record.items() if key != "fingerprint"}, indent=2, sort_keys=True))
        return record

    return each(targets, "mark", work)
