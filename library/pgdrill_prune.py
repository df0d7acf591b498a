#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: apply retention to a backup series.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_prune
short_description: Apply pgdrill's retention (keep-last and max-age, or grandfather-father-son tiers) to backup sets
description:
  - Deletes the backup sets of one series that no retention rule keeps, with the rules of
    pgdrill's engine. Each kept set is returned with every rule that keeps it.
  - Without tiers (the default, the seed's rule), sets older than O(retention_days) that are not
    among the newest O(keep_last) complete sets of their kind (sets holding a database dump, sets
    holding media) are deleted.
  - With any of O(keep_daily), O(keep_weekly), O(keep_monthly), O(keep_yearly) or O(keep_within)
    set, a set is kept when any rule keeps it (O(keep_last), O(keep_within), each tier, the floors,
    pins) and O(retention_days) is not a rule. A tier keeps the newest set of each of its newest N
    calendar buckets (day, ISO week from Monday, month, year in O(retention_timezone)) that hold a
    set; a tier that cannot fill N buckets also keeps the oldest set. Sets that failed verification
    never fill a tier. Tiers count each kind on its own, per series.
  - The newest complete set of each kind is never deleted, nor the newest of each kind that has not
    failed verification; pinned sets (C(pgdrill-backup pin), M(pgdrill_pin)) are never deleted;
    damaged sets and sets dated in the future are kept and never counted; only files with pgdrill's
    naming and the series' own prefix are ever touched; incomplete sets (no manifest) are removed
    once older than O(debris_grace_hours).
  - Run it with C(--check --diff) first to see, per host, exactly which sets would go and why each
    kept set stays.
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_info
    description: The module that lists the sets.
  - module: pgdrill_dump
    description: The module that takes the backup sets.
extends_documentation_fragment: [pgdrill, pgdrill.connection, pgdrill.remote]
options:
  on_remote:
    description:
      - Apply retention to the off-host copy (O(remote)) instead of the local directory, with the
        same rules and code, over the remote manifests. Objects that Object Lock protects are
        reported as kept (locked). Hosts can push with put-only credentials while this runs from
        the controller with O(remote_access_key_id) and O(remote_secret_access_key).
    type: bool
    default: false
  keep_last:
    description:
      - The newest this many complete sets of each kind are always kept. Defaults to the config's, else 14.
    type: int
  retention_days:
    description:
      - Without tiers, complete sets older than this many days may be deleted. Defaults to the
        config's, else 14. Not a rule when tiers are set (use O(keep_within)).
    type: int
  keep_daily:
    description:
      - Keep the newest set of each of the newest this many days that hold sets. Defaults to the
        config's, else 0 (off).
    type: int
  keep_weekly:
    description:
      - Keep the newest set of each of the newest this many ISO weeks (Monday to Sunday) that hold
        sets. Defaults to the config's, else 0 (off).
    type: int
  keep_monthly:
    description:
      - Keep the newest set of each of the newest this many calendar months that hold sets.
        Defaults to the config's, else 0 (off).
    type: int
  keep_yearly:
    description:
      - Keep the newest set of each of the newest this many calendar years that hold sets.
        Defaults to the config's, else 0 (off).
    type: int
  keep_within:
    description:
      - Keep every complete set younger than this duration, in whole hours, days or weeks
        (C(36h), C(14d), C(2w); a plain number is days; C(0) is off). Defaults to the config's, else 0.
    type: str
  retention_timezone:
    description:
      - The IANA time zone whose days, weeks, months and years the tiers count in (C(UTC),
        C(Europe/Berlin), C(America/New_York)). Defaults to the config's, else C(UTC).
    type: str
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
    description:
      - Before, every set; after, the kept sets, each with every rule that keeps it. The lines that
        go are the sets that would be deleted, each with why.
"""

EXAMPLES = r"""
- name: Keep 7 sets and nothing older than 30 days (preview with --check --diff first)
  pgdrill_prune:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    keep_last: 7
    retention_days: 30

- name: Grandfather-father-son, days and weeks as seen in Berlin
  pgdrill_prune:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    keep_last: 0
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12
    keep_yearly: 2
    keep_within: 36h
    retention_timezone: Europe/Berlin

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
      reason: not kept by any tier (daily 7, weekly 4, monthly 12, yearly 2)
      reasons: [not kept by any tier (daily 7, weekly 4, monthly 12, yearly 2)]
      pinned: false
      files: [shop_db_20261001_021500_utc.dump.zst, shop_manifest_20261001_021500_utc.json]
      size: 233012345
      time: "2026-10-01T02:15:00+00:00"
kept:
  description: Sets kept, each with every rule that keeps it (C(reasons)) and those joined (C(reason)).
  returned: always
  type: list
  elements: dict
  sample:
    - set: shop_20261101_021500_utc
      action: keep
      reason: 'daily (2026-11-01), monthly (2026-11), pinned: "before migration 0042"'
      reasons: [daily (2026-11-01), monthly (2026-11), 'pinned: "before migration 0042"']
      pinned: true
      files: [shop_db_20261101_021500_utc.dump.zst, shop_manifest_20261101_021500_utc.json, shop_pin_20261101_021500_utc.json]
      size: 233012345
      time: "2026-11-01T02:15:00+00:00"
policy:
  description: The rules applied, in one line.
  returned: always
  type: str
  sample: keep_last 0, daily 7, weekly 4, monthly 12, yearly 2; calendar of Europe/Berlin
backup_dir:
  description: Directory of the series.
  returned: always
  type: str
  sample: /var/backups/pgdrill
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import database_config, fail, remote_argument_spec
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.errors import PgdrillError

RETENTION_OPTIONS = (
    "keep_last",
    "retention_days",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within",
    "retention_timezone",
    "debris_grace_hours",
)


def _newest_first(entries):
    return sorted(entries, key=lambda entry: entry["time"], reverse=True)


def _before(entries):
    removed = {entry["set"]: entry["reason"] for entry in entries if entry["action"] == "remove"}
    return "".join(
        f"{entry['set']}  # removed: {removed[entry['set']]}\n" if entry["set"] in removed else f"{entry['set']}  # kept: {entry['reason']}\n"
        for entry in _newest_first(entries)
    )


def _after(entries):
    return "".join(f"{entry['set']}  # kept: {entry['reason']}\n" for entry in _newest_first(entries))


def main():
    module = AnsibleModule(
        argument_spec=remote_argument_spec(
            on_remote=dict(type="bool", default=False),
            keep_last=dict(type="int"),
            retention_days=dict(type="int"),
            keep_daily=dict(type="int"),
            keep_weekly=dict(type="int"),
            keep_monthly=dict(type="int"),
            keep_yearly=dict(type="int"),
            keep_within=dict(type="str"),
            retention_timezone=dict(type="str"),
            debris_grace_hours=dict(type="float"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        config = database_config(params, **{key: params[key] for key in RETENTION_OPTIONS})
        outcome = operations.prune(config, dry_run=module.check_mode, wait=config.lock_wait, on_remote=params["on_remote"])
    except PgdrillError as exc:
        fail(module, exc)
    result = dict(
        changed=bool(outcome["removed"]),
        removed=outcome["removed"],
        kept=outcome["kept"],
        policy=outcome["policy"],
        backup_dir=config.backup_dir,
    )
    where = outcome.get("remote") or config.backup_dir
    if params["on_remote"]:
        result["remote"] = where
    if module._diff:
        result["diff"] = dict(
            before=_before(outcome["removed"] + outcome["kept"]),
            after=_after(outcome["kept"]),
            before_header=f"{where} ({config.prefix}) before",
            after_header=f"{where} ({config.prefix}) after {outcome['policy']}",
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
