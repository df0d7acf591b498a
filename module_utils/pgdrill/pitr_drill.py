# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The physical drill's decisions, pure: what a ``--target`` means, what pgBackRest is asked to
restore to, whether staging's binaries can serve the repository's cluster, the throwaway server's
own settings, the RPO and its basis, and the evidence's physical facts. The steps that act on them
are in physical_steps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .config import Connection
from .errors import PgdrillError
from .pitr import check_point_name

TARGET_KINDS = ("latest", "time", "name", "point", "set")
TARGET_FIX = "use --target latest, time:2026-12-04T02:15:00Z, name:POINT, point:FILE or set:SET_ID"


class Target(NamedTuple):
    """A drill's recovery target: ``kind`` one of TARGET_KINDS, ``value`` its argument (None for latest)."""

    kind: str
    value: Optional[str]


@dataclass(frozen=True)
class PhysicalDrill:
    """A physical drill: pgBackRest restores ``stanza`` (its config ``pgbackrest_config``) to ``target``
    into a new private data directory; ``source``, when given, is the source cluster (for the RPO of
    a ``latest`` drill)."""

    target: str = "latest"
    stanza: Optional[str] = None
    pgbackrest_config: str = "/etc/pgbackrest/pgbackrest.conf"
    source: Optional[Connection] = field(default=None, repr=False)
    recovery_timeout: float = 3600.0


def physical_drill(config: Any, physical: bool, target: Optional[str], stanza: Optional[str], pgbackrest_config: Optional[str]) -> Optional[PhysicalDrill]:
    """The physical drill ``pgdrill-backup drill`` flags and the [drill] section's pitr_* settings
    (``config``, a DrillConfig) ask for; None for a logical drill. Pure."""
    if not physical:
        if target or stanza or pgbackrest_config:
            raise PgdrillError("--target, --stanza and --pgbackrest-config belong to a physical drill", "add --physical")
        return None
    parse_target(target)  # a bad target is a usage error, before anything runs
    if not (stanza or config.pitr_stanza):
        raise PgdrillError("a physical drill needs the pgBackRest stanza", "pass --stanza S, or set pitr_stanza in the [drill] section")
    return PhysicalDrill(
        target=target or "latest",
        stanza=stanza or config.pitr_stanza,
        pgbackrest_config=pgbackrest_config or config.pitr_config,
        source=source_connection(config.pitr_source),
        recovery_timeout=config.pitr_recovery_timeout,
    )


SOURCE_KEYS = ("host", "port", "user", "dbname", "passfile", "sslmode")


def source_connection(text: Optional[str]) -> Optional[Connection]:
    """``pitr_source``: the source cluster as libpq ``key=value`` words (host, port, user, dbname,
    passfile, sslmode), never a password. Pure."""
    if not text:
        return None
    values: Dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if key == "password":
            raise PgdrillError("pitr_source holds a password", "leave it out and name a passfile (passfile=/path/.pgpass, 0600)")
        if not sep or key not in SOURCE_KEYS or not value:
            raise PgdrillError(
                f"pitr_source word {word!r} is not one of {', '.join(k + '=...' for k in SOURCE_KEYS)}",
                "write e.g. pitr_source = host=db1 port=5432 user=pgdrill",
            )
        values[key] = value
    if not values.get("port", "1").isdigit():
        raise PgdrillError(f"pitr_source port {values['port']!r} is not a number", "write e.g. port=5432")
    port = int(values.pop("port")) if "port" in values else None
    return Connection(port=port, **values)


def parse_time(text: str) -> datetime:
    """An ISO 8601 moment with its offset (``Z`` or ``+HH:MM``), as UTC. Pure."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PgdrillError(f"recovery target time {text!r} is not an ISO 8601 time with its offset", "write it like time:2026-12-04T02:15:00Z (UTC) or +01:00")
    return moment.astimezone(timezone.utc)


def parse_target(text: Optional[str]) -> Target:
    """``latest`` (the default: all archived WAL), ``time:ISO8601``, ``name:POINT``, ``point:FILE``
    (a saved point record) or ``set:SET_ID`` (a logical set whose manifest names its restore point). Pure."""
    text = (text or "latest").strip()
    if text == "latest":
        return Target("latest", None)
    kind, sep, value = text.partition(":")
    if not sep or kind not in TARGET_KINDS or kind == "latest" or not value.strip():
        raise PgdrillError(f"{text!r} is not a recovery target", TARGET_FIX)
    value = value.strip()
    if kind == "time":
        return Target("time", utc_text(parse_time(value)))
    if kind == "name":
        return Target("name", check_point_name(value))
    return Target(kind, value)


def utc_text(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Pure."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def recovery_target(target: Target, point_name: Optional[str]) -> Tuple[str, Optional[str]]:
    """What pgBackRest restores to: (``default``, None) for latest, (``time``, the time as PostgreSQL
    reads it) or (``name``, the restore point: the target's own or that of its point record or set). Pure."""
    if target.kind == "latest":
        return "default", None
    if target.kind == "time":
        return "time", str(target.value).replace("T", " ").replace("Z", "+00")
    if not point_name:
        raise PgdrillError(f"the {target.kind} target {target.value} names no restore point", "drill a set taken with pitr_mark on, or a saved point")
    return "name", check_point_name(point_name)


def evidence_target(target: Target, point_name: Optional[str]) -> Dict[str, Any]:
    """The evidence's ``target``: its type (a point record is a named point) and value. Pure."""
    kind = "name" if target.kind == "point" else target.kind
    facts: Dict[str, Any] = {"type": kind, "value": target.value}
    if target.kind in ("point", "set"):
        facts["restore_point"] = point_name
    if target.kind == "point":
        facts["point_file"] = target.value
    return facts


def set_restore_point(manifest: Dict[str, Any], set_id: str) -> Dict[str, Any]:
    """The restore point a logical set's manifest names, with the set's fingerprint and row counts
    (the dump ran in the point's snapshot). Pure."""
    point = manifest.get("restore_point")
    if not isinstance(point, dict) or not point.get("name"):
        raise PgdrillError(
            f"backup set {set_id} names no restore point (its manifest has no restore_point)",
            "drill a set taken with pitr_stanza set and pitr_mark on, or use --target name:POINT",
        )
    return {**point, "fingerprint": manifest.get("fingerprint"), "row_counts": manifest.get("row_counts")}


def repository_major(document: Any, stanza: str) -> Optional[int]:
    """The major version of the stanza's current cluster in ``pgbackrest info --output=json``. Pure."""
    entries = document if isinstance(document, list) else []
    entry = next((item for item in entries if isinstance(item, dict) and item.get("name") == stanza), {})
    databases = [db for db in entry.get("db") or [] if isinstance(db, dict)]
    current = next((db for db in databases if db.get("current")), databases[-1] if databases else {})
    match = re.match(r"(\d+)", str(current.get("version") or ""))
    return int(match.group(1)) if match else None


def major_problem(repository: Optional[int], staging: Optional[int], bin_dir: Optional[str]) -> Optional[PgdrillError]:
    """A physical restore needs staging's binaries of the repository's major version. Pure."""
    if repository is None:
        return PgdrillError("pgbackrest info names no PostgreSQL version for the stanza", "run pgbackrest stanza-create and a backup on the source first")
    if staging == repository:
        return None
    found = f"PostgreSQL {staging} binaries in {bin_dir}" if staging else "no PostgreSQL server binaries"
    return PgdrillError(
        f"the repository holds a PostgreSQL {repository} cluster, and staging has {found}: a physical restore needs the same major version",
        f"install postgresql-{repository} on staging, or set pg_bin_dir to its binaries (e.g. /usr/lib/postgresql/{repository}/bin)",
    )


def _quoted(value: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise PgdrillError(f"{value!r} cannot be written to a server setting", "use a work directory whose path is one plain line")
    return "'" + value.replace("'", "''") + "'"


def server_settings(data_dir: str, port: int, socket_dir: str) -> str:
    """The throwaway server's own settings, appended after what pgBackRest wrote: its own port, only
    its own unix socket directory, no TCP, no archiving, no replication, its own pg_hba. Pure."""
    settings = {
        "port": str(port),
        "listen_addresses": "",
        "unix_socket_directories": socket_dir,
        "hba_file": f"{data_dir}/pg_hba.conf",
        "ident_file": f"{data_dir}/pg_ident.conf",
        "archive_mode": "off",
        "archive_command": "",
        "wal_level": "replica",
        "ssl": "off",
        "logging_collector": "off",
        "hot_standby": "on",
        # A restored subscriber must never connect to the real publisher and consume its changes.
        "max_logical_replication_workers": "0",
    }
    lines = ["", "# pgdrill physical drill: this throwaway server's own settings"]
    lines += [f"{key} = {_quoted(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


HBA = "# pgdrill physical drill: only this server's private unix socket directory, nothing else\nlocal all all trust\n"


def _stanza_entry(document: Any, stanza: str) -> Dict[str, Any]:
    entries = document if isinstance(document, list) else []
    return next((item for item in entries if isinstance(item, dict) and item.get("name") == stanza), {})


def archive_max(document: Any, stanza: str) -> Optional[str]:
    """The newest WAL file pgBackRest's ``info --output=json`` says the stanza's archive holds. Pure."""
    found = [str(item["max"]) for item in _stanza_entry(document, stanza).get("archive") or [] if isinstance(item, dict) and item.get("max")]
    return max(found, key=lambda name: (name[8:], name[:8])) if found else None


def system_ids(document: Any, stanza: str) -> List[int]:
    """The system identifiers of the clusters the stanza has held (``db[].system-id``). Pure."""
    return [item["system-id"] for item in _stanza_entry(document, stanza).get("db") or [] if isinstance(item, dict) and isinstance(item.get("system-id"), int)]


def archive_gap(reached_wal: Optional[str], newest_archived: Optional[str]) -> Optional[PgdrillError]:
    """A restore to the latest point must replay every archived WAL file: recovery that ended in an
    earlier file met a gap (a file missing or unreadable), and what came after it is lost. Compared
    by log and segment, whatever the timeline. Pure."""
    if not newest_archived:
        return None
    if not reached_wal:
        return PgdrillError("the drill cannot tell which WAL file recovery reached", "read the throwaway server's log")
    if reached_wal[8:] < newest_archived[8:]:
        return PgdrillError(
            f"recovery ended in WAL file {reached_wal} but the archive holds WAL up to {newest_archived}: a file between is missing or "
            "unreadable, and every commit after the gap cannot be restored",
            "run pgbackrest check and pgbackrest info on the source, find the missing WAL file in the repository, and take a new full backup",
        )
    return None


def lsn_number(text: Optional[str]) -> Optional[int]:
    """``X/Y`` as a number, for comparing LSNs. Pure."""
    match = re.fullmatch(r"([0-9A-Fa-f]+)/([0-9A-Fa-f]+)", str(text or ""))
    return (int(match.group(1), 16) << 32) + int(match.group(2), 16) if match else None


def rpo(
    target: Target, reached_commit: Optional[str], reached_lsn: Optional[str], source: Optional[Dict[str, Any]], target_time: Optional[str] = None
) -> Tuple[Optional[float], str]:
    """The RPO in seconds and its basis; None (with the reason) when it cannot be measured. ``source``
    is what the source said when the drill started: its newest commit (``newest_commit``, with
    track_commit_timestamp on) and its WAL insert position (``insert_lsn``), or None when it was not
    reached. Pure."""
    if target.kind == "time":
        if not reached_commit:
            return None, "no transaction was recovered, so there is no newest commit to measure against the target"
        seconds = (_moment(target_time or str(target.value)) - _moment(reached_commit)).total_seconds()
        return round(max(seconds, 0.0), 3), "the target time against the newest commit recovered"
    if target.kind != "latest":
        return None, "a restore point target: the drill restores to the point on purpose, there is no loss to measure"
    if source is None:
        return None, "the source was not asked (no pitr_source) or not reachable when the drill started, so its newest commit is unknown"
    if source.get("other_cluster"):
        return None, "pitr_source names a cluster other than the stanza's (its system identifier differs), so it says nothing of what was lost"
    if source.get("newest_commit") and reached_commit:
        seconds = (_moment(source["newest_commit"]) - _moment(reached_commit)).total_seconds()
        return round(max(seconds, 0.0), 3), "the source's newest commit when the drill started against the newest commit recovered"
    wanted, reached = lsn_number(source.get("insert_lsn")), lsn_number(reached_lsn)
    if wanted is not None and reached is not None and reached >= wanted:
        return 0.0, "recovery replayed past the source's WAL position when the drill started: nothing committed before it was lost"
    return None, "the source does not track commit timestamps (track_commit_timestamp = off) and recovery stopped before its WAL position at the start"


def _moment(text: str) -> datetime:
    return parse_time(str(text).replace(" ", "T", 1) if "T" not in str(text) else str(text))


def rto(timings: Dict[str, float]) -> float:
    """Restore, recovery and checks: how long getting the data back and proving it took. Pure."""
    return round(sum(float(timings.get(step) or 0.0) for step in ("restore", "recovery", "checks")), 3)


def wal_file(timeline_of: Optional[str], lsn: Optional[str], segment_size: Optional[int]) -> Optional[str]:
    """The WAL file holding the last byte before ``lsn``, on the timeline of WAL file ``timeline_of``. Pure."""
    position = lsn_number(lsn)
    if not timeline_of or position is None or not segment_size or position <= 0:
        return None
    segment = (position - 1) // segment_size
    per_id = 0x100000000 // segment_size
    return f"{timeline_of[:8]}{segment // per_id:08X}{segment % per_id:08X}"


def backup_before(document: Any, stanza: str, point_lsn: Optional[str]) -> Optional[str]:
    """The backup a restore to a point at ``point_lsn`` must start from: the newest one whose
    consistent stop LSN (``pgbackrest info --output=json``) is at or before the point; None when the
    point's LSN is unknown (pgBackRest picks the newest). Pure."""
    position = lsn_number(point_lsn)
    if position is None:
        return None
    entries = document if isinstance(document, list) else []
    entry = next((item for item in entries if isinstance(item, dict) and item.get("name") == stanza), {})
    before = [
        b["label"] for b in entry.get("backup") or [] if isinstance(b, dict) and (lsn_number((b.get("lsn") or {}).get("stop")) or position + 1) <= position
    ]
    if not before:
        raise PgdrillError(
            f"no backup in the repository ends before the restore point's LSN {point_lsn}",
            "the point is older than the oldest backup kept (outside the PITR window): drill a newer point, or keep more full backups",
        )
    return before[-1]


def backup_label(restore_output: str) -> Optional[str]:
    """The backup set pgBackRest restored from, as its restore says (``restore backup set LABEL``). Pure."""
    match = re.search(r"restore backup set (\S+?)(?:,|\s|$)", restore_output)
    return match.group(1) if match else None


def count_problems(expected: Dict[str, int], actual: Dict[str, int], what: str, unlogged: Sequence[str] = ()) -> List[str]:
    """Each table whose rows differ, in words; UNLOGGED tables left out (a physical restore brings
    them back empty, by design). Pure."""
    names = sorted((set(expected) | set(actual)) - set(unlogged))
    return [f"{name}: {expected.get(name)} rows {what}, {actual.get(name)} restored" for name in names if expected.get(name) != actual.get(name)]
