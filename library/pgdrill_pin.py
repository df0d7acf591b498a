#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: pin a backup set out of retention, or remove its pin.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_pin
short_description: Pin a pgdrill backup set so that no retention rule deletes it, or unpin it
description:
  - With O(state=present), writes a small pin file beside a complete backup set
    (C(<prefix>_pin_<stamp>_utc.json), mode 0600, under the series lock) holding the reason, when
    (UTC) and who (user@host). No retention rule deletes a pinned set, on the host or on its
    off-host copy (the pin is copied with the set). The same as C(pgdrill-backup pin SET --reason TEXT).
  - A pin is written once. A set already pinned with the same O(reason) is left as it is (not
    changed); one pinned with another reason fails, naming who pinned it and why (unpin it first).
  - With O(state=absent), removes the pin (C(pgdrill-backup unpin SET)); retention decides about the
    set again at the next prune.
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_prune
    description: The module that applies retention, which never deletes a pinned set.
  - module: pgdrill_info
    description: The module that lists the sets with their pins.
extends_documentation_fragment: [pgdrill, pgdrill.connection]
options:
  set:
    description:
      - The set, by name (C(<prefix>_<stamp>_utc)), stamp or one of its file names.
    type: str
    required: true
  reason:
    description:
      - Why the set must stay, one line of at most 200 characters (for example C(before migration 0042)).
        Required with O(state=present).
    type: str
  state:
    description:
      - C(present) pins the set, C(absent) removes its pin.
    type: str
    choices: [present, absent]
    default: present
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Applies every check (the set exists and is complete, an existing pin) and writes nothing.
  diff_mode:
    support: full
    description: The set's pin before and after.
"""

EXAMPLES = r"""
- name: Keep the last backup before the migration forever
  pgdrill_pin:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    set: ez360pm_20261126_021500_utc
    reason: before migration 0042

- name: Release it after the audit
  pgdrill_pin:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    set: ez360pm_20261126_021500_utc
    state: absent
"""

RETURN = r"""
set:
  description: The set pinned or unpinned.
  returned: always
  type: str
  sample: ez360pm_20261126_021500_utc
pin:
  description: The set's pin (after pinning; before unpinning), or null when it had none.
  returned: always
  type: dict
  sample: {reason: before migration 0042, pinned_at: "2026-11-26T09:00:00.000Z", by: pgdrill@db1}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import argument_spec, database_config, fail
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.errors import PgdrillError


def _describe(pin):
    return f'pinned: "{pin["reason"]}" ({pin["by"]}, {pin["pinned_at"]})\n' if pin else "not pinned\n"


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            set=dict(type="str", required=True),
            reason=dict(type="str"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        required_if=[("state", "present", ("reason",))],
        supports_check_mode=True,
    )
    params = module.params
    unpin = params["state"] == "absent"
    try:
        config = database_config(params)
        outcome = operations.pin(config, params["set"], params["reason"], unpin=unpin, dry_run=module.check_mode, wait=config.lock_wait)
    except PgdrillError as exc:
        fail(module, exc, changed=False)
    result = dict(changed=outcome["changed"], set=outcome["set"], pin=outcome["pin"])
    if module._diff:
        pin = outcome["pin"]
        before = pin if unpin or not outcome["changed"] else None
        after = None if unpin else pin
        result["diff"] = dict(
            before=_describe(before), after=_describe(after), before_header=f"{outcome['set']} before", after_header=f"{outcome['set']} after"
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
