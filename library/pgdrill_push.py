#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: upload backup sets to their off-host copy.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_push
short_description: Upload pgdrill backup sets to their off-host copy (S3-compatible storage or rclone)
description:
  - Uploads the files of complete backup sets to O(remote), each file once, the manifest last, so
    that a set on the remote counts only once all of it is there. An interrupted push is resumed;
    files already on the remote with their size are not sent again.
  - Every upload is checked (size, and the whole-file sha256 stored with each S3 object); an
    object that exists is never overwritten, so buckets with versioning or Object Lock keep every
    copy as first written.
  - By default the newest complete set is pushed; O(set) names one, O(all) pushes every complete
    set the remote lacks.
version_added: "0.2.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_pull
    description: The module that downloads a set from the off-host copy.
  - module: pgdrill_prune
    description: The module that applies retention, on the off-host copy with on_remote.
extends_documentation_fragment: [pgdrill, pgdrill.connection, pgdrill.remote]
options:
  set:
    description:
      - Name or stamp of the set to push.
    type: str
  all:
    description:
      - Push every complete set of the series.
    type: bool
    default: false
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Reads the remote's listing and reports what would be uploaded; uploads nothing.
  diff_mode:
    support: none
    description: Nothing on the managed host changes; the uploads are listed in RV(sets).
"""

EXAMPLES = r"""
- name: Push the newest set of ez360pm to the bucket configured on the host
  pgdrill_push:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm

- name: Push every set the remote lacks
  pgdrill_push:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm
    all: true
"""

RETURN = r"""
remote:
  description: The off-host copy.
  returned: always
  type: str
  sample: s3://backups/pgdrill
sets:
  description: Each set pushed, with the files uploaded (or that would be) and those already there.
  returned: always
  type: list
  elements: dict
  sample:
    - set: ez360pm_20261126_021500_utc
      uploaded: [ez360pm_db_20261126_021500_utc.dump.zst.age, ez360pm_manifest_20261126_021500_utc.json]
      present: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import database_config, fail, remote_argument_spec
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill.errors import PgdrillError


def main():
    module = AnsibleModule(
        argument_spec=remote_argument_spec(set=dict(type="str"), all=dict(type="bool", default=False)),
        mutually_exclusive=[("set", "all")],
        supports_check_mode=True,
    )
    params = module.params
    try:
        config = database_config(params)
        outcome = operations.push(config, params["set"], every=params["all"], dry_run=module.check_mode, wait=config.lock_wait)
    except PgdrillError as exc:
        fail(module, exc)
    module.exit_json(changed=any(entry["uploaded"] for entry in outcome["sets"]), remote=outcome["remote"], sets=outcome["sets"])


if __name__ == "__main__":
    main()
