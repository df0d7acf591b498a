#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: the fleet report page.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_report
short_description: Judge the fleet's backups and drills and write the report page and its JSON
description:
  - Takes one row per host and database (what M(pgdrill_info) returned for it), adds each database's
    restore drills from the evidence records in O(evidence_dir), judges every row (no complete
    backup, a newest backup older than O(max_age_hours) or one that failed verification, no passed
    drill within O(max_drill_age_days)), and writes a single self-contained HTML page (inline CSS and
    SVG, nothing fetched from the network) and the same data as JSON into O(directory).
  - The page lists failing rows first, in red, with the newest backup's age, size and verified
    state, the last drill's date, outcome and restore time, and charts of backup size and duration
    per day and of each drill's restore time (the measured recovery time). Dates are UTC.
  - For a database with point-in-time recovery (C(pitr) in its M(pgdrill_info) result), a PITR column
    shows the window (oldest restorable time to the last archived WAL), the newest full and
    differential pgBackRest backups, and the last physical drill (evidence of C(kind=physical)) with
    its RPO and RTO; such a row also fails when pgBackRest reports its stanza not ok, its newest WAL
    archive attempt failed, or its last physical drill failed. Without PITR in the fleet the page has no such column.
  - A file is written only when what it says changed (its generation time aside); C(changed) says whether one was.
  - "Runs where the evidence is, normally the controller (C(delegate_to: localhost), C(run_once))."
version_added: "0.2.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_info
    description: The module that lists the sets.
  - module: pgdrill_evidence
    description: The module that records a drill's evidence.
options:
  rows:
    description:
      - One dict per host and database, with C(host), C(database) and C(info), the result of
        M(pgdrill_info) for it.
    type: list
    elements: dict
    required: true
  evidence_dir:
    description: Directory searched (recursively) for drill evidence records (C(drill_*.json)).
    type: path
  directory:
    description: Where C(pgdrill-report.html) and C(pgdrill-report.json) are written; created 0700 if missing.
    type: path
    required: true
  max_age_hours:
    description: A newest backup at least this old fails its row.
    type: float
    default: 26
  max_drill_age_days:
    description: A row fails when its last passed drill is older than this many days, or when it has none. C(0) does not judge drills.
    type: float
    default: 35
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Judges the rows and returns them, and whether the page would change; writes nothing.
  diff_mode:
    support: full
    description: The page and its JSON before and after, for each that changes.
"""

EXAMPLES = r"""
- name: Write the fleet report on the controller
  pgdrill_report:
    rows: "{{ report_rows }}"
    evidence_dir: "{{ playbook_dir }}/../drills/evidence"
    directory: "{{ playbook_dir }}/../reports"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
rows:
  description: The judged rows, failing first, each with C(ok) and C(problems).
  returned: always
  type: list
  elements: dict
  sample: [{host: db1, database: ez360pm, ok: false, problems: ["newest backup ez360pm_20261125_021500_utc is 51.8 h old (limit 26 h)"]}]
failing:
  description: How many rows fail.
  returned: always
  type: int
  sample: 1
html:
  description: Path of the report page.
  returned: always
  type: str
  sample: /srv/ansible/reports/pgdrill-report.html
json:
  description: Path of the report's data.
  returned: always
  type: str
  sample: /srv/ansible/reports/pgdrill-report.json
"""

import glob
import json
import os
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.fsio import ensure_private_dir, write_text
from ansible.module_utils.pgdrill.errors import PgdrillError
from ansible.module_utils.pgdrill.ansible_support import fail
from ansible.module_utils.pgdrill.report import drills_of, judge, order, pitr_of, render_html, render_json, same_report


def evidence_records(directory):
    records = []
    for path in sorted(glob.glob(os.path.join(directory, "**", "drill_*.json"), recursive=True)):
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError):
            continue  # an unreadable record is no evidence
        if isinstance(document, dict):
            records.append(document)
    return records


def offsite_text(info):
    """The off-host column: the newest set's state on the remote, and where that is."""
    if not info.get("remote"):
        return None
    state = (info.get("newest") or {}).get("remote") or "no set"
    return f"{state} on {info['remote']}" + (f" ({info['remote_problem']})" if info.get("remote_problem") else "")


def row_of(item, records):
    info = item.get("info") or {}
    newest = info.get("newest") or None
    sets = [entry for entry in info.get("sets") or [] if entry.get("state") == "complete"]
    pitr = pitr_of(info.get("pitr"), records, item.get("host"), item.get("database"))
    row = {
        "host": item.get("host"),
        "database": item.get("database"),
        "newest": newest
        and {
            "set": newest.get("set"),
            "time": newest.get("time"),
            "size": newest.get("size"),
            "verified": newest.get("verified"),
            "could_not_verify": (newest.get("verification") or {}).get("could_not_verify"),
            "remote": newest.get("remote"),
        },
        "sets": [{"time": entry.get("time"), "size": entry.get("size"), "duration_seconds": entry.get("duration_seconds")} for entry in sets],
        "drills": drills_of(records, item.get("host"), item.get("database"), info.get("remote")),
        "remote": info.get("remote"),
        "offsite": offsite_text(info),
        "problems": ([f"cannot read its backups: {info.get('msg')}"] if info.get("failed") else [])
        + ([info["clock_problem"]] if info.get("clock_problem") else []),
    }
    return dict(row, pitr=pitr) if pitr else row


def current_text(path):
    """The file as it is now, or None when there is none to compare with."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, ValueError):
        return None


def changes(directory, pages):
    """The pages (name to new text) whose content differs from what ``directory`` holds: name, old text, new text."""
    found = []
    for name, text in pages.items():
        old = current_text(os.path.join(directory, name))
        if not same_report(old, text):
            found.append((name, old, text))
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            rows=dict(type="list", elements="dict", required=True),
            evidence_dir=dict(type="path"),
            directory=dict(type="path", required=True),
            max_age_hours=dict(type="float", default=26),
            max_drill_age_days=dict(type="float", default=35),
        ),
        supports_check_mode=True,
    )
    params = module.params
    now = datetime.now(timezone.utc)
    records = evidence_records(params["evidence_dir"]) if params["evidence_dir"] else []
    rows = order([judge(row_of(item, records), now, params["max_age_hours"], params["max_drill_age_days"]) for item in params["rows"]])
    directory = params["directory"]
    changed = changes(directory, {"pgdrill-report.html": render_html(rows, now), "pgdrill-report.json": render_json(rows, now)})
    if changed and not module.check_mode:
        try:
            ensure_private_dir(directory)
            for name, _old, text in changed:
                write_text(directory, name, text, f"the report {name}", "make the report directory writable by this user, or choose another one", mode=0o600)
        except PgdrillError as exc:
            fail(module, exc)
    result = dict(
        changed=bool(changed),
        rows=rows,
        failing=sum(1 for row in rows if not row["ok"]),
        html=os.path.join(directory, "pgdrill-report.html"),
        json=os.path.join(directory, "pgdrill-report.json"),
    )
    if module._diff and changed:
        result["diff"] = [dict(before=old or "", after=text, before_header=name, after_header=name) for name, old, text in changed]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
