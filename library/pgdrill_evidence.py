#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: write a restore drill's evidence record.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_evidence
short_description: Write a restore drill's evidence record and return its drill-log line
description:
  - Writes a drill's evidence record as JSON (mode 0600, atomically) into a directory on the managed
    host, and returns the record with the dated Markdown line for the drill log (the seed's
    C(docs/MEMORY.md) step).
  - The record holds the source host and database, the set's name and sha256, the tool, pg_dump and
    server versions (with a note when the majors differ), the timing of every step, the exact
    commands the restore ran (argument lists, no secrets), the comparison with the set's
    fingerprint, what was not restored by choice, the roles created and dropped, each check's result
    and the outcome. Times are UTC with a C(Z).
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_drill
    description: The module that runs the drill on staging and returns what this record is made of.
  - module: pgdrill_restore
    description: The module that restores a set and compares it with its fingerprint.
  - module: pgdrill_smoke
    description: The module that runs smoke checks and drops scratch databases.
  - module: pgdrill_report
    description: The module that writes the fleet report page.
options:
  record:
    description: The drill's own facts (source, set, times, step timings, outcome).
    type: dict
    required: true
  restore:
    description:
      - What the drill's restore did and found, passed or failed - RV(pgdrill_drill#module:restore) of the drill's
        M(pgdrill_drill) task, or the registered result of a M(pgdrill_restore) task.
    type: dict
    default: {}
  smoke:
    description: Its post-restore commands and smoke checks - RV(pgdrill_drill#module:smoke), or a M(pgdrill_smoke) result.
    type: dict
    default: {}
  cleanup:
    description: Its cleanup - RV(pgdrill_drill#module:cleanup), or a M(pgdrill_smoke) result with O(pgdrill_smoke#module:drop).
    type: dict
    default: {}
  metrics_dir:
    description:
      - A node_exporter textfile collector directory where the drill's metrics are rewritten
        (C(pgdrill_drill_<series>.prom)), saying when the series last passed a drill, how long its restore
        took, when it was last drilled and whether that passed. Nothing is written when unset.
    type: path
  directory:
    description: Directory for the record; created 0700 if missing.
    type: path
    required: true
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Returns the record and the log line, and reports the write it would make, without making it.
  diff_mode:
    support: none
    description: A new record is always a new file.
"""

EXAMPLES = r"""
- name: Keep the drill's evidence on staging
  pgdrill_evidence:
    directory: /var/lib/pgdrill/drills/evidence
    record: "{{ drill_record }}"
    restore: "{{ restored }}"
    smoke: "{{ smoke }}"
  register: evidence
"""

RETURN = r"""
path:
  description: Path of the record written.
  returned: always
  type: str
  sample: /var/lib/pgdrill/drills/evidence/drill_ez360pm_20261126T073000Z_5c0ffee1.json
log_line:
  description: The dated Markdown line for the drill log.
  returned: always
  type: str
  sample: "- 2026-11-26 07:30 UTC · drill 5c0ffee1 · ez360pm from db1 · set ez360pm_20261126_021500_utc · restore 9.7 s · 10/10 checks ok · PASSED"
record:
  description: The record as written.
  returned: always
  type: dict
  sample: {outcome: passed}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.drill import compose_record, evidence_name, log_line, new_drill_id, write_evidence
from ansible.module_utils.pgdrill.errors import PgdrillError
from ansible.module_utils.pgdrill.ansible_support import fail


def main():
    module = AnsibleModule(
        argument_spec=dict(
            record=dict(type="dict", required=True),
            restore=dict(type="dict", default={}),
            smoke=dict(type="dict", default={}),
            cleanup=dict(type="dict", default={}),
            metrics_dir=dict(type="path"),
            directory=dict(type="path", required=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    # Each drill its own record and its own log line, even two of the same set in the same second.
    record = compose_record({"drill_id": new_drill_id(), **params["record"]}, params["restore"], params["smoke"], params["cleanup"])
    path = os.path.join(params["directory"], evidence_name(record))
    if not module.check_mode:
        try:
            path = write_evidence(params["directory"], record, params["metrics_dir"])
        except PgdrillError as exc:
            fail(module, exc)
    module.exit_json(changed=True, path=path, log_line=log_line(record), record=record)


if __name__ == "__main__":
    main()
