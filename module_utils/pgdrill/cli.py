"""``pgdrill-backup``: the host command that cron or a systemd timer runs.

Exit codes: 0 everything asked for succeeded; 1 a backup, check or prune failed; 2 bad usage or
configuration; 75 another run holds the series lock (try again later).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import Any, Dict, List, Optional

from . import __version__, operations
from .backup import plan_backup
from .config import DatabaseConfig, load_configs, parse_value
from .errors import LockBusy, PgdrillError
from .fsio import os_error
from .naming import prefix_of
from .series import Series, future_sets_problem

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED = 0, 1, 2, 75
log = logging.getLogger("pgdrill")


def _argument(key: str, flag: str):
    """An argparse type that checks a flag by the config key's own rule (one rule for both)."""

    def parse(text: str):
        try:
            return parse_value(key, text, flag)
        except PgdrillError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return parse


_seconds = _argument("lock_wait", "--wait")
_jobs = _argument("restore_jobs", "--jobs")


def _common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    flag_default = argparse.SUPPRESS if suppress else False
    parser.add_argument("--config", metavar="FILE", default=default, help="config file (default: $PGDRILL_CONFIG, else /etc/pgdrill/pgdrill.conf if present)")
    parser.add_argument("--database", metavar="NAME", action="append", default=default, help="only this [database NAME] of the config (repeatable)")
    parser.add_argument("--out-dir", metavar="DIR", default=default, help="backup directory, overriding the config and PGDRILL_BACKUP_DIR")
    parser.add_argument("--dry-run", action="store_true", default=flag_default, help="say what would be done, change nothing")
    parser.add_argument("--json", action="store_true", default=flag_default, help="print a machine-readable result on stdout")
    parser.add_argument("--verbose", "-v", action="store_true", default=flag_default, help="log each step")
    parser.add_argument("--wait", metavar="SECONDS", type=_seconds, default=default, help="wait this long for another run of the same series to finish")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgdrill-backup",
        description="Back up PostgreSQL databases into checksummed, verifiable backup sets.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad usage or config, 75 another run holds the lock.",
    )
    _common(parser, suppress=False)
    parser.add_argument("--db", action="store_true", help="back up the database (the default when neither --db nor --media is given)")
    parser.add_argument("--media", action="store_true", help="back up the media root into the same set")
    parser.add_argument("--no-prune", action="store_true", help="do not apply retention after the backup")
    parser.add_argument("--version", action="version", version=f"pgdrill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{verify,prune,list,drill}")
    verify = sub.add_parser("verify", help="check a set's checksums and archive; --restore restores it into a scratch database")
    _common(verify, suppress=True)
    verify.add_argument("set", nargs="?", metavar="SET", help="set name, stamp or file name (default: the newest complete set)")
    verify.add_argument("--restore", action="store_true", help="also restore into a fresh scratch database and compare row counts")
    verify.add_argument("--jobs", type=_jobs, metavar="N", help="parallel pg_restore jobs (default: restore_jobs)")
    verify.add_argument("--all", action="store_true", help="verify every complete set, not just one")
    prune = sub.add_parser("prune", help="apply retention: delete sets past max age beyond the newest keep-last")
    _common(prune, suppress=True)
    listing = sub.add_parser("list", help="show the backup sets")
    _common(listing, suppress=True)
    scheduled = sub.add_parser("drill", help="a whole restore drill as the config's [drill] section says (what the drill timer on staging runs)")
    _common(scheduled, suppress=True)
    return parser


def _human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"


def _human_age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "future"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def cmd_backup(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    explicit = args.db or args.media
    results = []
    for config in configs:
        # As in the seed: no flag means the database; --db and --media choose exactly.
        include_db = args.db or not explicit
        include_media = args.media if explicit else config.media
        plan = plan_backup(config, include_db, include_media)  # one plan: printed by --dry-run, carried out otherwise
        if args.dry_run:
            plan = plan.preview()
            results.append({"database": config.label, "ok": True, "dry_run": True, "plan": plan})
            if not args.json:
                print(f"{config.label}: would write into {plan['backup_dir']}:")
                for name in plan["files"]:
                    print(f"  {name}")
                for note in plan["notes"]:
                    print(f"  note: {note}")
                if plan["prune"] is not None:
                    _print_prune(plan["prune"], dry_run=True, indent="  ")
            continue
        try:
            result = operations.backup(config, plan, wait=args.wait)
        except PgdrillError as exc:
            log.error("%s: backup failed: %s", config.label, exc.message)
            results.append({"database": config.label, "ok": False, "error": exc.message, "locked": isinstance(exc, LockBusy)})
            continue
        document = result["manifest"]
        results.append({"database": config.label, "ok": True, **result})
        if not args.json:
            sizes = ", ".join(f"{entry['kind']} {_human_size(entry['size'])}" for entry in document["files"])
            print(f"{config.label}: backup set {document['set']} written to {result['directory']} ({sizes}) in {document['duration_seconds']:.1f} s")
            if "prune" in result:
                removed = result["prune"]["removed"]
                print(f"{config.label}: retention kept {len(result['prune']['kept'])} set(s), removed {len(removed)}" + (": " + ", ".join(e["set"] for e in removed) if removed else ""))
    return results


def _print_prune(plan: List[Dict[str, Any]], dry_run: bool, indent: str = "") -> None:
    for entry in plan:
        verb = entry["action"]
        if verb == "remove":
            verb = "would remove" if dry_run else "removed"
        print(f"{indent}{verb:<12} {entry['set']}: {entry['reason']}")


def cmd_prune(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    results = []
    for config in configs:
        try:
            outcome = operations.prune(config, dry_run=args.dry_run, wait=args.wait)
        except PgdrillError as exc:
            log.error("%s: prune failed: %s", config.label, exc.message)
            results.append({"database": config.label, "ok": False, "error": exc.message, "locked": isinstance(exc, LockBusy)})
            continue
        results.append({"database": config.label, "ok": True, **outcome})
        if not args.json:
            print(f"{config.label}: {config.backup_dir} (keep_last {config.keep_last}, retention_days {config.retention_days})")
            _print_prune(outcome["removed"] + outcome["kept"], args.dry_run, "  ")
    return results


def cmd_verify(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    results = []
    targets = configs
    prefix = prefix_of(os.path.basename(args.set)) if args.set else None
    if prefix and len(configs) > 1:
        # The set's own prefix picks its series: "app_db_..." belongs to [database app_db], not to app.
        targets = [c for c in configs if c.prefix == prefix] or configs
    for config in targets:

        def show(outcome: Dict[str, Any], label: str = config.label) -> None:
            results.append({"database": label, **outcome})
            if not args.json:
                print(f"{label}: {outcome['set']}")
                for check in outcome["checks"]:
                    print(f"  {'ok' if check['ok'] else 'FAILED':<7} {check['name']}: {check['detail']}")

        try:
            operations.verify(config, args.set, every=args.all, restore=args.restore, jobs=args.jobs,
                              record=not args.dry_run, wait=args.wait, on_result=show)
        except PgdrillError as exc:
            log.error("%s: verify failed: %s", config.label, exc.message)
            results.append({"database": config.label, "ok": False, "error": exc.message, "locked": isinstance(exc, LockBusy)})
    return results


def cmd_list(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    results = []
    for config in configs:
        rows = Series(config).describe()
        results.append({"database": config.label, "ok": True, "backup_dir": config.backup_dir, "sets": rows})
        clock = future_sets_problem(rows)
        if clock:
            log.warning("%s: %s", config.label, clock)
        if not args.json:
            print(f"{config.label}: {config.backup_dir}")
            if not rows:
                print("  (no backup sets)")
                continue
            print(f"  {'SET':<40} {'TIME (UTC)':<19}  {'AGE':>8}  {'SIZE':>9}  {'STATE':<10} VERIFIED")
            for row in rows:
                when = row["time"][:19].replace("T", " ")
                print(f"  {row['set']:<40} {when:<19}  {_human_age(row['age_seconds']):>8}  {_human_size(row['size']):>9}  {row['state']:<10} {row['verified']}")
    return results


class _PipeSafeStdout:
    """stdout that survives its reader going away (``pgdrill-backup list | head``): the rest of the
    output is dropped, the work itself goes on and its exit code stands."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _silence(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._silence()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _on_sigterm(signum, frame):  # noqa: ARG001
    # Unwind like Ctrl-C so that partial files are removed on the way out.
    raise SystemExit(128 + signum)


def main(argv: Optional[List[str]] = None) -> int:
    if not isinstance(sys.stdout, _PipeSafeStdout):
        sys.stdout = _PipeSafeStdout(sys.stdout)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING, format="pgdrill: %(message)s")
    signal.signal(signal.SIGTERM, _on_sigterm)
    overrides: Dict[str, Any] = {}
    if args.out_dir is not None:
        overrides["backup_dir"] = args.out_dir  # checked like the config's backup_dir ("" is refused)
    command = args.command or "backup"
    if args.no_prune and command != "backup":
        parser.error(f"--no-prune applies to backups only; it cannot be combined with '{command}'")
    if command == "verify" and args.all and args.set:
        parser.error("verify --all checks every set: pass either --all or one SET, not both")
    if command == "drill":
        if args.out_dir is not None or args.database:
            parser.error("drill takes its set and database from the config's [drill] section, not --out-dir or --database")
        return cmd_drill(args)
    try:
        configs = load_configs(args.config, overrides=overrides, only=args.database)
    except PgdrillError as exc:
        print(f"pgdrill: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": exc.message}))
        return EXIT_USAGE
    handler = {"backup": cmd_backup, "prune": cmd_prune, "verify": cmd_verify, "list": cmd_list}[command]
    if command == "backup" and args.no_prune:
        configs = [_without_prune(config) for config in configs]
    try:
        results = handler(args, configs)
    except OSError as exc:
        # Every file operation of the engine reports its own failures with a fix; this is the last
        # line of defence, so that no run ever ends in a traceback.
        error = os_error(exc, "work on", getattr(exc, "filename", None) or "a file")
        print(f"pgdrill: {error.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "command": command, "error": error.message}))
        return EXIT_FAILED
    ok = all(result.get("ok") for result in results)
    if args.json:
        print(json.dumps({"ok": ok, "command": command, "results": results}, indent=2, default=str))
    if ok:
        return EXIT_OK
    if all(result.get("locked") for result in results if not result.get("ok")):
        return EXIT_LOCKED
    return EXIT_FAILED


def cmd_drill(args) -> int:
    """``pgdrill-backup drill``: the [drill] section's drill, the same engine code as the playbook's."""
    from .config import load_drill_config
    from .scheduled import run_drill

    try:
        config = load_drill_config(args.config)
    except PgdrillError as exc:
        print(f"pgdrill: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "command": "drill", "error": exc.message}))
        return EXIT_USAGE
    if args.dry_run:
        print(f"{config.database}: would drill the newest complete set of {config.prefix} from {config.source_dir or config.source}")
        return EXIT_OK
    outcome = run_drill(config)
    if args.json:
        print(json.dumps({"ok": outcome["exit_code"] == EXIT_OK, "command": "drill", **outcome}, indent=2, default=str))
    else:
        print(outcome["log_line"])
        if outcome["evidence"]:
            print(f"evidence: {outcome['evidence']}")
    return outcome["exit_code"]


def _without_prune(config: DatabaseConfig) -> DatabaseConfig:
    from dataclasses import replace

    return replace(config, prune_after_backup=False)


if __name__ == "__main__":
    sys.exit(main())
