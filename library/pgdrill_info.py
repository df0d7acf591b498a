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
  - Lists the backup sets of one series, newest first, with age, size, completeness, the result
    of their last verification and their pin (a pinned set is never deleted by retention), plus the
    newest complete set's age in seconds.
  - For a database with C(pitr_stanza) set in its config, the state of its point-in-time recovery
    in RV(pitr), from pgBackRest's info of the stanza and the server's WAL archiver.
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
extends_documentation_fragment: [pgdrill, pgdrill.connection, pgdrill.remote]
options:
  on_remote:
    description:
      - Also list the sets on the off-host copy (RV(remote_sets)), each with its manifest read and
        checked against the remote's listing.
    type: bool
    default: false
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
remote:
  description: The off-host copy configured for the series, if any. Each set in RV(sets) then has
    C(remote) (complete, partial, absent, or unknown when the remote could not be read).
  returned: always
  type: str
newest_on_remote:
  description: Whether the newest complete set is complete on the off-host copy (null without one).
  returned: always
  type: bool
remote_problem:
  description: Why the off-host copy could not be read, if it could not.
  returned: always
  type: str
remote_sets:
  description: With O(on_remote), the sets on the off-host copy, newest first.
  returned: when on_remote is true
  type: list
  elements: dict
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
  description:
    - Every set of the series, newest first.
    - C(files) names each file of a set; C(paths) each file by its path in the backup directory, a directory-format dump's members as C(DIR/MEMBER).
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
      pinned: true
      pin: {reason: before migration 0042, pinned_at: "2026-11-26T09:00:00.000Z", by: pgdrill@db1}
      files: [ez360pm_db_20261126_021500_utc.dump.zst, ez360pm_manifest_20261126_021500_utc.json, ez360pm_pin_20261126_021500_utc.json]
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
pitr:
  description:
    - With C(pitr_stanza) set, the stanza's state (null without it) - C(stanza), C(ok), C(status),
      C(newest_full), C(newest_diff), C(oldest_restorable_at) (the oldest time a point-in-time
      restore can reach), C(backups), and C(archive) (pg_stat_archiver - C(archived_count),
      C(failed_count), C(last_archived_wal), C(last_archived_at), C(last_failed_wal), C(last_failed_at)).
    - When it cannot be read, C(ok) is false and C(status) says why; the listing of the sets is never lost for it.
  returned: always
  type: dict
  sample: {stanza: main, ok: true, status: ok, oldest_restorable_at: "2026-11-22T01:00:41Z", archive: {archived_count: 412, failed_count: 0}}
clock_problem:
  description: A message naming the clock when RV(future_count) is not zero, else null. Freshness checks should fail on it.
  returned: always
  type: str
  sample: null
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import database_config, fail, remote_argument_spec
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.errors import PgdrillError
from ansible.module_utils.pgdrill.offsite import NO_REMOTE_FIX
from ansible.module_utils.pgdrill.series import future_sets_problem


def main():
    module = AnsibleModule(argument_spec=remote_argument_spec(on_remote=dict(type="bool", default=False)), supports_check_mode=True)
    try:
        config = database_config(module.params)
        if module.params["on_remote"] and not config.remote:
            raise PgdrillError("on_remote was asked for, but no off-host copy is configured", NO_REMOTE_FIX)
        # The off-host state is reported, never fatal: a report must still show the local sets.
        listing = operations.describe(config, remote_sets=module.params["on_remote"])
        pitr = _pitr(config) if config.pitr_stanza else None
    except PgdrillError as exc:
        fail(module, exc)
    sets = listing["sets"]
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
        remote=config.remote,
        remote_problem=listing["remote_problem"],
        newest_on_remote=(newest or {}).get("remote") == "complete" if config.remote else None,
        remote_sets=listing["remote_sets"],
        pitr=pitr,
    )


def _pitr(config):
    """The stanza's state; reported, never fatal, like the off-host copy's."""
    try:
        return operations.pitr_status(config.pitr_stanza, config.pitr_config, config.connection)
    except PgdrillError as exc:
        return {"stanza": config.pitr_stanza, "ok": False, "status": exc.message, "archive": None}


if __name__ == "__main__":
    main()
