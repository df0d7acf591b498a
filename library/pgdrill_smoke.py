#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: smoke checks and post-restore commands against a restored database.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_smoke
short_description: Run smoke checks and post-restore commands against a restored database
description:
  - Runs an application's post-restore commands (for a Django app, C(python manage.py migrate) and
    C(python manage.py check)) and smoke checks against a database, typically the scratch database
    of a restore drill, and returns every result.
  - SQL checks run inside transactions that are always rolled back, so checks that write (log in,
    create a client, an invoice) leave the database unchanged. Commands run from an argument list,
    never through a shell, with the database's connection in their environment as E(PGHOST),
    E(PGPORT), E(PGDATABASE), E(PGUSER) (and E(PGPASSWORD) when O(login_password) is given) and the
    same values as E(POSTGRES_HOST), E(POSTGRES_PORT), E(POSTGRES_DB), E(POSTGRES_USER),
    E(POSTGRES_PASSWORD).
  - Optionally drops the database afterwards, with the roles a drill's globals replay made for it;
    only a scratch database that pgdrill created (M(pgdrill_restore) with O(pgdrill_restore#module:scratch))
    is ever dropped, any other database is refused.
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_restore
    description: The module that restores a set and compares it with its fingerprint.
  - module: pgdrill_evidence
    description: The module that records a drill's evidence.
extends_documentation_fragment: [pgdrill.connection]
options:
  config:
    description:
      - A pgdrill config file on the managed host to take the connection from; connection options
        given to the module override it.
    type: path
  database:
    description: The C([database NAME]) section of O(config) whose connection is used.
    type: str
  commands:
    description:
      - Post-restore commands, run first and in order. Each is a dict with C(name), C(command) (an
        argument list) and optionally C(chdir).
    type: list
    elements: dict
    default: []
  checks:
    description:
      - Smoke checks, run after the commands. Each is a dict with C(name) and either C(sql) with
        C(expect) (C(rows), C(none) or C(value) with C(value)), or C(command) (an argument list) and
        optionally C(chdir).
    type: list
    elements: dict
    default: []
  fail_on_error:
    description: Fail the task, naming the first failed check, when any command or check fails.
    type: bool
    default: true
  drop:
    description:
      - Drop the database afterwards, and the roles made for it. C(on_success) drops it only when
        everything passed, keeping a failed drill's database for debugging.
      - Only scratch databases made by pgdrill are dropped; any other database fails the task.
    type: str
    choices: [never, on_success, always]
    default: never
  maintenance_db:
    description: Database to connect to for dropping O(db).
    type: str
    default: postgres
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Runs nothing and drops nothing; reports how many commands and checks it would run.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
- name: Run EZ360PM's migrations, Django's checks and the seed's smoke tests on the restored copy
  pgdrill_smoke:
    db: ez360pm_drill_20261126
    login_host: 127.0.0.1
    passfile: /etc/pgdrill/pgpass
    login_user: pgdrill
    commands:
      - {name: migrate, command: [/srv/ez360pm/venv/bin/python, manage.py, migrate, --noinput], chdir: /srv/ez360pm}
      - {name: check, command: [/srv/ez360pm/venv/bin/python, manage.py, check], chdir: /srv/ez360pm}
    checks:
      - {name: login, sql: "SELECT 1 FROM users WHERE is_active LIMIT 1", expect: rows}
      - {name: no orphan invoices, sql: "SELECT id FROM invoices i WHERE NOT EXISTS (SELECT FROM clients c WHERE c.id = i.client_id)", expect: none}
    drop: on_success
"""

RETURN = r"""
ok:
  description: Whether every command and check passed.
  returned: always
  type: bool
  sample: true
results:
  description: Every command and check, in order, with its result.
  returned: always
  type: list
  elements: dict
  sample: [{name: migrate, kind: command, ok: true, detail: exit 0, seconds: 2.1}]
dropped:
  description: Whether the database was dropped.
  returned: always
  type: bool
  sample: true
roles_dropped:
  description: Roles made for the scratch database that were dropped with it.
  returned: always
  type: list
  elements: str
  sample: [app_owner]
roles_kept:
  description: Roles made for it that could not be dropped (still used elsewhere), with why.
  returned: always
  type: list
  elements: dict
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.ansible_support import connection_argument_spec, connection_of, database_config, fail
from ansible.module_utils.pgdrill.drill import validate_checks
from ansible.module_utils.pgdrill.errors import PgdrillError


def main():
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            commands=dict(type="list", elements="dict", default=[]),
            checks=dict(type="list", elements="dict", default=[]),
            fail_on_error=dict(type="bool", default=True),
            drop=dict(type="str", choices=["never", "on_success", "always"], default="never"),
            maintenance_db=dict(type="str", default="postgres"),
            config=dict(type="path"),
            database=dict(type="str"),
        ),
        required_if=[("drop", "always", ("db",)), ("drop", "on_success", ("db",))],
        supports_check_mode=True,
    )
    params = module.params
    steps = list(params["commands"]) + list(params["checks"])
    try:
        connection = connection_of(params, base=database_config(params).connection if params["config"] else None)
        validate_checks(steps)
        if module.check_mode:
            module.exit_json(
                changed=params["drop"] != "never",
                ok=True,
                results=[],
                dropped=False,
                roles_dropped=[],
                roles_kept=[],
                msg=f"would run {len(steps)} commands and checks",
            )
        done = operations.smoke(connection, params["db"], steps, params["drop"], params["maintenance_db"])
    except PgdrillError as exc:
        fail(module, exc)
    results, ok = done["results"], done["ok"]
    output = dict(
        changed=bool(done["dropped"] or done["roles_dropped"]),
        ok=ok,
        results=results,
        dropped=done["dropped"],
        roles_dropped=done["roles_dropped"],
        roles_kept=done["roles_kept"],
    )
    failed = [result for result in results if not result["ok"]]
    if failed and params["fail_on_error"]:
        module.fail_json(msg=f"smoke check '{failed[0]['name']}' failed: {failed[0]['detail']}", **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
