# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The fleet report: one self-contained HTML page (inline CSS and SVG, no network fetches) and the
same data as JSON. Pure functions: rows in, text out.

A row is one database on one host::

    {"host": "db1", "database": "ez360pm", "ok": False, "problems": ["newest backup is 30.2 h old (limit 26 h)"],
     "newest": {"set": ..., "time": "2026-11-26T02:15:00Z", "size": 243000000, "verified": "ok+restore"},
     "sets": [{"time": ..., "size": ..., "duration_seconds": ...}, ...],
     "drills": [{"time": ..., "outcome": "passed", "restore_seconds": 16.5, "line": "- 2026-..."}, ...]}

Failing rows come first; every date is UTC and says so.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence, Tuple

WIDTH, HEIGHT = 180, 40


def drills_of(records: Sequence[Dict[str, Any]], host: str, database: str, remote: Optional[str] = None) -> List[Dict[str, Any]]:
    """The drills of one database from evidence records, oldest first, in the row's shape: drills of
    the host's sets, and drills of its off-host copy (``remote``). Pure."""
    out = []
    sources = {host} | ({remote} if remote else set())
    for record in records:
        if record.get("kind") == "physical":
            continue  # a point-in-time drill: pitr_of
        if record.get("source_host") in sources and record.get("database") == database and record.get("outcome") in ("passed", "failed"):
            out.append(
                {
                    "time": record.get("finished_at") or record.get("started_at"),
                    "outcome": record.get("outcome"),
                    "restore_seconds": (record.get("timings") or {}).get("restore"),
                    "failed_step": record.get("failed_step"),
                }
            )
    return sorted(out, key=lambda drill: str(_parse(drill["time"]) or ""))


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def pitr_drills_of(records: Sequence[Dict[str, Any]], host: str, database: str) -> List[Dict[str, Any]]:
    """The point-in-time drills (evidence of ``kind: physical``) of one database, oldest first:
    when, passed or not, the target, the RPO and RTO they measured. Pure."""
    out = []
    for record in records:
        if record.get("kind") != "physical" or record.get("source_host") != host or record.get("database") != database:
            continue
        target = record.get("target") or {}
        # A point record's target is a named point: the page names the point, not its file.
        value = (target.get("type") == "name" and target.get("restore_point")) or target.get("value")
        out.append(
            {
                "time": record.get("finished_at") or record.get("started_at"),
                "passed": record.get("passed") is True,
                "target": f"{target.get('type')}:{value}" if value else str(target.get("type") or "?"),
                "rpo_seconds": _number(record.get("rpo_seconds")),
                "rpo_basis": record.get("rpo_basis"),
                "rto_seconds": _number(record.get("rto_seconds")),
            }
        )
    return sorted(out, key=lambda drill: str(_parse(drill["time"]) or ""))


def pitr_of(status: Optional[Dict[str, Any]], records: Sequence[Dict[str, Any]], host: str, database: str) -> Optional[Dict[str, Any]]:
    """The row's ``pitr`` from the database's PITR status (``pitr`` of pgdrill_info: pgBackRest's
    info and pg_stat_archiver) and the physical drills' evidence; None without PITR. The window runs
    from the oldest restorable time to the last archived WAL. Pure."""
    if not status:
        return None
    archive = status.get("archive") or {}
    full, diff = status.get("newest_full") or {}, status.get("newest_diff") or {}
    return {
        "stanza": status.get("stanza"),
        "ok": status.get("ok") is True,
        "status": status.get("status"),
        "window_start": status.get("oldest_restorable_at"),
        "window_end": archive.get("last_archived_at"),
        "last_archived_wal": archive.get("last_archived_wal"),
        "last_failed_wal": archive.get("last_failed_wal"),
        "last_failed_at": archive.get("last_failed_at"),
        "newest_full": full and {"label": full.get("label"), "time": full.get("stopped_at")},
        "newest_diff": diff and {"label": diff.get("label"), "time": diff.get("stopped_at")},
        "drills": pitr_drills_of(records, host, database),
    }


def pitr_problems(pitr: Optional[Dict[str, Any]]) -> List[str]:
    """What fails a row's PITR: pgBackRest reports the stanza not ok, the newest archive attempt
    failed, or the last physical drill failed. Ages are left to the alert rules. Pure."""
    if not pitr:
        return []
    problems = []
    if not pitr.get("ok"):
        problems.append(f"PITR stanza {pitr.get('stanza')}: {pitr.get('status') or 'status unknown'}")
    failed_at, archived_at = _parse(pitr.get("last_failed_at")), _parse(pitr.get("window_end"))
    if failed_at and (archived_at is None or failed_at > archived_at):
        problems.append(f"WAL archiving is failing: {pitr.get('last_failed_wal')} failed at {utc(failed_at.isoformat())}")
    drills = pitr.get("drills") or []
    if drills and not drills[-1].get("passed"):
        problems.append(f"last PITR drill ({drills[-1].get('target')}, {utc(drills[-1].get('time'))}) failed")
    return problems


def judge(row: Dict[str, Any], now: datetime, max_age_hours: float, max_drill_age_days: float) -> Dict[str, Any]:
    """The row with ``ok`` and ``problems``: no complete backup, a stale newest one, a newest one
    that failed verification or (with a remote) is not complete off-host, no passed drill within ``max_drill_age_days`` (0: drills are not
    judged). Pure."""
    problems = list(row.get("problems") or [])
    newest = row.get("newest") or {}
    when = _parse(newest.get("time")) if newest else None
    if not newest or when is None:
        problems.append("no complete backup at all")
    else:
        age_hours = (now - when).total_seconds() / 3600
        row = dict(row, age_hours=round(age_hours, 1))
        if age_hours >= max_age_hours:
            problems.append(f"newest backup {newest.get('set')} is {age_hours:.1f} h old (limit {max_age_hours:g} h)")
        if newest.get("verified") == "failed":
            problems.append(f"newest backup {newest.get('set')} failed verification")
        elif newest.get("could_not_verify"):
            # Not held against the set, but a verify that cannot run proves nothing: someone must look.
            problems.append(f"newest backup {newest.get('set')} could not be verified: {newest['could_not_verify']}")
        if row.get("remote") and newest.get("remote") != "complete":
            problems.append(f"newest backup {newest.get('set')} has no complete off-host copy ({newest.get('remote') or 'unknown'} on {row['remote']})")
    if max_drill_age_days > 0:
        parsed = (_parse(d.get("time")) for d in row.get("drills") or [] if d.get("outcome") == "passed")
        passed = [moment for moment in parsed if moment is not None]
        if not passed:
            problems.append(f"no passed restore drill (limit {max_drill_age_days:g} days)")
        else:
            days = (now - max(passed)).total_seconds() / 86400
            if days > max_drill_age_days:
                problems.append(f"last passed restore drill is {days:.0f} days old (limit {max_drill_age_days:g} days)")
    problems += pitr_problems(row.get("pitr"))
    return dict(row, ok=not problems, problems=problems)


def order(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Failing rows first, then by host and database. Pure."""
    return sorted(rows, key=lambda row: (bool(row.get("ok")), str(row.get("host")), str(row.get("database"))))


def _parse(moment: Any) -> Optional[datetime]:
    try:
        return datetime.fromisoformat(str(moment).replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def utc(moment: Any) -> str:
    parsed = _parse(moment)
    return parsed.strftime("%Y-%m-%d %H:%M UTC") if parsed else "never"


def human_size(size: Optional[float]) -> str:
    if not size:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"


def per_day(points: Sequence[Tuple[Any, Optional[float]]]) -> List[Tuple[str, float]]:
    """The last value of each UTC day, oldest first: one bar per day. Pure."""
    timed = [(parsed, value) for parsed, value in ((_parse(moment), value) for moment, value in points) if parsed and value is not None]
    days: Dict[str, float] = {}
    for parsed, value in sorted(timed, key=lambda point: point[0]):
        days[parsed.strftime("%Y-%m-%d")] = float(value)
    return sorted(days.items())


def bars(points: Sequence[Tuple[str, float]], label: str, unit: str, css: str = "bar") -> str:
    """A small inline SVG bar chart, one bar per point, each with its value as a tooltip."""
    if not points:
        return '<span class="muted">no data</span>'
    top = max(value for _, value in points) or 1.0
    step = WIDTH / max(len(points), 1)
    width = max(min(step - 2, 12), 1)  # one bar a day: a lone bar stays a bar
    parts = [f'<svg class="chart" role="img" aria-label="{html.escape(label)}" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">']
    for index, (day, value) in enumerate(points):
        height = max(value / top * (HEIGHT - 4), 1)
        x, y = index * step + 1, HEIGHT - height
        parts.append(
            f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}">'
            f"<title>{html.escape(day)}: {value:g} {html.escape(unit)}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; background: #f6f7f9; }
h1 { font-size: 20px; margin: 0 0 4px; } .muted { color: #6b7280; }
.summary { margin: 8px 0 16px; } .summary b.bad { color: #b42318; } .summary b.good { color: #067647; }
table { border-collapse: collapse; width: 100%; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { padding: 7px 8px; border-bottom: 1px solid #e5e7eb; text-align: left; vertical-align: top; }
th { background: #eef0f4; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
tr.failing td { background: #fef3f2; } tr.failing td.state { color: #b42318; font-weight: 700; }
tr.passing td.state { color: #067647; font-weight: 700; }
.problem { color: #b42318; } .chart { display: block; } rect.bar { fill: #4f6bed; } rect.drill { fill: #0e9384; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; } td.when { white-space: nowrap; }
.caption { color: #6b7280; font-size: 12px; margin-bottom: 6px; display: block; max-width: 180px; }
"""


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def _caption(what: str, points: Sequence[Tuple[str, float]], show) -> str:
    if not points:
        return f'<span class="caption">{html.escape(what)}</span>'
    values = [value for _, value in points]
    return f'<span class="caption">{html.escape(what)}: last {show(values[-1])}, max {show(max(values))}</span>'


def _pitr_html(pitr: Optional[Dict[str, Any]]) -> str:
    """The PITR cell: the window, the newest full and differential, the last physical drill."""
    if not pitr:
        return '<td class="muted">not configured</td>'
    full, diff = pitr.get("newest_full") or {}, pitr.get("newest_diff") or {}
    drills = pitr.get("drills") or []
    last = drills[-1] if drills else {}
    if last:
        rpo = "unknown" if last.get("rpo_seconds") is None else _seconds(last["rpo_seconds"])
        rto = "unknown" if last.get("rto_seconds") is None else _seconds(last["rto_seconds"])
        drill = f"drill {'passed' if last.get('passed') else 'FAILED'} {utc(last.get('time'))} ({html.escape(str(last.get('target')))}): RPO {rpo}, RTO {rto}"
    else:
        drill = "no PITR drill"
    return (
        f'<td class="when">{utc(pitr.get("window_start"))}<br>to {utc(pitr.get("window_end"))}'
        f'<br><span class="muted">stanza {html.escape(str(pitr.get("stanza")))} · full {utc(full.get("time"))} · diff {utc(diff.get("time"))}</span>'
        f'<br><span class="muted">{drill}</span></td>'
    )


def _row_html(row: Dict[str, Any], with_pitr: bool = False) -> str:
    newest = row.get("newest") or {}
    drills = row.get("drills") or []
    last_drill = drills[-1] if drills else {}
    sizes = per_day([(s.get("time"), s.get("size")) for s in row.get("sets") or []])
    durations = per_day([(s.get("time"), s.get("duration_seconds")) for s in row.get("sets") or []])
    restores = [(utc(d.get("time")), float(d["restore_seconds"])) for d in drills if isinstance(d.get("restore_seconds"), (int, float))]
    problems = "".join(f'<div class="problem">{html.escape(p)}</div>' for p in row.get("problems") or [])
    age = "-" if row.get("age_hours") is None else f"{row['age_hours']:.1f} h"
    cells = [
        f'<td class="state">{"OK" if row.get("ok") else "FAILING"}</td>',
        f"<td><b>{html.escape(str(row.get('host')))}</b><br>{html.escape(str(row.get('database')))}{problems}</td>",
        f'<td class="when">{utc(newest.get("time"))}<br><span class="muted">{html.escape(str(newest.get("set") or "no complete set"))}</span></td>',
        f'<td class="num">{age}<br>{human_size(newest.get("size"))}</td>',
        f"<td>{html.escape(str(newest.get('verified') or 'never'))}</td>",
        f"<td>{html.escape(str(row.get('offsite') or 'not configured'))}</td>",
        f'<td class="when">{utc(last_drill.get("time"))}<br><span class="muted">{html.escape(str(last_drill.get("outcome") or "no drill"))}'
        + (f", restore {last_drill['restore_seconds']:.1f} s" if isinstance(last_drill.get("restore_seconds"), (int, float)) else "")
        + "</span></td>",
        *([_pitr_html(row.get("pitr"))] if with_pitr else []),
        f"<td>{bars(sizes, 'backup size per day', 'bytes')}{_caption('size per day', sizes, human_size)}"
        f"{bars(durations, 'backup duration per day', 's')}{_caption('duration per day', durations, _seconds)}</td>",
        f"<td>{bars(restores, 'drill restore time', 's', 'drill')}{_caption('restore time per drill (RTO)', restores, _seconds)}</td>",
    ]
    return f'<tr class="{"passing" if row.get("ok") else "failing"}">' + "".join(cells) + "</tr>"


def render_html(rows: Sequence[Dict[str, Any]], generated: datetime, title: str = "pgdrill fleet report") -> str:
    ordered = order(rows)
    failing = sum(1 for row in ordered if not row.get("ok"))
    with_pitr = any(row.get("pitr") for row in ordered)
    head = ["", "host / database", "newest backup", "age / size", "verified", "off-host", "last drill"]
    head += (["point-in-time window"] if with_pitr else []) + ["backups", "drills"]
    summary = (
        f'<b class="{"bad" if failing else "good"}">{failing} of {len(ordered)} failing</b>'
        f' <span class="muted">· generated {generated.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}</span>'
    )
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            f'<h1>{html.escape(title)}</h1><div class="summary">{summary}</div>',
            "<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>",
            "".join(_row_html(row, with_pitr) for row in ordered),
            "</tbody></table></body></html>\n",
        ]
    )


def render_json(rows: Sequence[Dict[str, Any]], generated: datetime) -> str:
    document = {
        "format": "pgdrill-report",
        "format_version": 1,
        "generated_at": generated.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rows": order(rows),
    }
    return json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"


# When a rendering was made: not part of what the page says.
_GENERATED = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC|\"generated_at\": \"[^\"]*\"")


def same_report(old: Optional[str], new: str) -> bool:
    """Whether two renderings of the page (or of its JSON) say the same thing, apart from when they
    were generated. Pure."""
    return old is not None and _GENERATED.sub("", old) == _GENERATED.sub("", new)
