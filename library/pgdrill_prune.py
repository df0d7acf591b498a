#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: apply retention to a backup series.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_prune
short_description: Apply keep-last and max-age retention to pgdrill backup sets
description:
  - Deletes the backup sets of one series that are older than O(retention_days) and not among the
    newest O(keep_last) complete sets of their kind (sets holding a database dump, sets holding
    media), with the rules of pgdrill's engine.
  - The newest complete set of each kind is never deleted, nor the newest of each kind that has not
    failed verification; damaged sets and sets dated in the future are kept and never counted;
    only files with pgdrill's naming and the series' own prefix are ever touched; incomplete sets
    (no manifest) are removed once older than O(debris_grace_hours).
  - Run it with C(--check --diff) first to see, per host, exactly which sets would go.
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_info
    description: The module that lists the sets.
  - module: pgdrill_dump
    description: The module that takes the backup sets.
extends_documentation_fragment: [pgdrill, pgdrill.connection]
options:
  keep_last:
    description:
      - The newest this many complete sets are always kept. Defaults to the config's, else 14.
    type: int
  retention_days:
    description:
      - Complete sets older than this many days may be deleted. Defaults to the config's, else 14.
    type: int
  debris_grace_hours:
    description:
      - Incomplete sets older than this many hours are removed. Defaults to the config's, else 24.
    type: float
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Computes the same plan and deletes nothing; takes no lock and writes nothing.
  diff_mode:
    support: full
    description: The sets before and after, one per line.
"""

EXAMPLES = r"""
- name: Keep 7 sets and nothing older than 30 days (preview with --check --diff first)
  pgdrill_prune:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    keep_last: 7
    retention_days: 30

- name: Prune a series given directly
  pgdrill_prune:
    backup_dir: /var/backups/pgdrill
    prefix: shop
"""

RETURN = r"""
removed:
  description: Sets deleted (or, in check mode, that would be), each with the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - set: shop_20261001_021500_utc
      action: remove
      reason: older than 14 days (56.0 days) and not among the newest 14 of its kind
      files: [shop_db_20261001_021500_utc.dump.zst, shop_manifest_20261001_021500_utc.json]
      size: 233012345
      time: "2026-10-01T02:15:00+00:00"
kept:
  description: Sets kept, each with the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - set: shop_20261126_021500_utc
      action: keep
      reason: newest complete set holding a database dump (never deleted)
      files: [shop_db_20261126_021500_utc.dump.zst, shop_manifest_20261126_021500_utc.json]
      size: 233012345
      time: "2026-11-26T02:15:00+00:00"
backup_dir:
  description: Directory of the series.
  returned: always
  type: str
  sample: /var/backups/pgdrill
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import argument_spec, database_config, fail
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.errors import PgdrillError


def _listing(entries):
    return "".join(f"{entry['set']}\n" for entry in sorted(entries, key=lambda entry: entry["time"], reverse=True))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            keep_last=dict(type="int"),
            retention_days=dict(type="int"),
            debris_grace_hours=dict(type="float"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        config = database_config(
            params, keep_last=params["keep_last"], retention_days=params["retention_days"], debris_grace_hours=params["debris_grace_hours"]
        )
        outcome = operations.prune(config, dry_run=module.check_mode, wait=config.lock_wait)
    except PgdrillError as exc:
        fail(module, exc)
    result = dict(
        changed=bool(outcome["removed"]),
        removed=outcome["removed"],
        kept=outcome["kept"],
        backup_dir=config.backup_dir,
    )
    if module._diff:
        result["diff"] = dict(
            before=_listing(outcome["removed"] + outcome["kept"]),
            after=_listing(outcome["kept"]),
            before_header=f"{config.backup_dir} ({config.prefix}) before",
            after_header=f"{config.backup_dir} ({config.prefix}) after keep_last={config.keep_last} retention_days={config.retention_days}",
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
