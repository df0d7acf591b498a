#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: run a restore drill on a copy of a backup set.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_drill
short_description: Run a restore drill on a copy of a backup set that is already on this host
description:
  - Runs the restore drill's own steps on a set whose copy is in O(backup_dir), through the same engine
    code as the scheduled drill (C(pgdrill-backup drill)); only where the set comes from differs.
  - The steps, each timed in RV(record.timings), are C(verify on arrival) (the set's checksums and
    archive, recording nothing), C(restore) (into a fresh scratch database named
    C(drill_<database>_<stamp>_<random>), proved against the set's fingerprint and row counts),
    C(smoke checks) (the post-restore commands, then the smoke checks) and C(cleanup) (the scratch
    database and the roles made for it dropped, unless O(keep) keeps them).
  - A failed drill fails the task, naming the step in RV(failed_step), and still returns what the
    drill found, so that M(pgdrill_evidence) records it.
  - A kept copy never holds the set's globals file (the source's role password hashes); it is removed
    from O(backup_dir) and named in RV(record.kept_copies_left_out).
version_added: "0.2.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_evidence
    description: The module that writes the drill's evidence record.
  - module: pgdrill_restore
    description: The module that restores a set (not only into a scratch database).
  - module: pgdrill_smoke
    description: The module that runs smoke checks and drops scratch databases.
extends_documentation_fragment: [pgdrill.connection]
options:
  backup_dir:
    description: The directory on this host that holds the copy of the set.
    type: path
    required: true
  prefix:
    description: The series' file name prefix.
    type: str
    required: true
  set:
    description: The set to drill (set name, stamp or file name).
    type: str
    required: true
  database:
    description: The drilled database's name, for the scratch database's name and the messages.
    type: str
    required: true
  jobs:
    description: Parallel pg_restore jobs.
    type: int
    default: 2
  restore_globals:
    description: Replay the set's roles and tablespaces first (roles the server has are left alone).
    type: bool
    default: true
  role_passwords:
    description: Give the roles the drill creates the source's password hashes and LOGIN (default NOLOGIN, no password).
    type: bool
    default: false
  no_owner:
    description: Restore without object ownership (named in the outcome).
    type: bool
    default: false
  no_privileges:
    description: Restore without access privileges (named in the outcome).
    type: bool
    default: false
  encrypt_identity_file:
    description: An age identity file on this host that decrypts an encrypted set.
    type: path
  commands:
    description: Post-restore commands, run first, in the M(pgdrill_smoke) format.
    type: list
    elements: dict
    default: []
  checks:
    description: Smoke checks, run after the commands, in the M(pgdrill_smoke) format.
    type: list
    elements: dict
    default: []
  command_timeout:
    description: Seconds a post-restore command or a command check may take.
    type: float
    default: 600
  keep:
    description: Keep the scratch database and the roles made for it after the drill (V(on_failure) to debug a failed drill).
    type: str
    choices: [never, on_failure, always]
    default: never
  maintenance_db:
    description: Database to connect to for creating and dropping the scratch database.
    type: str
    default: postgres
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the host that restores the set (staging).
  check_mode:
    support: full
    description: Verifies the copy and reports the set it would restore; restores, runs and drops nothing.
  diff_mode:
    support: none
    description: A drill's scratch database is new every time.
"""

EXAMPLES = r"""
- name: Drill the copy of a set brought to staging
  pgdrill_drill:
    backup_dir: /var/lib/pgdrill/drills/ez360pm_20261126_021500_utc
    prefix: ez360pm
    set: ez360pm_20261126_021500_utc
    database: ez360pm
    login_host: /var/run/postgresql
    login_user: postgres
    checks:
      - {name: login, sql: "SELECT 1 FROM users WHERE is_active", expect: rows}
  register: drilled
"""

RETURN = r"""
record:
  description:
    - The drill's facts for its evidence record (M(pgdrill_evidence)) - the set, its files, sha256 and
      versions from its manifest, the scratch database and whether it was kept, the files left out of
      a kept copy, and the seconds each step took.
  returned: always
  type: dict
  sample: {set: ez360pm_20261126_021500_utc, scratch_database: drill_ez360pm_20261126_021500_5c0ffe, scratch_database_kept: false, timings: {restore: 9.7}}
  contains:
    timings:
      description: The seconds each step took, by step name.
      returned: always
      type: dict
      sample: {verify on arrival: 0.4, restore: 9.7, smoke checks: 2.2, cleanup: 0.3}
    kept_copies_left_out:
      description: The files stripped from a kept copy of the set (the globals when they hold role passwords).
      returned: when a copy of the set was kept
      type: list
      elements: str
restore:
  description: What the restore did and found (as M(pgdrill_restore) returns it), also when it failed.
  returned: when the restore ran
  type: dict
  sample: {fidelity: {checked: true, ok: true}}
smoke:
  description: The post-restore commands' and smoke checks' results (as M(pgdrill_smoke) returns them).
  returned: when there were commands or checks to run
  type: dict
  sample: {ok: true, results: [{name: migrate, kind: command, ok: true, detail: exit 0, seconds: 2.1}]}
cleanup:
  description: What the cleanup dropped (the database, roles_dropped, roles_kept).
  returned: when the scratch database was dropped
  type: dict
  sample: {dropped: true, roles_dropped: [], roles_kept: []}
failed_step:
  description: The step a failed drill failed at.
  returned: on failure
  type: str
  sample: smoke checks
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import connection_argument_spec, connection_of, install_runner
from ansible.module_utils.pgdrill.drill_config import DrillConfig
from ansible.module_utils.pgdrill import operations


def drill_config(params) -> DrillConfig:
    """The drill's settings from the module's options: its commands and checks run in the order given."""
    return DrillConfig(
        database=params["database"],
        prefix=params["prefix"],
        connection=connection_of(params),
        evidence_dir="",
        work_dir=params["backup_dir"],
        maintenance_db=params["maintenance_db"],
        restore_globals=params["restore_globals"],
        role_passwords=params["role_passwords"],
        owners=not params["no_owner"],
        privileges=not params["no_privileges"],
        restore_jobs=params["jobs"],
        pg_bin_dir=params["pg_bin_dir"],
        checks=tuple(params["commands"]) + tuple(params["checks"]),
        command_timeout=params["command_timeout"],
        keep=params["keep"],
        encrypt_identity_file=params["encrypt_identity_file"],
    )


def main():
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            backup_dir=dict(type="path", required=True),
            prefix=dict(type="str", required=True),
            set=dict(type="str", required=True),
            database=dict(type="str", required=True),
            jobs=dict(type="int", default=2),
            restore_globals=dict(type="bool", default=True),
            role_passwords=dict(type="bool", default=False),
            no_owner=dict(type="bool", default=False),
            no_privileges=dict(type="bool", default=False),
            encrypt_identity_file=dict(type="path"),
            commands=dict(type="list", elements="dict", default=[]),
            checks=dict(type="list", elements="dict", default=[]),
            command_timeout=dict(type="float", default=600),
            keep=dict(type="str", choices=["never", "on_failure", "always"], default="never"),
            maintenance_db=dict(type="str", default="postgres"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    install_runner(module)
    run = operations.drill_copy(drill_config(params), params["backup_dir"], params["set"], check=module.check_mode)
    if module.check_mode:
        if run.error:
            module.fail_json(msg=run.error, failed_step=run.failed_step, changed=False, record=run.record)
        module.exit_json(changed=True, record=run.record, msg=f"would restore {params['set']} into a fresh scratch database")
    result = dict(record=run.record, restore=run.restore, smoke=run.smoke, cleanup=run.cleanup)
    if not run.passed:
        details = {key: value for key, value in run.details.items() if key in ("rc", "stderr", "stdout", "cmd")}
        module.fail_json(msg=run.error, failed_step=run.failed_step, changed=run.target is not None, **details, **result)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
