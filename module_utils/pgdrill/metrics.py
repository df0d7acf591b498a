# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Metrics for Prometheus' node_exporter textfile collector: one ``.prom`` file per series, rewritten
whole and atomically after every run, so a stopped timer shows up as a stale timestamp and a failing
run as a non-zero exit code, without anyone running a playbook.

What a file says is derived from the backup directory (the sets, their manifests and verification
records) plus a small state record of the last run of each command (when it started, how it
ended), kept beside the file. Rendering is pure; writing is fsio.write_text (a temp file and a rename).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, NamedTuple, Optional

from . import __version__
from .fsio import write_text

HELP = {
    "pgdrill_backup_last_success_timestamp_seconds": "When the newest complete backup set finished (Unix time).",
    "pgdrill_backup_last_attempt_timestamp_seconds": "When the last backup run started (Unix time).",
    "pgdrill_backup_last_exit_code": "Exit code of the last backup run (0 ok, 1 failed, 2 bad config, 75 locked).",
    "pgdrill_backup_last_duration_seconds": "How long the last backup run took.",
    "pgdrill_backup_last_size_bytes": "Size of each kind of file in the newest complete set.",
    "pgdrill_sets": "Backup sets on disk, by state.",
    "pgdrill_verify_last_success_timestamp_seconds": "When a set last passed verification, by level (checksums, restore).",
    "pgdrill_drill_last_success_timestamp_seconds": "When the last restore drill of this series passed (Unix time).",
    "pgdrill_drill_last_attempt_timestamp_seconds": "When the last restore drill of this series finished, passed or not (Unix time).",
    "pgdrill_drill_last_passed": "Whether the last restore drill passed (1) or failed (0).",
    "pgdrill_drill_last_restore_seconds": "How long the last passed drill's restore took (the measured RTO).",
    "pgdrill_pitr_drill_last_attempt_timestamp_seconds": "When the last point-in-time restore drill finished, passed or not (Unix time).",
    "pgdrill_pitr_drill_last_passed": "Whether the last point-in-time restore drill passed (1) or failed (0).",
    "pgdrill_pitr_drill_last_success_timestamp_seconds": "When the last point-in-time restore drill passed (Unix time).",
    "pgdrill_pitr_drill_last_rpo_seconds": "The last passed point-in-time drill's measured RPO (absent when it could not be measured).",
    "pgdrill_pitr_drill_last_rto_seconds": "The last passed point-in-time drill's RTO: restore, recovery and checks.",
    "pgdrill_remote_last_success_timestamp_seconds": "When a push to the off-host copy last succeeded (Unix time), by target.",
    "pgdrill_remote_newest_set_uploaded": "Whether the newest complete set is complete on the off-host copy (1) or not (0), by target.",
    "pgdrill_info": "pgdrill's version, always 1.",
    "pgdrill_pitr_archive_last_success_timestamp_seconds": "When the server last archived a WAL file (pg_stat_archiver, Unix time).",
    "pgdrill_pitr_archive_failed_total": "WAL files the server failed to archive since its statistics were reset (pg_stat_archiver).",
    "pgdrill_pitr_archive_last_failure_timestamp_seconds": "When archiving last failed (pg_stat_archiver, Unix time).",
    "pgdrill_pitr_backup_last_success_timestamp_seconds": "When the newest physical backup of each type finished (pgBackRest info, Unix time).",
    "pgdrill_pitr_backup_last_attempt_timestamp_seconds": "When the last pitr-backup run started (Unix time).",
    "pgdrill_pitr_backup_last_exit_code": "Exit code of the last pitr-backup run.",
    "pgdrill_pitr_backup_last_duration_seconds": "How long the last pitr-backup run took.",
    "pgdrill_pitr_window_start_timestamp_seconds": "The oldest time a point-in-time restore can reach (pgBackRest info, Unix time).",
}
STATES = ("complete", "incomplete", "damaged", "future")


class Sample(NamedTuple):
    name: str
    labels: Dict[str, str]
    value: float


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


def render(samples: Iterable[Sample]) -> str:
    """The Prometheus text format: HELP and TYPE once per metric, samples in a stable order. Pure."""
    by_name: Dict[str, List[Sample]] = {}
    for sample in samples:
        by_name.setdefault(sample.name, []).append(sample)
    lines = []
    for name in sorted(by_name):
        lines.append(f"# HELP {name} {HELP.get(name, name)}")
        lines.append(f"# TYPE {name} gauge")
        for sample in sorted(by_name[name], key=lambda s: sorted(s.labels.items())):
            labels = ",".join(f'{key}="{_escape(str(value))}"' for key, value in sorted(sample.labels.items()))
            lines.append(f"{name}{{{labels}}} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


def _timestamp(moment: Any) -> Optional[float]:
    try:
        return datetime.fromisoformat(str(moment).replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        return None


def series_samples(series: str, sets: List[Dict[str, Any]], state: Dict[str, Any]) -> List[Sample]:
    """Samples for one series from its sets (``Series.describe()`` rows, newest first, with their
    manifest and verification summaries) and the state of its last runs. Pure."""
    label = {"series": series}
    samples = [Sample("pgdrill_info", {"version": __version__}, 1)]
    counts = {state_name: 0 for state_name in STATES}
    for entry in sets:
        counts[entry.get("state", "incomplete")] = counts.get(entry.get("state", "incomplete"), 0) + 1
    samples += [Sample("pgdrill_sets", dict(label, state=name), count) for name, count in counts.items()]
    newest = next((entry for entry in sets if entry.get("state") == "complete"), None)
    if newest is not None:
        finished = _timestamp(newest.get("finished_at") or newest.get("time"))
        if finished is not None:
            samples.append(Sample("pgdrill_backup_last_success_timestamp_seconds", label, finished))
        for kind, size in sorted((newest.get("sizes") or {}).items()):
            samples.append(Sample("pgdrill_backup_last_size_bytes", dict(label, kind=kind), size))
    verified: Dict[str, float] = {}
    for entry in sets:
        record = entry.get("verification") or {}
        checked = _timestamp(record.get("checked_at")) if record.get("ok") else None
        if checked is not None:
            level = "restore" if record.get("restored") else "checksums"
            verified[level] = max(verified.get(level, 0.0), checked)
    samples += [Sample("pgdrill_verify_last_success_timestamp_seconds", dict(label, level=level), when) for level, when in verified.items()]
    backup = state.get("backup") or {}
    if backup:
        samples += [
            Sample("pgdrill_backup_last_attempt_timestamp_seconds", label, backup["started"]),
            Sample("pgdrill_backup_last_exit_code", label, backup["exit_code"]),
            Sample("pgdrill_backup_last_duration_seconds", label, backup["duration"]),
        ]
    for target, remote in sorted((state.get("remote") or {}).items()):
        if remote.get("last_success") is not None:
            samples.append(Sample("pgdrill_remote_last_success_timestamp_seconds", dict(label, target=target), remote["last_success"]))
        uploaded = set(remote.get("uploaded_sets") or [])
        if newest is not None:
            samples.append(Sample("pgdrill_remote_newest_set_uploaded", dict(label, target=target), 1 if newest.get("set") in uploaded else 0))
    return samples


def _drill_outcome(metric: str, label: Dict[str, str], state: Dict[str, Any]) -> List[Sample]:
    """A drill kind's last attempt, outcome and success (``<metric>_last_...``). Pure."""
    samples = [Sample("pgdrill_info", {"version": __version__}, 1)]
    if state.get("last_attempt") is not None:
        samples.append(Sample(f"{metric}_last_attempt_timestamp_seconds", label, state["last_attempt"]))
        samples.append(Sample(f"{metric}_last_passed", label, 1 if state.get("last_passed") else 0))
    if state.get("last_success") is not None:
        samples.append(Sample(f"{metric}_last_success_timestamp_seconds", label, state["last_success"]))
    return samples


def drill_samples(series: str, source: str, state: Dict[str, Any]) -> List[Sample]:
    """Samples of a series' restore drills, written where the drills run (staging). Pure."""
    label = {"series": series, "source": source}
    samples = _drill_outcome("pgdrill_drill", label, state)
    if state.get("last_success") is not None:
        samples.append(Sample("pgdrill_drill_last_restore_seconds", label, state.get("restore_seconds") or 0))
    return samples


def pitr_drill_samples(database: str, stanza: str, state: Dict[str, Any]) -> List[Sample]:
    """Samples of a database's point-in-time restore drills, written where they run (staging). Pure."""
    label = {"database": database, "stanza": stanza}
    samples = _drill_outcome("pgdrill_pitr_drill", label, state)
    if state.get("last_success") is not None:
        if state.get("rpo_seconds") is not None:
            samples.append(Sample("pgdrill_pitr_drill_last_rpo_seconds", label, state["rpo_seconds"]))
        samples.append(Sample("pgdrill_pitr_drill_last_rto_seconds", label, state.get("rto_seconds") or 0))
    return samples


def _record_drill(directory: str, series: str, finished: float, passed: bool, on_success: Dict[str, Any]) -> Dict[str, Any]:
    """The drill state of ``series`` with this drill recorded (and written): what a passed one adds is ``on_success``."""
    state = read_state(directory, series)
    state.update(last_attempt=finished, last_passed=passed)
    if passed:
        state.update(last_success=finished, **on_success)
    write_metrics_text(directory, state_file_name(series), json.dumps(state, sort_keys=True), mode=0o600)
    return state


def update_drill(directory: str, series: str, source: str, finished: float, passed: bool, restore_seconds: Optional[float]) -> str:
    """Record a drill and rewrite the drill metrics of the series (kept apart from the backup
    metrics: staging holds no backups of its own)."""
    state = _record_drill(directory, f"drill_{series}", finished, passed, {"restore_seconds": restore_seconds})
    return write_metrics_text(directory, file_name(f"drill_{series}"), render(drill_samples(series, source, state)))


def update_pitr_drill(directory: str, database: str, stanza: str, finished: float, passed: bool, rpo: Optional[float], rto: Optional[float]) -> str:
    """Record a point-in-time drill and rewrite its metrics (``pgdrill_pitr_drill_<database>.prom``)."""
    state = _record_drill(directory, f"pitr_drill_{database}", finished, passed, {"rpo_seconds": rpo, "rto_seconds": rto})
    return write_metrics_text(directory, file_name(f"pitr_drill_{database}"), render(pitr_drill_samples(database, stanza, state)))


def pitr_samples(stanza: str, status: Dict[str, Any], state: Dict[str, Any]) -> List[Sample]:
    """Samples of a stanza from ``operations.pitr_status`` (pgBackRest's info and the server's
    archiver) and the state of the last pitr-backup run. Pure."""
    label = {"stanza": stanza}
    samples = [Sample("pgdrill_info", {"version": __version__}, 1)]
    archive = status.get("archive") or {}
    for name, value in (
        ("pgdrill_pitr_archive_last_success_timestamp_seconds", _timestamp(archive.get("last_archived_at"))),
        ("pgdrill_pitr_archive_failed_total", archive.get("failed_count")),
        ("pgdrill_pitr_archive_last_failure_timestamp_seconds", _timestamp(archive.get("last_failed_at"))),
        ("pgdrill_pitr_window_start_timestamp_seconds", _timestamp(status.get("oldest_restorable_at"))),
    ):
        if value is not None:
            samples.append(Sample(name, label, value))
    newest: Dict[str, float] = {}
    for backup in status.get("backups") or []:
        stopped = _timestamp(backup.get("stopped_at"))
        if stopped is not None and backup.get("type"):
            newest[backup["type"]] = max(newest.get(backup["type"], 0.0), stopped)
    samples += [Sample("pgdrill_pitr_backup_last_success_timestamp_seconds", dict(label, type=kind), when) for kind, when in sorted(newest.items())]
    run = state.get("backup") or {}
    if run:
        samples += [
            Sample("pgdrill_pitr_backup_last_attempt_timestamp_seconds", label, run["started"]),
            Sample("pgdrill_pitr_backup_last_exit_code", label, run["exit_code"]),
            Sample("pgdrill_pitr_backup_last_duration_seconds", label, run["duration"]),
        ]
    return samples


def update_pitr(directory: str, stanza: str, status: Dict[str, Any], run: Optional[Dict[str, Any]] = None) -> str:
    """Rewrite ``pgdrill_pitr_<stanza>.prom``; ``run`` (started, exit_code, duration) records a
    pitr-backup run in the state kept beside it."""
    series = f"pitr_{stanza}"
    state = read_state(directory, series)
    if run is not None:
        state["backup"] = run
        write_metrics_text(directory, state_file_name(series), json.dumps(state, sort_keys=True), mode=0o600)
    return write_metrics_text(directory, file_name(series), render(pitr_samples(stanza, status, state)))


METRICS_DIR_FIX = "make metrics_dir exist and writable by the backup user (the pgdrill_backup role can create it)"


def write_metrics_text(directory: str, name: str, text: str, mode: int = 0o644) -> str:
    """A metrics or state file, replaced whole: the collector never reads half a file. World-readable
    by default, because node_exporter runs as its own user; metrics hold no secrets."""
    return write_text(directory, name, text, "metrics", METRICS_DIR_FIX, mode)


def file_name(series: str) -> str:
    safe = "".join(char if char.isalnum() or char in "-_." else "_" for char in series)
    return f"pgdrill_{safe}.prom"


def state_file_name(series: str) -> str:
    """The state record kept beside a series' metrics file."""
    return file_name(series)[:-5] + ".state.json"


def read_state(directory: str, series: str) -> Dict[str, Any]:
    try:
        with open(os.path.join(directory, state_file_name(series)), encoding="utf-8") as handle:
            document = json.load(handle)
        return document if isinstance(document, dict) else {}
    except (OSError, ValueError):
        return {}


def update(
    directory: str,
    series: str,
    sets: List[Dict[str, Any]],
    command: Optional[str] = None,
    started: Optional[float] = None,
    exit_code: Optional[int] = None,
    duration: Optional[float] = None,
    remote: Optional[Dict[str, Any]] = None,
) -> str:
    """Record a run of ``command`` in the series' state and rewrite its metrics file. ``remote``
    (target, uploaded_sets, succeeded) records a push to an off-host copy."""
    state = read_state(directory, series)
    if remote:
        targets = state.setdefault("remote", {})
        entry = targets.setdefault(remote["target"], {})
        entry["uploaded_sets"] = sorted(remote.get("uploaded_sets") or [])[-50:]
        if remote.get("succeeded") is not None:
            entry["last_success"] = remote["succeeded"]
        write_metrics_text(directory, state_file_name(series), json.dumps(state, sort_keys=True), mode=0o600)
    if command:
        state[command] = {**state.get(command, {}), "started": started, "exit_code": exit_code, "duration": duration}
        write_metrics_text(directory, state_file_name(series), json.dumps(state, sort_keys=True), mode=0o600)
    return write_metrics_text(directory, file_name(series), render(series_samples(series, sets, state)))
