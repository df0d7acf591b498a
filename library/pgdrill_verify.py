#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: verify a backup set.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_verify
short_description: Verify a pgdrill backup set by checksum, archive listing and optionally a real restore
description:
  - Checks a backup set against its manifest (sha256 and size of every file), reads the dump's table
    of contents with C(pg_restore --list), reads any media archive end to end, and with O(restore)
    restores the dump into a fresh scratch database, compares per-table row counts with the
    manifest, and drops the scratch database.
  - Fails naming the check that failed, and returns every check with its result.
  - Records the outcome next to the set (shown by M(pgdrill_info) and C(pgdrill-backup list)); the
    backup itself is never changed, so the module always reports RV(ignore:changed=false).
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_dump
    description: The module that takes the backup sets.
  - module: pgdrill_restore
    description: The module that restores a set and compares it with its fingerprint.
  - module: pgdrill_info
    description: The module that lists the sets.
extends_documentation_fragment: [pgdrill, pgdrill.connection, pgdrill.remote]
options:
  on_remote:
    description:
      - Verify the off-host copy (O(remote)) instead; its listing against the manifest, then every
        object downloaded and hashed (nothing is stored). With O(restore), the set is pulled into
        a temporary directory, restored into a scratch database and compared there; an encrypted
        set needs O(encrypt_identity_file).
    type: bool
    default: false
  set:
    description: Set name, stamp or file name. Defaults to the newest complete set.
    type: str
  all:
    description: Verify every complete set of the series.
    type: bool
    default: false
  restore:
    description: Also restore into a scratch database on the configured server and compare row counts.
    type: bool
    default: false
  jobs:
    description: Parallel pg_restore jobs for O(restore). Defaults to the config's, else 2.
    type: int
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Runs every check but does not record the outcome.
  diff_mode:
    support: none
    description: Nothing is changed.
"""

EXAMPLES = r"""
- name: Verify the newest backup by restoring it
  pgdrill_verify:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    restore: true
"""

RETURN = r"""
ok:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: true
verdict:
  description:
    - V(passed) when every check passed; V(bad) when the set's own bytes are proven bad (a checksum, a
      ciphertext that does not authenticate, an archive that is rejected, restored content that differs);
      V(inconclusive) when a check could not run (a wrong or missing key, a server that is down, a missing
      tool or privilege). Only V(bad) counts against the set in retention; V(inconclusive) leaves the set's
      recorded verdict as it was. With O(all), the worst of the sets.
  returned: always
  type: str
  sample: passed
set:
  description: The set verified (the last one with O(all)).
  returned: always
  type: str
  sample: ez360pm_20261126_021500_utc
checks:
  description: Every check with its result and a one-line detail.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: "checksum ez360pm_db_20261126_021500_utc.dump.zst", ok: true, detail: "sha256 and size (233012345 bytes) match"}
    - {name: "row counts", ok: true, detail: "7 tables, 4438070 rows match the manifest"}
results:
  description: One entry per set with O(all).
  returned: when O(all) is true
  type: list
  elements: dict
  sample: [{set: ez360pm_20261126_021500_utc, ok: true, checks: []}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import database_config, fail, install_runner, remote_argument_spec
from ansible.module_utils.pgdrill import operations, verdict
from ansible.module_utils.pgdrill.errors import PgdrillError


def main():
    module = AnsibleModule(
        argument_spec=remote_argument_spec(
            on_remote=dict(type="bool", default=False),
            set=dict(type="str"),
            all=dict(type="bool", default=False),
            restore=dict(type="bool", default=False),
            jobs=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    install_runner(module)
    try:
        config = database_config(params)
        # A remote verify's verdicts are recorded on this host (never on the remote); in check mode it leaves out the restore (it would create a scratch database).
        restore = params["restore"] and not (params["on_remote"] and module.check_mode)
        results = operations.verify(
            config,
            params["set"],
            every=params["all"],
            restore=restore,
            jobs=params["jobs"],
            record=not module.check_mode,
            wait=config.lock_wait,
            on_remote=params["on_remote"],
        )
    except PgdrillError as exc:
        fail(module, exc, changed=False)
    verdicts = [r.get("verdict", "passed" if r["ok"] else "bad") for r in results]
    worst = next((v for v in ("bad", "inconclusive") if v in verdicts), "passed")
    output = dict(changed=False, ok=all(r["ok"] for r in results), verdict=worst, set=results[-1]["set"], checks=results[-1]["checks"])
    if params["all"]:
        output["results"] = results
    failed = [r for r in results if not r["ok"]]
    if failed:
        # The set to name: one its checks prove bad, when any is; the words are the drill's too.
        named = next((r for r in failed if r.get("verdict") == "bad"), failed[0])
        words = verdict.failure_words(named["set"], named["checks"])
        module.fail_json(msg=words[0] if words else f"backup set {named['set']} failed verification", **output)
    module.exit_json(**output)


if __name__ == "__main__":
    main()
