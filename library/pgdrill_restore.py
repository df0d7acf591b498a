#!/usr/bin/python
# -*- coding: utf-8 -*-
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
    compares per-table row counts with the manifest afterwards.
version_added: "0.1.0"
author: pgdrill maintainers
extends_documentation_fragment: [pgdrill, pgdrill.connection]
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
      - Roles the target server already has are left as they are there; their statements are left out,
        so the source's passwords and attributes never overwrite them (the superuser's among them).
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
  check_row_counts:
    description: Compare per-table row counts with the manifest after the restore; a mismatch fails.
    type: bool
    default: true
  maintenance_db:
    description: Database to connect to for creating the target.
    type: str
    default: postgres
attributes:
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
  description: The commands run, as an operator would type them (connection settings come from the environment).
  returned: when the restore ran
  type: list
  elements: str
  sample: ["pg_restore --exit-on-error --dbname=ez360pm_check --jobs=2 /var/backups/pgdrill/ez360pm_db_20261126_021500_utc.dump"]
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
from ansible.module_utils.pgdrill.ansible_support import argument_spec, database_config, fail, install_runner
from ansible.module_utils.pgdrill.catalog import find_set
from ansible.module_utils.pgdrill.errors import PgdrillError
from ansible.module_utils.pgdrill.recovery import describe_commands, restore_set
from ansible.module_utils.pgdrill.series import Series


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            set=dict(type="str"),
            target_db=dict(type="str"),
            replace=dict(type="bool", default=False),
            terminate_connections=dict(type="bool", default=False),
            confirm=dict(type="str"),
            jobs=dict(type="int", default=2),
            restore_globals=dict(type="bool", default=False),
            no_owner=dict(type="bool", default=False),
            no_privileges=dict(type="bool", default=False),
            check_row_counts=dict(type="bool", default=True),
            maintenance_db=dict(type="str", default="postgres"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    install_runner(module)
    try:
        config = database_config(params)
        backup = find_set(Series(config).sets(), params["set"])
        result = restore_set(
            config,
            backup,
            target=params["target_db"],
            replace=params["replace"],
            terminate=params["terminate_connections"],
            confirm=params["confirm"],
            jobs=params["jobs"],
            with_globals=params["restore_globals"],
            no_owner=params["no_owner"],
            no_privileges=params["no_privileges"],
            check_row_counts=params["check_row_counts"],
            maintenance_db=params["maintenance_db"],
            dry_run=module.check_mode,
        )
    except PgdrillError as exc:
        fail(module, exc)
    result["commands"] = describe_commands(result["commands"])
    result.pop("dry_run", None)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
