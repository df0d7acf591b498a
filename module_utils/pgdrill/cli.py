# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
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
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional

from . import __version__, cli_pitr, operations
from .backup_plan import plan_backup
from .compat import load_seed_configs
from .config import DatabaseConfig, argument_type
from .console import PipeSafeStdout, on_sigterm
from .drill_config import load_drill_config
from .errors import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE, LockBusy, PgdrillError
from .fsio import os_error
from .naming import prefix_of
from .pitr_drill import physical_drill
from .series import future_sets_problem

log = logging.getLogger("pgdrill")


_seconds = argument_type("lock_wait", "--wait")
_jobs = argument_type("restore_jobs", "--jobs")


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
    sub = parser.add_subparsers(dest="command", metavar="{verify,prune,list,push,pull,pin,unpin,restore-media,drill,mark,pitr-backup,pitr-status,pitr-restore}")
    verify = sub.add_parser("verify", help="check a set's checksums and archive; --restore restores it into a scratch database")
    _common(verify, suppress=True)
    verify.add_argument("set", nargs="?", metavar="SET", help="set name, stamp or file name (default: the newest complete set)")
    verify.add_argument("--restore", action="store_true", help="also restore into a fresh scratch database and compare row counts")
    verify.add_argument("--jobs", type=_jobs, metavar="N", help="parallel pg_restore jobs (default: restore_jobs)")
    verify.add_argument("--all", action="store_true", help="verify every complete set, not just one")
    verify.add_argument("--remote", action="store_true", help="verify the off-host copy: download and hash every object (nothing is stored)")
    prune = sub.add_parser("prune", help="apply retention (keep-last and max-age, or tiers); --dry-run names every rule that keeps each set")
    _common(prune, suppress=True)
    prune.add_argument("--remote", action="store_true", help="apply retention to the off-host copy, with the same rules")
    listing = sub.add_parser("list", help="show the backup sets")
    _common(listing, suppress=True)
    listing.add_argument("--remote", action="store_true", help="show the sets on the off-host copy")
    push = sub.add_parser("push", help="upload sets to the off-host copy (remote), manifest last; resumable")
    _common(push, suppress=True)
    push.add_argument("set", nargs="?", metavar="SET", help="set name or stamp (default: the newest complete set)")
    push.add_argument("--all", action="store_true", help="push every complete set the remote lacks")
    pull = sub.add_parser("pull", help="download a set from the off-host copy, verified on arrival")
    _common(pull, suppress=True)
    pull.add_argument("set", nargs="?", metavar="SET", help="set name or stamp (default: the newest complete set on the remote)")
    pull.add_argument("--to", metavar="DIR", help="download into DIR (default: the backup directory)")
    pull.add_argument(
        "--accept-foreign",
        action="store_true",
        help="into an encrypted series, also take a set that is plaintext, encrypted to other recipients, or taken on another host",
    )
    media = sub.add_parser("restore-media", help="restore a set's media root as a new or empty directory: its files directly in DIR")
    _common(media, suppress=True)
    media.add_argument("set", nargs="?", metavar="SET", help="set name or stamp (default: the newest complete set holding media)")
    media.add_argument("--to", metavar="DIR", required=True, help="becomes the media root: its files go directly in DIR (missing or empty)")
    pin = sub.add_parser("pin", help="keep a set forever: no retention rule deletes a pinned set, here or on the remote")
    _common(pin, suppress=True)
    pin.add_argument("set", metavar="SET", help="set name, stamp or file name")
    pin.add_argument("--reason", required=True, metavar="TEXT", help='why it must stay (one line), e.g. "before migration 0042"')
    unpin = sub.add_parser("unpin", help="remove a set's pin: retention decides about it again")
    _common(unpin, suppress=True)
    unpin.add_argument("set", metavar="SET", help="set name, stamp or file name")
    scheduled = sub.add_parser("drill", help="a whole restore drill as the config's [drill] section says (what the drill timer on staging runs)")
    _common(scheduled, suppress=True)
    scheduled.add_argument("--physical", action="store_true", help="a point-in-time drill: pgBackRest restores the stanza into a throwaway server")
    scheduled.add_argument("--target", metavar="TARGET", help="latest (default), time:ISO8601, name:POINT, point:FILE or set:SET_ID (with --physical)")
    scheduled.add_argument("--stanza", metavar="S", help="pgBackRest stanza (default: the [drill] section's pitr_stanza)")
    scheduled.add_argument("--pgbackrest-config", metavar="F", help="pgBackRest's config file (default: pitr_config, else /etc/pgbackrest/pgbackrest.conf)")
    scheduled.add_argument("--keep", action="store_true", help="keep what the drill restored (a physical drill: its stopped data directory)")
    cli_pitr.add_parsers(sub, _common)
    return parser


def cmd_restore_media(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    def work(config: DatabaseConfig) -> Dict[str, Any]:
        done = operations.restore_media(config, args.set, os.path.abspath(args.to))
        if not args.json:
            print(f"{config.label}: media of {done['set']} restored into {done['destination']} in {done['seconds']:.1f} s")
        return done

    return _each(configs, "media restore", work)


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

    def work(config: DatabaseConfig) -> Dict[str, Any]:
        # As in the seed: no flag means the database; --db and --media choose exactly.
        include_db = args.db or not explicit
        include_media = args.media if explicit else config.media
        plan = plan_backup(config, include_db, include_media)  # one plan: printed by --dry-run, carried out otherwise
        if args.dry_run:
            preview = plan.preview()
            if not args.json:
                _print_preview(config, preview)
            return {"dry_run": True, "plan": preview}
        result = operations.backup(config, plan, wait=args.wait)
        if not args.json:
            _print_backup(config, result)
        return result

    return _each(configs, "backup", work)


def _print_preview(config: DatabaseConfig, preview: Dict[str, Any]) -> None:
    print(f"{config.label}: would write into {preview['backup_dir']}:")
    for name in preview["files"]:
        print(f"  {name}")
    for note in preview["notes"]:
        print(f"  note: {note}")
    if preview["prune"] is not None:
        _print_prune(preview["prune"], dry_run=True, indent="  ")


def _print_backup(config: DatabaseConfig, result: Dict[str, Any]) -> None:
    document = result["manifest"]
    sizes = ", ".join(f"{entry['kind']} {_human_size(entry['size'])}" for entry in document["files"])
    print(f"{config.label}: backup set {document['set']} written to {result['directory']} ({sizes}) in {document['duration_seconds']:.1f} s")
    for entry in (result.get("push") or {}).get("sets", []):
        print(f"{config.label}: pushed {entry['set']} to {result['push']['remote']} ({len(entry['uploaded'])} file(s) uploaded, manifest last)")
    if "prune" in result:
        removed = result["prune"]["removed"]
        print(
            f"{config.label}: retention kept {len(result['prune']['kept'])} set(s), removed {len(removed)}"
            + (": " + ", ".join(e["set"] for e in removed) if removed else "")
        )


def _print_prune(plan: List[Dict[str, Any]], dry_run: bool, indent: str = "") -> None:
    for entry in plan:
        verb = entry["action"]
        if verb == "remove":
            verb = "would remove" if dry_run else "removed"
        print(f"{indent}{verb:<12} {entry['set']}: {', '.join(entry.get('reasons') or [entry['reason']])}")


def _failed(label: str, action: str, exc: PgdrillError) -> Dict[str, Any]:
    """The one result of a failed command for a database, logged."""
    log.error("%s: %s failed: %s", label, action, exc.message)
    return {"database": label, "ok": False, "error": exc.message, "locked": isinstance(exc, LockBusy)}


def _each(
    configs: List[DatabaseConfig], action: str, work: Callable[[DatabaseConfig], Optional[Dict[str, Any]]], results: Optional[List[Dict[str, Any]]] = None
) -> List[Dict[str, Any]]:
    """Run ``work(config)`` for every database; a failure is a result naming it, not an exception.
    ``work`` returns its database's result, or None when it put its own results (one per set) into ``results``."""
    results = [] if results is None else results
    for config in configs:
        try:
            outcome = work(config)
            if outcome is not None:
                results.append({"database": config.label, "ok": True, **outcome})
        except PgdrillError as exc:
            results.append(_failed(config.label, action, exc))
    return results


def cmd_push(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    def work(config: DatabaseConfig) -> Dict[str, Any]:
        outcome = operations.push(config, args.set, every=args.all, dry_run=args.dry_run, wait=args.wait)
        if not args.json:
            for entry in outcome["sets"]:
                verb = "would upload" if args.dry_run else "uploaded"
                done = f"{verb} {', '.join(entry['uploaded'])}" if entry["uploaded"] else "already complete there"
                print(f"{config.label}: {entry['set']} -> {outcome['remote']}: {done}")
            if not outcome["sets"]:
                print(f"{config.label}: nothing to push to {outcome['remote']}")
        return outcome

    return _each(configs, "push", work)


def cmd_pull(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    def work(config: DatabaseConfig) -> Dict[str, Any]:
        directory = os.path.abspath(args.to or config.backup_dir)
        outcome = operations.pull(config, args.set, directory, dry_run=args.dry_run, accept_foreign=args.accept_foreign, wait=args.wait)
        if not args.json:
            verb = "would pull" if args.dry_run else "pulled"
            print(
                f"{config.label}: {verb} {outcome['set']} from {outcome['remote']} into {directory}"
                + ("" if args.dry_run else f" ({len(outcome['downloaded'])} downloaded, {len(outcome['present'])} already there; sha256 checked)")
            )
        return outcome

    return _each(configs, "pull", work)


def cmd_prune(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    def work(config: DatabaseConfig) -> Dict[str, Any]:
        outcome = operations.prune(config, dry_run=args.dry_run, wait=args.wait, on_remote=args.remote)
        if not args.json:
            print(f"{config.label}: {outcome.get('remote') or config.backup_dir} ({outcome['policy']})")
            _print_prune(outcome["removed"] + outcome["kept"], args.dry_run, "  ")
        return outcome

    return _each(configs, "remote prune" if args.remote else "prune", work)


def cmd_verify(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    results: List[Dict[str, Any]] = []
    targets = configs
    prefix = prefix_of(os.path.basename(args.set)) if args.set else None
    if prefix and len(configs) > 1:
        # The set's own prefix picks its series: "app_db_..." belongs to [database app_db], not to app.
        targets = [c for c in configs if c.prefix == prefix] or configs

    def work(config: DatabaseConfig) -> None:
        def show(outcome: Dict[str, Any]) -> None:
            results.append({"database": config.label, **outcome})
            if not args.json:
                _print_verify(config.label, outcome)

        if args.remote and args.dry_run:
            raise PgdrillError("verify --remote has no dry run: it only reads the remote", "leave out --dry-run")
        operations.verify(
            config,
            args.set,
            every=args.all,
            restore=args.restore,
            jobs=args.jobs,
            record=not args.dry_run,
            wait=args.wait,
            on_result=show,
            on_remote=args.remote,
        )

    return _each(targets, "verify", work, results)


def _print_verify(label: str, outcome: Dict[str, Any]) -> None:
    print(f"{label}: {outcome['set']}")
    for check in outcome["checks"]:
        print(f"  {'ok' if check['ok'] else 'FAILED':<7} {check['name']}: {check['detail']}")
    if outcome.get("verdict") == "inconclusive":
        print("  could not verify: nothing above blames the set, whose recorded verdict stays as it was; fix what is named and verify again")


def cmd_list_remote(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    def work(config: DatabaseConfig) -> Dict[str, Any]:
        listing = operations.describe_remote(config)
        if not args.json:
            print(f"{config.label}: {listing['remote']}")
            if not listing["sets"]:
                print("  (no backup sets)")
            for row in listing["sets"]:
                when = row["time"][:19].replace("T", " ")
                flags = ("encrypted" if row["encrypted"] else "plain") + (", pinned" if row["pinned"] else "")
                print(f"  {row['set']:<40} {when:<19}  {_human_age(row['age_seconds']):>8}  {_human_size(row['size']):>9}  {row['state']:<10} {flags}")
                if row["problem"]:
                    print(f"    {row['problem']}")
        return listing

    return _each(configs, "remote list", work)


def cmd_list(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    if args.remote:
        return cmd_list_remote(args, configs)

    def work(config: DatabaseConfig) -> Dict[str, Any]:
        listing = operations.describe(config)
        rows = listing["sets"]
        if listing["remote_problem"]:
            log.warning("%s: cannot read the off-host copy: %s", config.label, listing["remote_problem"])
        clock = future_sets_problem(rows)
        if clock:
            log.warning("%s: %s", config.label, clock)
        if not args.json:
            _print_list(config, rows)
        return {"backup_dir": config.backup_dir, "sets": rows}

    return _each(configs, "list", work)


def _print_list(config: DatabaseConfig, rows: List[Dict[str, Any]]) -> None:
    print(f"{config.label}: {config.backup_dir}")
    if not rows:
        print("  (no backup sets)")
        return
    remote = f" {'REMOTE':<10}" if config.remote else ""
    print(f"  {'SET':<40} {'TIME (UTC)':<19}  {'AGE':>8}  {'SIZE':>9}  {'STATE':<10} {'VERIFIED':<10}{remote} PIN")
    for row in rows:
        when = row["time"][:19].replace("T", " ")
        there = f" {row['remote']:<10}" if config.remote else ""
        pin = f'pinned: "{row["pin"]["reason"]}" ({row["pin"]["by"]}, {row["pin"]["pinned_at"]})' if row["pinned"] else ""
        print(
            f"  {row['set']:<40} {when:<19}  {_human_age(row['age_seconds']):>8}  {_human_size(row['size']):>9}  {row['state']:<10} {row['verified']:<10}{there} {pin}".rstrip()
        )
        unverified = (row.get("verification") or {}).get("could_not_verify")
        if unverified:
            print(f"    the last verify could not run ({_shorten(unverified)}): VERIFIED is the verdict before it")


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cmd_pin(args, configs: List[DatabaseConfig]) -> List[Dict[str, Any]]:
    """pin and unpin: in the series the set's own prefix names (as verify)."""
    unpin = args.command == "unpin"
    prefix = prefix_of(os.path.basename(args.set))
    targets = [c for c in configs if c.prefix == prefix] if prefix and len(configs) > 1 else configs
    if len(targets) != 1:
        message = (
            f"{args.set!r} does not say which database's series it belongs to; name the set by its full name (<prefix>_<stamp>_utc) or pass --database NAME"
        )
        log.error("%s", message)
        return [{"ok": False, "error": message}]

    def work(config: DatabaseConfig) -> Dict[str, Any]:
        outcome = operations.pin(config, args.set, getattr(args, "reason", None), unpin=unpin, dry_run=args.dry_run, wait=args.wait)
        if not args.json:
            _print_pin(config.label, outcome, unpin, args.dry_run)
        return {"dry_run": args.dry_run, **outcome}

    return _each(targets, args.command, work)


def _print_pin(label: str, outcome: Dict[str, Any], unpin: bool, dry_run: bool) -> None:
    pin = outcome["pin"]
    would = "would be " if dry_run else ""
    if unpin:
        text = f'{would}unpinned (pinned by {pin["by"]}: "{pin["reason"]}")' if outcome["changed"] and pin else "not pinned; nothing to do"
        text = f"{would}unpinned" if outcome["changed"] and not pin else text
    elif outcome["changed"]:
        text = f'{would}pinned: "{pin["reason"]}"; no retention rule deletes it, here or on the remote'
    else:
        text = f'already pinned by {pin["by"]} at {pin["pinned_at"]}: "{pin["reason"]}"; nothing changed'
    remote = outcome.get("remote")
    print(f"{label}: {outcome['set']} {text}" + (f" ({remote})" if remote and (outcome["changed"] or unpin) else ""))


def main(argv: Optional[List[str]] = None) -> int:
    if not isinstance(sys.stdout, PipeSafeStdout):
        sys.stdout = PipeSafeStdout(sys.stdout)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if args.verbose else logging.WARNING, format="pgdrill: %(message)s")
    signal.signal(signal.SIGTERM, on_sigterm)
    overrides: Dict[str, Any] = {}
    if args.out_dir is not None:
        overrides["backup_dir"] = args.out_dir  # checked like the config's backup_dir ("" is refused)
    command = args.command or "backup"
    if args.no_prune and command != "backup":
        parser.error(f"--no-prune applies to backups only; it cannot be combined with '{command}'")
    if command in ("verify", "push") and args.all and args.set:
        parser.error(f"{command} --all works on every set: pass either --all or one SET, not both")
    if command == "drill":
        if args.out_dir is not None or args.database:
            parser.error("drill takes its set and database from the config's [drill] section, not --out-dir or --database")
        return cmd_drill(args)
    if command in ("pitr-backup", "pitr-status"):
        return cli_pitr.run(args)
    if command == "pitr-restore":
        return cli_pitr.restore(args)
    try:
        configs = load_seed_configs(args.config, overrides=overrides, only=args.database)
    except PgdrillError as exc:
        print(f"pgdrill: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": exc.message}))
        return EXIT_USAGE
    handler = {
        "backup": cmd_backup,
        "prune": cmd_prune,
        "verify": cmd_verify,
        "list": cmd_list,
        "push": cmd_push,
        "pull": cmd_pull,
        "pin": cmd_pin,
        "unpin": cmd_pin,
        "restore-media": cmd_restore_media,
        "mark": lambda args, configs: cli_pitr.cmd_mark(args, configs, _each),
    }[command]
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
    try:
        config = load_drill_config(args.config)
        physical = physical_drill(config, args.physical, args.target, args.stanza, args.pgbackrest_config)
    except PgdrillError as exc:
        print(f"pgdrill: {exc.message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "command": "drill", "error": exc.message}))
        return EXIT_USAGE
    if args.keep:
        config = replace(config, keep="always")
    if args.dry_run:
        what = f"restore stanza {physical.stanza} to {physical.target}" if physical else f"drill the newest complete set of {config.prefix}"
        print(f"{config.database}: would {what} from {config.source_dir or config.source}")
        return EXIT_OK
    outcome = operations.scheduled_drill(config, physical)
    if args.json:
        print(json.dumps({"ok": outcome["exit_code"] == EXIT_OK, "command": "drill", **outcome}, indent=2, default=str))
    else:
        print(outcome["log_line"])
        if outcome["evidence"]:
            print(f"evidence: {outcome['evidence']}")
    return outcome["exit_code"]


def _without_prune(config: DatabaseConfig) -> DatabaseConfig:
    return replace(config, prune_after_backup=False)


if __name__ == "__main__":
    sys.exit(main())
