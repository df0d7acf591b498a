#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: facts about the backup sets of one series.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_info
short_description: List pgdrill backup sets with their age, size and verified state
description:
  - Lists the backup sets of one series, newest first, with age, size, completeness and the result
    of their last verification, plus the newest complete set's age in seconds.
  - These are the facts for fleet reports and monitoring. Nothing is changed.
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_dump
    description: The module that takes the backup sets.
  - module: pgdrill_verify
    description: The module that verifies a set, optionally by restore.
  - module: pgdrill_report
    description: The module that writes the fleet report page.
extends_documentation_fragment: [pgdrill, pgdrill.connection]
options: {}
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing is changed, so there is nothing to diff.
"""

EXAMPLES = r"""
- name: Read the backup sets configured on the host
  pgdrill_info:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
  register: backups

- name: Fail when the newest backup is older than a day
  ansible.builtin.assert:
    that: backups.newest_age_seconds is not none and backups.newest_age_seconds < 86400
"""

RETURN = r"""
backup_dir:
  description: Directory of the series.
  returned: always
  type: str
  sample: /var/backups/pgdrill
prefix:
  description: File name prefix of the series.
  returned: always
  type: str
  sample: ez360pm
sets:
  description: Every set of the series, newest first.
  returned: always
  type: list
  elements: dict
  sample:
    - set: ez360pm_20261126_021500_utc
      time: "2026-11-26T02:15:00.120000+00:00"
      age_seconds: 3600.0
      size: 233012345
      ahead_seconds: 0.0
      state: complete
      problem: null
      kinds: [db, globals]
      verified: ok+restore
      files: [ez360pm_db_20261126_021500_utc.dump.zst, ez360pm_manifest_20261126_021500_utc.json]
newest:
  description: The newest complete set, or null when there is none.
  returned: always
  type: dict
  sample: {set: ez360pm_20261126_021500_utc, age_seconds: 3600.0, size: 233012345, verified: ok}
newest_age_seconds:
  description: Age of the newest complete set in seconds, or null when there is none.
  returned: always
  type: float
  sample: 3600.0
complete_count:
  description: Number of complete sets.
  returned: always
  type: int
  sample: 14
future_count:
  description:
    - Number of complete sets dated in the future beyond a few minutes (state C(future)). They never
      count as RV(newest); the clock was wrong when they were taken, or is wrong now.
  returned: always
  type: int
  sample: 0
clock_problem:
  description: A message naming the clock when RV(future_count) is not zero, else null. Freshness checks should fail on it.
  returned: always
  type: str
  sample: null
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import argument_spec, database_config, fail
from ansible.module_utils.pgdrill.errors import PgdrillError
from ansible.module_utils.pgdrill.series import Series, future_sets_problem


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        config = database_config(module.params)
        sets = Series(config).describe()
    except PgdrillError as exc:
        fail(module, exc)
    complete = [entry for entry in sets if entry["state"] == "complete"]
    newest = complete[0] if complete else None
    module.exit_json(
        changed=False,
        backup_dir=config.backup_dir,
        prefix=config.prefix,
        sets=sets,
        newest=newest,
        newest_age_seconds=newest["age_seconds"] if newest else None,
        complete_count=len(complete),
        future_count=sum(1 for entry in sets if entry["state"] == "future"),
        clock_problem=future_sets_problem(sets),
    )


if __name__ == "__main__":
    main()
