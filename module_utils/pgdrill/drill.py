# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Restore drills: smoke checks on a restored database, and the evidence a drill leaves behind.

A smoke check is one of:
  {"name": ..., "sql": "...", "expect": "rows"}            the query must return at least one row
  {"name": ..., "sql": "...", "expect": "none"}            the query must return no row
  {"name": ..., "sql": "...", "expect": "value", "value": X} the first column of the first row equals X
  {"name": ..., "command": [argv...], "chdir": DIR}        the program must exit 0
SQL checks always run inside a transaction that is rolled back, so checks that write (create a
client, an invoice) leave the restored database as it was. Commands get the restored database's
connection in their environment, both as libpq's PG* variables and as the POSTGRES_* names the seed's
Django settings read.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from datetime import datetime
from typing import Any, Dict, List, Optional

from .errors import PgdrillError
from .fingerprint import Difference
from .fsio import AtomicWriter, ensure_private_dir
from .manifest import encode
from .metrics import update_drill, update_pitr_drill
from .naming import prefix_of

EXPECTATIONS = ("rows", "none", "value")


def check_spec_problem(check: Any) -> Optional[str]:
    """Why a check definition is unusable, or None. Pure."""
    if not isinstance(check, dict) or not check.get("name"):
        return f"every check needs a name: {check!r}"
    has_sql, has_command = "sql" in check, "command" in check
    if has_sql == has_command:
        return f"check {check['name']!r} needs exactly one of 'sql' or 'command'"
    if has_sql and check.get("expect", "rows") not in EXPECTATIONS:
        return f"check {check['name']!r}: expect must be one of {', '.join(EXPECTATIONS)}"
    if has_sql and check.get("expect") == "value" and "value" not in check:
        return f"check {check['name']!r}: expect value needs 'value'"
    if has_command and not (isinstance(check["command"], list) and check["command"] and all(isinstance(a, str) for a in check["command"])):
        return f"check {check['name']!r}: command must be a non-empty list of strings (an argument list, no shell)"
    return None


def judge_rows(check: Dict[str, Any], rows: List[tuple]) -> "tuple[bool, str]":
    """Whether query results meet the check's expectation. Pure."""
    expect = check.get("expect", "rows")
    if expect == "rows":
        return (bool(rows), f"{len(rows)} row(s)" if rows else "returned no rows, expected at least one")
    if expect == "none":
        return (not rows, "no rows" if not rows else f"returned {len(rows)} row(s), expected none: first {rows[0]!r}")
    got = rows[0][0] if rows and rows[0] else None
    wanted = check["value"]
    ok = str(got) == str(wanted)
    return ok, f"value {got!r}" if ok else f"value {got!r}, expected {wanted!r}"


def command_env(connection_env: Dict[str, str]) -> Dict[str, str]:
    """The restored database's connection for an application command, in libpq and seed names."""
    env = dict(os.environ)
    env.update(connection_env)
    aliases = {"PGHOST": "POSTGRES_HOST", "PGPORT": "POSTGRES_PORT", "PGDATABASE": "POSTGRES_DB", "PGUSER": "POSTGRES_USER", "PGPASSWORD": "POSTGRES_PASSWORD"}
    for libpq_name, seed_name in aliases.items():
        if libpq_name in connection_env:
            env[seed_name] = connection_env[libpq_name]
    return env


def run_checks(conn, checks: List[Dict[str, Any]], connection_env: Dict[str, str], timeout: float = 600) -> List[Dict[str, Any]]:
    """Run every check; a failure is a result, never an exception."""
    results = []
    for check in checks:
        started = time.monotonic()
        if "sql" in check:
            try:
                with conn.transaction(force_rollback=True):
                    cursor = conn.execute(check["sql"])
                    rows = cursor.fetchall() if cursor.description else []
                ok, detail = judge_rows(check, rows)
            except Exception as exc:  # noqa: BLE001 - a failing query is a failed check
                ok, detail = False, f"query failed: {str(exc).strip().splitlines()[0]}"
        else:
            try:
                done = subprocess.run(
                    check["command"], cwd=check.get("chdir"), env=command_env(connection_env), capture_output=True, text=True, timeout=timeout
                )
                ok = done.returncode == 0
                tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
                detail = "exit 0" if ok else f"exit {done.returncode}: {tail[0]}"
            except FileNotFoundError:
                ok, detail = False, f"{check['command'][0]} not found"
            except subprocess.TimeoutExpired:
                ok, detail = False, f"did not finish within {timeout:g} s"
        results.append(
            {"name": check["name"], "kind": "sql" if "sql" in check else "command", "ok": ok, "detail": detail, "seconds": round(time.monotonic() - started, 3)}
        )
    return results


def validate_checks(checks: List[Any]) -> None:
    for check in checks:
        problem = check_spec_problem(check)
        if problem:
            raise PgdrillError(f"bad smoke check: {problem}", "see the pgdrill_smoke module's documentation for the check format")


def _restore_view(restore: Dict[str, Any]) -> Dict[str, Any]:
    """A pgdrill_restore result, whether the task passed or failed (a failure carries the result so
    far under ``restore``, and the comparison's findings beside it). Pure."""
    if "restore" in restore and isinstance(restore["restore"], dict):
        return {**restore["restore"], **{key: restore[key] for key in ("fidelity", "row_counts") if key in restore}}
    return restore


def restore_checks(restore: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The restore's own checks, for the evidence: the fingerprint comparison and the row counts. Pure."""
    view = _restore_view(restore)
    checks = []
    fidelity = view.get("fidelity") or {}
    if fidelity.get("checked"):
        differences = fidelity.get("differences") or []
        left_out = view.get("not_restored") or []
        if differences:
            shown = "; ".join(Difference(**d).describe() for d in differences[:5])
            detail = f"{len(differences)} object(s) differ: {shown}"
        else:
            detail = f"{fidelity.get('objects')} objects match" + (f" ({' and '.join(left_out)} not compared)" if left_out else "")
        checks.append({"name": "fingerprint against the backup", "kind": "fingerprint", "ok": not differences, "detail": detail})
    elif "fidelity" in view:
        checks.append({"name": "fingerprint against the backup", "kind": "fingerprint", "ok": True, "detail": f"skipped: {fidelity.get('reason')}"})
    counts = view.get("row_counts") or {}
    if counts.get("checked"):
        mismatches = counts.get("mismatches") or []
        detail = (
            f"{counts.get('tables')} tables, {counts.get('rows')} rows"
            if not mismatches
            else f"{len(mismatches)} table(s) differ, first {mismatches[0][0]}: expected {mismatches[0][1]}, found {mismatches[0][2]}"
        )
        checks.append({"name": "row counts against the manifest", "kind": "row_counts", "ok": not mismatches, "detail": detail})
    return checks


def compose_record(
    record: Dict[str, Any], restore: Optional[Dict[str, Any]], smoke: Optional[Dict[str, Any]], cleanup: Optional[Dict[str, Any]]
) -> Dict[str, Any]:
    """A drill's evidence record: the drill's own facts, plus what the restore, the smoke checks and
    the cleanup reported. Pure."""
    view = _restore_view(restore or {})
    out = dict(record)
    out.update(
        {
            "staging_server_version": view.get("server_version"),
            "server_majors": view.get("server_majors"),
            "pg_restore": view.get("pg_restore"),
            "restore_timings": view.get("timings") or {},
            "restore_commands": view.get("commands") or [],
            "restore_command_lines": view.get("command_lines") or [],
            "not_restored": view.get("not_restored") or [],
            "fidelity": view.get("fidelity"),
            "row_counts": view.get("row_counts"),
            "globals_roles_left_alone": view.get("globals_roles_left_alone") or [],
            "globals_changes": view.get("globals_changes") or [],
            "roles_created": view.get("roles_created") or [],
            "roles_dropped": (cleanup or {}).get("roles_dropped") or [],
            "roles_kept": (cleanup or {}).get("roles_kept") or [],
            "checks": restore_checks(restore or {}) + list((smoke or {}).get("results") or []),
        }
    )
    return out


def outcome_notes(record: Dict[str, Any]) -> List[str]:
    """What a PASSED must say alongside: what was not restored by choice, what was not compared,
    and a change of major version. Pure."""
    notes = []
    left_out = record.get("not_restored") or []
    if left_out:
        notes.append(f"{' and '.join(left_out)} not restored")
    fidelity = record.get("fidelity") or {}
    if record.get("fidelity") is not None and not fidelity.get("checked"):
        notes.append("no fingerprint in the set: row counts only")
    explained = fidelity.get("notes") or []
    if explained:
        notes.append(f"{len(explained)} difference(s) that the newer server explains, listed in the evidence")
    majors = record.get("server_majors") or {}
    if majors.get("note"):
        notes.append(majors["note"])
    return notes


SMOKE_KINDS = ("sql", "command")


def checks_summary(record: Dict[str, Any]) -> str:
    """How many checks passed; a passed drill without smoke checks says that none are configured,
    not "2/2 checks ok" for the restore's own proofs. Pure."""
    checks = record.get("checks") or []
    passed = sum(1 for check in checks if check.get("ok"))
    if record.get("outcome") == "passed" and not any(check.get("kind") in SMOKE_KINDS for check in checks):
        return f"{passed}/{len(checks)} restore proofs ok, no smoke checks configured"
    return f"{passed}/{len(checks)} checks ok"


def set_facts(name: str, manifest: Dict[str, Any]) -> Dict[str, Any]:
    """What a drill's record says about the set it drills, from the set's manifest. Pure."""
    files = manifest.get("files") or []
    return {
        "set": name,
        "files": files,
        "sha256": next((f.get("sha256") for f in files if f.get("kind") == "db"), None),
        "tool_version": (manifest.get("tool") or {}).get("version"),
        "pg_dump_version": (manifest.get("client") or {}).get("pg_dump_version"),
        "source_server_version": (manifest.get("database") or {}).get("server_version"),
    }


def keeps_scratch(keep: str, passed: bool) -> bool:
    """Whether a drill keeps its scratch database (and the copies of its set): ``keep`` is never,
    on_failure or always. Pure."""
    return keep == "always" or (keep == "on_failure" and not passed)


def left_out_of_kept_copies(files: List[Dict[str, Any]]) -> List[str]:
    """The files of a set that a copy kept after a drill never holds: the globals, with the source's
    role password hashes (the source still has them). Pure."""
    return [str(entry.get("name")) for entry in files if isinstance(entry, dict) and entry.get("kind") == "globals"]


def strip_kept_copy(directory: str, files: List[Dict[str, Any]]) -> List[str]:
    """Remove from ``directory``, a copy of a set kept after a drill, the files it must not hold
    (:func:`left_out_of_kept_copies`); returns their names."""
    names = left_out_of_kept_copies(files)
    for name in names:
        try:
            os.unlink(os.path.join(directory, os.path.basename(name)))
        except FileNotFoundError:
            pass
    return names


def kept_note(record: Dict[str, Any]) -> Optional[str]:
    """What a drill kept on purpose (pgdrill_drill_keep, keep = ...) and where: the scratch database
    and the copies of the set, with the files left out of them (the globals, which hold the source's
    password hashes). Pure."""
    if not record.get("scratch_database_kept"):
        return None
    note = f"kept: scratch database {record.get('scratch_database')}"
    copies = [str(copy) for copy in record.get("kept_copies") or []]
    if copies:
        left_out = [str(name) for name in record.get("kept_copies_left_out") or []]
        note += f", {'copies' if len(copies) > 1 else 'copy'} of the set at {' and '.join(copies)}"
        note += f" without {', '.join(left_out)}" if left_out else ""
    return note


def log_line(record: Dict[str, Any]) -> str:
    """The dated Markdown line a drill appends to the drill log (the seed's docs/MEMORY.md step). Pure."""
    when = record.get("finished_at") or record.get("started_at") or ""
    try:
        when = datetime.fromisoformat(str(when).replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        pass
    restore = (record.get("timings") or {}).get("restore")
    notes = outcome_notes(record)
    outcomes = {"passed": "PASSED" + (f" ({'; '.join(notes)})" if notes else ""), "checked": "CHECK MODE: chosen and verified at the source, nothing restored"}
    outcome = outcomes.get(str(record.get("outcome")), f"FAILED at {record.get('failed_step') or 'unknown step'}")
    kept = kept_note(record)
    parts = [
        when,
        *([f"drill {record['drill_id']}"] if record.get("drill_id") else []),  # in the evidence file's name too
        f"{record.get('database')} from {record.get('source_host')}",
        *(_physical_parts(record) if record.get("kind") == "physical" else [f"set {record.get('set') or 'none'}"]),
        f"restore {restore:.1f} s" if isinstance(restore, (int, float)) else "no restore",
        checks_summary(record),
        *([kept] if kept else []),
        outcome,
    ]
    return "- " + " · ".join(parts)


def _physical_parts(record: Dict[str, Any]) -> List[str]:
    """A physical drill's target, RPO and RTO, for its log line. Pure."""
    target = record.get("target") or {}
    rpo, rto = record.get("rpo_seconds"), record.get("rto_seconds")
    return [
        f"physical to {target.get('type')}" + (f" {target.get('restore_point') or target.get('value')}" if target.get("value") else ""),
        f"RPO {rpo:.1f} s" if isinstance(rpo, (int, float)) else "RPO n/a",
        f"RTO {rto:.1f} s" if isinstance(rto, (int, float)) else "no RTO",
        *([physical_proofs(record["proofs"])] if record.get("proofs") else []),
    ]


def physical_proofs(proofs: Dict[str, Any]) -> str:
    """What a physical drill proved, and what it could not (no point record, no logical set). Pure."""
    amcheck = proofs.get("amcheck")
    words = {
        "fingerprint": proofs.get("fingerprint"),
        "row counts": proofs.get("row_counts"),
        "amcheck": f"{amcheck.get('indexes')} indexes, {len(amcheck.get('failed') or [])} failed" if isinstance(amcheck, dict) else amcheck,
        "logical set": proofs.get("logical_equal"),
        "smoke checks": proofs.get("smoke"),
    }
    shown = [f"{name} {value}" for name, value in words.items() if value not in (None, "n/a")]
    unproved = [name for name, value in words.items() if value == "n/a"]
    return "proofs: " + (", ".join(shown) or "none") + (f" (not proved: {', '.join(unproved)})" if unproved else "")


def new_drill_id() -> str:
    """A drill's own id: two drills started in the same second still keep two records and two lines."""
    return secrets.token_hex(4)


def evidence_name(record: Dict[str, Any]) -> str:
    """``drill_<database>_<started stamp>_<drill id>.json``. Pure."""
    stamp = re.sub(r"[^0-9TZ]", "", str(record.get("started_at") or "")) or "unknown"
    drill_id = re.sub(r"[^A-Za-z0-9]", "", str(record.get("drill_id") or ""))
    return f"drill_{re.sub(r'[^A-Za-z0-9_.-]', '_', str(record.get('database') or 'db'))}_{stamp}{'_' + drill_id if drill_id else ''}.json"


def write_evidence(directory: str, record: Dict[str, Any], metrics_dir: Optional[str] = None) -> str:
    """Write a drill's evidence record (0600, atomically; the same drill, by its id, written again
    replaces it) and, with ``metrics_dir``, its metrics (:func:`record_metrics`). The one writer for
    the playbook drill (pgdrill_evidence) and the scheduled one (pgdrill-backup drill)."""
    name = evidence_name(record)
    ensure_private_dir(directory)
    with AtomicWriter(directory, name) as writer:
        writer.write(encode(record))
        writer.commit(replace=True)
    if metrics_dir:
        record_metrics(metrics_dir, record)
    return os.path.join(directory, name)


def record_metrics(metrics_dir: str, record: Dict[str, Any]) -> None:
    """The metrics of a drill that ran (passed or failed; not one in check mode)."""
    if record.get("outcome") in ("passed", "failed") and record.get("kind") == "physical":
        passed = record["outcome"] == "passed"
        update_pitr_drill(
            metrics_dir, str(record.get("database")), str(record.get("stanza")), time.time(), passed, record.get("rpo_seconds"), record.get("rto_seconds")
        )
    elif record.get("outcome") in ("passed", "failed"):
        series = prefix_of(str(record.get("set") or "")) or str(record.get("database"))
        restore = (record.get("timings") or {}).get("restore")
        update_drill(metrics_dir, series, str(record.get("source_host")), time.time(), record["outcome"] == "passed", restore)
