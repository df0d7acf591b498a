#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: restore a backup set, guarded.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_restore
short_description: Restore a pgdrill backup set into a database, refusing to overwrite data by accident
description:
  - Restores a backup set (the newest complete one by default) into a target database on the server
    the connection options point at.
  - By default the target is a new database, created from C(template0) with the source's encoding
    and locale. Replacing an existing database (C(pg_restore --clean --if-exists)) happens only with
    O(replace).
  - Refuses when the target has other connections, unless O(terminate_connections).
  - Refuses when the target is the set's own source database on the same server, unless O(confirm)
    equals that database's name.
  - Runs C(pg_restore --exit-on-error) with parallel jobs, optionally replays the globals first, and
    then proves the restore against the set's fingerprint (every schema, table, view, sequence,
    function, type, extension, trigger, policy and publication with its owner and privileges, the
    default privileges and the large objects, taken in the dump's own snapshot) and per-table row
    counts. Any difference fails the task, naming the objects; what the options chose not to restore
    (O(no_owner), O(no_privileges), a partial restore) is left out of the comparison and named in
    RV(not_restored).
  - Uses a C(pg_restore) at least as new as the C(pg_dump) that wrote the set (from its manifest),
    the installed client closest above it, or O(pg_bin_dir).
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_verify
    description: The module that verifies a set, optionally by restore.
  - module: pgdrill_smoke
    description: The module that runs smoke checks and drops scratch databases.
  - module: pgdrill_evidence
    description: The module that records a drill's evidence.
extends_documentation_fragment: [pgdrill, pgdrill.connection, pgdrill.remote]
options:
  set:
    description: Set name, stamp or file name. Defaults to the newest complete set.
    type: str
  target_db:
    description: Database to restore into. Defaults to C(<source>_restore_<stamp>).
    type: str
  replace:
    description: Restore over an existing database (C(--clean --if-exists)).
    type: bool
    default: false
  terminate_connections:
    description: End other sessions on an existing target instead of refusing.
    type: bool
    default: false
  confirm:
    description: Must equal O(target_db) to restore over the set's own source database on its own server.
    type: str
  jobs:
    description: Parallel pg_restore jobs.
    type: int
    default: 2
  restore_globals:
    description:
      - Replay the set's roles, role memberships and tablespaces first (psql, on O(maintenance_db)).
      - Roles the target server already has are left as they are there; their statements, and
        memberships granted to them, are left out, so the source's passwords and attributes never
        overwrite them (the superuser's among them).
    type: bool
    default: false
  role_passwords:
    description:
      - With O(restore_globals), give the roles it creates the source's password hashes and LOGIN.
      - V(false) creates them without passwords and NOLOGIN (what drills on staging do).
    type: bool
    default: true
  schemas:
    description:
      - Restore only these schemas (with the extensions, types and functions their objects need) into
        the fresh target. The comparison is limited to them.
    type: list
    elements: str
    default: []
  tables:
    description:
      - Restore only these tables, as C(schema.table) (C(public) when no schema is given; quote a
        dotted name C("a.b".c)), with their partitions, indexes, constraints, triggers, policies,
        identity sequences and privileges. Foreign keys to tables not chosen are left out. The
        comparison is limited to them.
    type: list
    elements: str
    default: []
  scratch:
    description:
      - Mark the target as a scratch database (a drill's), and the roles O(restore_globals) creates as
        made for it, so that M(pgdrill_smoke) with O(pgdrill_smoke#module:drop) can remove both.
    type: bool
    default: false
  no_owner:
    description: Do not restore object ownership (C(--no-owner)); for targets without the source's roles.
    type: bool
    default: false
  no_privileges:
    description: Do not restore access privileges (C(--no-privileges)); for targets without the roles the source grants to.
    type: bool
    default: false
  compare:
    description: Prove the restore against the set's fingerprint and row counts; a difference fails.
    type: bool
    default: true
    aliases: [check_row_counts]
  maintenance_db:
    description: Database to connect to for creating the target.
    type: str
    default: postgres
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Connects read-only, applies every refusal rule, and reports what would be restored where.
  diff_mode:
    support: none
    description: The target database is reported through RV(target).
"""

EXAMPLES = r"""
- name: Restore the newest backup into a fresh database
  pgdrill_restore:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    target_db: ez360pm_check
  register: restored

- name: Replace production from a named set (refused unless confirm names the database)
  pgdrill_restore:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    set: ez360pm_20261126_021500_utc
    target_db: ez360pm
    replace: true
    terminate_connections: true
    confirm: ez360pm
"""

RETURN = r"""
set:
  description: The set restored.
  returned: always
  type: str
  sample: ez360pm_20261126_021500_utc
target:
  description: The database restored into.
  returned: always
  type: str
  sample: ez360pm_restore_20261126_021500
target_existed:
  description: Whether the target existed before.
  returned: always
  type: bool
  sample: false
timings:
  description: Seconds taken by each step (create_database, globals, decompress, pg_restore, row_counts, total).
  returned: when the restore ran
  type: dict
  sample: {create_database: 0.4, pg_restore: 9.7, row_counts: 1.1, total: 11.3}
commands:
  description:
    - The commands run, each as an argument list (C(argv)), a pipeline of them, or an SQL statement,
      with what went to standard input. No secrets, since connection settings come from the environment.
  returned: when the restore ran
  type: list
  elements: dict
  sample: [{argv: [/usr/lib/postgresql/15/bin/pg_restore, --exit-on-error, --dbname=ez360pm_check, --jobs=2, /var/backups/pgdrill/ez360pm_db_20261126_021500_utc.dump]}]
command_lines:
  description: The same commands as an operator would type them.
  returned: when the restore ran
  type: list
  elements: str
  sample: ["pg_restore --exit-on-error --dbname=ez360pm_check --jobs=2 /var/backups/pgdrill/ez360pm_db_20261126_021500_utc.dump"]
fidelity:
  description: The comparison with the set's fingerprint, with every difference (object, what, expected, found).
  returned: when the restore ran and O(compare) is true
  type: dict
  sample: {checked: true, ok: true, objects: 412, large_objects: 2, differences: [], notes: []}
not_restored:
  description: What the options left out of this restore (ownership, privileges, everything outside a partial restore).
  returned: always
  type: list
  elements: str
  sample: [ownership]
server_majors:
  description: Major versions of the source and target servers, with a note when they differ.
  returned: always
  type: dict
  sample: {source: 15, target: 18, note: upgrade rehearsal 15 -> 18}
roles_created:
  description: Roles the globals replay created on the target server.
  returned: always
  type: list
  elements: str
  sample: [app_owner]
pg_restore:
  description: The pg_restore used.
  returned: always
  type: str
  sample: /usr/lib/postgresql/18/bin/pg_restore
globals_roles_left_alone:
  description: Roles in the set's globals that the target server already had, whose statements were left out.
  returned: when O(restore_globals) and the set has globals
  type: list
  elements: str
  sample: [postgres]
row_counts:
  description: The row count comparison.
  returned: when the restore ran
  type: dict
  sample: {checked: true, tables: 7, rows: 4438070, mismatches: []}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import database_config, fail, install_runner, remote_argument_spec
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.errors import PgdrillError


def main():
    module = AnsibleModule(
        argument_spec=remote_argument_spec(
            set=dict(type="str"),
            target_db=dict(type="str"),
            replace=dict(type="bool", default=False),
            terminate_connections=dict(type="bool", default=False),
            confirm=dict(type="str"),
            jobs=dict(type="int", default=2),
            restore_globals=dict(type="bool", default=False),
            no_owner=dict(type="bool", default=False),
            no_privileges=dict(type="bool", default=False),
            role_passwords=dict(type="bool", default=True),
            schemas=dict(type="list", elements="str", default=[]),
            tables=dict(type="list", elements="str", default=[]),
            scratch=dict(type="bool", default=False),
            compare=dict(type="bool", default=True, aliases=["check_row_counts"]),
            maintenance_db=dict(type="str", default="postgres"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    install_runner(module)
    try:
        config = database_config(params)
        options = operations.RestoreOptions(
            target=params["target_db"],
            replace=params["replace"],
            terminate=params["terminate_connections"],
            confirm=params["confirm"],
            jobs=params["jobs"],
            globals=params["restore_globals"],
            role_passwords=params["role_passwords"],
            owners=not params["no_owner"],
            privileges=not params["no_privileges"],
            schemas=tuple(params["schemas"]),
            tables=tuple(params["tables"]),
            compare=params["compare"],
            scratch="restore drill" if params["scratch"] else None,
            maintenance_db=params["maintenance_db"],
            dry_run=module.check_mode,
        )
        result = operations.restore(config, params["set"], options)
    except PgdrillError as exc:
        fail(module, exc)
    result.pop("dry_run", None)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
