#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: download a backup set from its off-host copy.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_pull
short_description: Download a pgdrill backup set from its off-host copy, verified on arrival
description:
  - Downloads a complete set from O(remote) into O(dest) (default the series' backup directory),
    the newest complete set, or the one O(set) names. This is how a new host gets the backups of a
    host that no longer exists, and how staging gets the set a drill restores.
  - Each file gets its final name only after its size and sha256 matched the set's manifest; the
    manifest is written last, so an interrupted pull leaves nothing that counts as a set. Files
    already present with the right sha256 are not downloaded again.
  - Encrypted sets stay encrypted on disk; restoring them needs O(encrypt_identity_file).
version_added: "0.2.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_push
    description: The module that uploads sets to the off-host copy.
  - module: pgdrill_restore
    description: The module that restores a pulled set.
extends_documentation_fragment: [pgdrill, pgdrill.connection, pgdrill.remote]
options:
  set:
    description:
      - Name or stamp of the set. Defaults to the newest complete set on the remote.
    type: str
  dest:
    description:
      - Directory to download into (created 0700). Defaults to O(backup_dir).
    type: path
  accept_foreign:
    description:
      - Into an encrypted series (a O(config) whose section has C(encrypt_recipients)), a set whose
        manifest says it is plaintext, encrypted to none of the series' recipients, or taken on
        another host than the series' sets in O(dest) is refused (named O(set)) or skipped (the
        newest set). V(true) takes such a set all the same.
    type: bool
    default: false
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Reads the remote's listing and the set's manifest; downloads nothing.
  diff_mode:
    support: none
    description: The downloaded files are listed in RV(downloaded).
"""

EXAMPLES = r"""
- name: Bring the newest ez360pm set to a rebuilt host
  pgdrill_pull:
    remote: s3://acme-backups/pgdrill
    prefix: ez360pm
    dest: /var/backups/pgdrill/ez360pm
"""

RETURN = r"""
set:
  description: The set pulled.
  returned: always
  type: str
  sample: ez360pm_20261126_021500_utc
directory:
  description: Where its files are.
  returned: always
  type: str
  sample: /var/backups/pgdrill/ez360pm
files:
  description: The set's files.
  returned: always
  type: list
  elements: str
downloaded:
  description: The files downloaded by this run.
  returned: always
  type: list
  elements: str
remote:
  description: The off-host copy the set came from.
  returned: always
  type: str
  sample: s3://acme-backups/pgdrill
skipped:
  description:
    - Without O(set), the newer sets passed over on the way to the newest set that verifies, each
      with why (dated in the future, damaged on the remote, proven bad by a remote verify, bytes
      that did not match the manifest on arrival, or not a set of this encrypted series). Empty
      when the newest set was pulled, or when O(set) was given.
  returned: always
  type: list
  elements: dict
  contains:
    set:
      description: The set skipped.
      type: str
      sample: ez360pm_20261127_021500_utc
    why:
      description: Why it was skipped.
      type: str
      sample: "its bytes do not match its manifest: ..."
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import database_config, fail, remote_argument_spec
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.errors import PgdrillError


def main():
    module = AnsibleModule(
        argument_spec=remote_argument_spec(set=dict(type="str"), dest=dict(type="path"), accept_foreign=dict(type="bool", default=False)),
        supports_check_mode=True,
    )
    params = module.params
    try:
        config = database_config(params)
        directory = params["dest"] or config.backup_dir
        outcome = operations.pull(config, params["set"], directory, dry_run=module.check_mode, accept_foreign=params["accept_foreign"])
    except PgdrillError as exc:
        fail(module, exc)
    module.exit_json(
        changed=bool(outcome["downloaded"]),
        set=outcome["set"],
        directory=outcome["directory"],
        files=outcome["files"],
        downloaded=outcome["downloaded"],
        remote=outcome["remote"],
        skipped=outcome.get("skipped") or [],
    )


if __name__ == "__main__":
    main()
