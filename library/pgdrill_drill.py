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
  - With O(kind=physical) the drill is a point-in-time restore instead, on the same evidence - pgBackRest
    restores stanza O(stanza) into a new private data directory (0700, under O(work_dir) or a temporary
    directory; never an existing one), a throwaway server on its own unix socket, without archiving,
    replays WAL to O(target) and is promoted, then the proofs run (fingerprint and row counts of a
    point, the logical set restored beside it and compared table by table for a C(set:) target,
    C(amcheck) on every B-tree index, the commands and checks). Its steps are C(resolve target),
    C(check versions), C(restore), C(recovery), C(checks) and C(cleanup).
  - A physical drill refuses, before restoring anything, when staging's PostgreSQL binaries
    (O(pg_bin_dir), else the installed ones) are not of the repository's major version.
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
  kind:
    description: A drill of a logical backup set (V(logical)) or a point-in-time restore with pgBackRest (V(physical)).
    type: str
    choices: [logical, physical]
    default: logical
  target:
    description:
      - What a physical drill restores to - V(latest) (all archived WAL), C(time:ISO8601) (with its offset),
        C(name:POINT) (a restore point), C(point:FILE) (a saved point record, whose fingerprint and row counts
        are proved) or C(set:SET_ID) (the restore point of the logical set SET_ID in O(backup_dir)).
    type: str
    default: latest
  stanza:
    description: The pgBackRest stanza a physical drill restores. Required with O(kind=physical).
    type: str
  pgbackrest_config:
    description: pgBackRest's config file on this host (a physical drill).
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  work_dir:
    description: Where a physical drill makes its new private data directory (default a temporary directory).
    type: path
  recovery_timeout:
    description: Seconds a physical drill waits for recovery to reach its target.
    type: float
    default: 3600
  backup_dir:
    description: The directory on this host that holds the copy of the set (a physical drill - the set of a C(set:) target).
    type: path
  prefix:
    description: The series' file name prefix (default O(database)).
    type: str
  set:
    description: The set to drill (set name, stamp or file name). Required with O(kind=logical).
    type: str
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
    description:
      - Verifies the copy and reports the set it would restore; restores, runs and drops nothing.
      - A physical drill only resolves its target and checks the major versions; it never restores.
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

- name: Drill a point-in-time restore to the restore point of a logical set
  pgdrill_drill:
    kind: physical
    stanza: main
    target: set:ez360pm_20261126_021500_utc
    backup_dir: /var/lib/pgdrill/drills/ez360pm_20261126_021500_utc
    database: ez360pm
    login_user: postgres
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
    kind:
      description: V(physical) for a point-in-time drill (absent for a logical one).
      returned: physical drills
      type: str
    target:
      description: The physical drill's target, its type and value (and the restore point it names).
      returned: physical drills
      type: dict
      sample: {type: name, value: pgdrill_ez360pm_20261126T021500Z}
    reached:
      description: The LSN of the last WAL record replayed and the time of the last transaction replayed.
      returned: physical drills that recovered
      type: dict
      sample: {lsn: 0/5000138, commit_time: "2026-11-26T02:15:00.104030Z"}
    rpo_seconds:
      description: The measured RPO, or null when it cannot be measured (RV(record.rpo_basis) says why).
      returned: physical drills that recovered
      type: float
    rpo_basis:
      description: What the RPO was measured against, or why it could not be measured.
      returned: physical drills that recovered
      type: str
    rto_seconds:
      description: Restore, recovery and checks, in seconds.
      returned: physical drills
      type: float
    proofs:
      description: Each proof's result - fingerprint, row_counts, logical_equal, amcheck and smoke.
      returned: physical drills
      type: dict
    problems:
      description: What a physical drill's proofs found wrong.
      returned: physical drills
      type: list
      elements: str
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
from ansible.module_utils.pgdrill.pitr_drill import PhysicalDrill


def drill_config(params) -> DrillConfig:
    """The drill's settings from the module's options: its commands and checks run in the order given."""
    return DrillConfig(
        database=params["database"],
        prefix=params["prefix"] or params["database"],
        connection=connection_of(params),
        evidence_dir="",
        work_dir=params["work_dir"] if params["kind"] == "physical" else params["backup_dir"],
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
            kind=dict(type="str", choices=["logical", "physical"], default="logical"),
            target=dict(type="str", default="latest"),
            stanza=dict(type="str"),
            pgbackrest_config=dict(type="path", default="/etc/pgbackrest/pgbackrest.conf"),
            work_dir=dict(type="path"),
            recovery_timeout=dict(type="float", default=3600),
            backup_dir=dict(type="path"),
            prefix=dict(type="str"),
            set=dict(type="str"),
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
        required_if=[("kind", "logical", ("backup_dir", "prefix", "set")), ("kind", "physical", ("stanza",))],
        supports_check_mode=True,
    )
    params = module.params
    install_runner(module)
    physical = None
    if params["kind"] == "physical":
        physical = PhysicalDrill(params["target"], params["stanza"], params["pgbackrest_config"], recovery_timeout=params["recovery_timeout"])
    run = operations.drill_copy(drill_config(params), params["backup_dir"], params["set"], check=module.check_mode, physical=physical)
    if module.check_mode:
        if run.error:
            module.fail_json(msg=run.error, failed_step=run.failed_step, changed=False, record=run.record)
        what = f"stanza {params['stanza']} to {params['target']} on a throwaway server" if physical else f"{params['set']} into a fresh scratch database"
        module.exit_json(changed=True, record=run.record, msg=f"would restore {what}")
    result = dict(record=run.record, restore=run.restore, smoke=run.smoke, cleanup=run.cleanup)
    if not run.passed:
        details = {key: value for key, value in run.details.items() if key in ("rc", "stderr", "stdout", "cmd")}
        module.fail_json(msg=run.error, failed_step=run.failed_step, changed=run.target is not None, **details, **result)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
