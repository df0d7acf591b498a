#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: take one backup set.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_dump
short_description: Take a pgdrill backup set of a PostgreSQL database
description:
  - Takes one backup set on the managed host with pgdrill's engine, the same code the
    C(pgdrill-backup) command runs, writing a custom-format C(pg_dump) (zstd-compressed by default), the
    cluster's globals, optionally the media root, and a manifest with checksums, versions, locale,
    timings and per-table row counts taken in the dump's snapshot.
  - Every file is written under a temporary name and renamed only when complete; the set exists
    only once its manifest does. A failed run leaves no files behind and prunes nothing.
version_added: "0.1.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_verify
    description: The module that verifies a set, optionally by restore.
  - module: pgdrill_prune
    description: The module that applies retention.
  - module: pgdrill_info
    description: The module that lists the sets.
extends_documentation_fragment: [pgdrill, pgdrill.connection]
options:
  include_database:
    description: Dump the database (C(--db)).
    type: bool
    default: true
  include_media:
    description: Archive O(media_root) into the same set (C(--media)).
    type: bool
    default: false
  media_root:
    description: Directory archived by O(include_media). Symbolic links are stored, never followed.
    type: path
  compression:
    description:
      - C(zstd) uses pg_dump's own zstd where it has it, else a zstd pipe, else falls back to gzip.
      - Defaults to the config's, else C(zstd).
    type: str
    choices: [zstd, gzip, none]
  compression_level:
    description: Compression level. Defaults to 3 for zstd and 6 for gzip.
    type: int
  format:
    description:
      - C(custom) writes the dump as one pg_dump archive file.
      - C(directory) runs C(pg_dump -Fd) with C(dump_jobs) parallel jobs (the config's, else 2), compresses each file with zstd and, with
        encryption on, encrypts each file; every file's sha256 and size is in the manifest. Needs O(compression) C(zstd) or C(none).
      - A directory-format set goes to the off-host copy as one object per file, C(<dir>/<file>), the manifest last.
      - C(auto) picks directory for a database of the config's C(directory_above) (default 1 GB) or more, read when the run starts, custom below.
      - Defaults to the config's, else C(custom).
    type: str
    choices: [custom, directory, auto]
  dump_globals:
    description: Also dump roles and tablespaces (C(pg_dumpall --globals-only)). Defaults to the config's, else true.
    type: bool
  role_passwords:
    description: Include role password hashes in the globals. Defaults to the config's, else true.
    type: bool
  row_counts:
    description: Count each table's rows in the dump's snapshot. Defaults to the config's, else true.
    type: bool
  skip_if_newer_than:
    description:
      - Take no backup, and report no change, when the newest complete set is younger than this
        many seconds. C(0) always takes a backup.
      - Sets dated in the future (a clock that ran ahead) never count as recent; the module warns
        about them and takes a backup.
    type: int
    default: 0
  prune:
    description:
      - Apply the series' retention after a successful backup.
      - Defaults to false here (playbooks prune explicitly with M(pgdrill_prune)); the host command
        prunes by default.
    type: bool
    default: false
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs (the managed host, or the controller when delegated there).
  check_mode:
    support: full
    description: Reports the files that would be written and where, without running pg_dump.
  diff_mode:
    support: none
    description: A new set is reported through RV(set) and RV(files).
"""

EXAMPLES = r"""
- name: Back up the database the host's config names
  pgdrill_dump:
    config: /etc/pgdrill/pgdrill.conf
    database: ez360pm

- name: Back up database and media, connection given directly
  pgdrill_dump:
    backup_dir: /var/backups/pgdrill
    db: ez360pm
    login_user: backup
    passfile: /etc/pgdrill/pgpass
    include_media: true
    media_root: /srv/ez360pm/media
"""

RETURN = r"""
set:
  description: Name of the set written (in check mode, the name it would get).
  returned: always
  type: str
  sample: ez360pm_20261126_021500_utc
files:
  description: The set's files with size and sha256 (in check mode, names only).
  returned: always
  type: list
  elements: dict
  sample:
    - name: ez360pm_db_20261126_021500_utc.dump.zst
      kind: db
      size: 233012345
      sha256: 5f2b...
backup_dir:
  description: Directory of the series.
  returned: always
  type: str
  sample: /var/backups/pgdrill
duration_seconds:
  description: Time the backup took.
  returned: when a set was written
  type: float
  sample: 4.9
manifest:
  description: Path of the set's manifest.
  returned: when a set was written
  type: str
  sample: /var/backups/pgdrill/ez360pm_manifest_20261126_021500_utc.json
database:
  description: Database facts recorded in the manifest (name, versions, encoding, locale).
  returned: when a set was written
  type: dict
  sample: {name: ez360pm, server_version: "15.18", encoding: UTF8, collate: C.UTF-8, ctype: C.UTF-8}
tables:
  description: Number of tables whose rows were counted.
  returned: when a set was written
  type: int
  sample: 7
skipped_because:
  description: Why no backup was taken (O(skip_if_newer_than)).
  returned: when a recent set made the backup unnecessary
  type: str
  sample: newest set ez360pm_20261126_021500_utc is 600 s old (limit 3600 s)
notes:
  description: Warnings about the plan (for example a fallback to gzip).
  returned: in check mode
  type: list
  elements: str
  sample: []
prune:
  description: What retention removed and kept, with reasons.
  returned: when O(prune) is true and a set was written
  type: dict
  sample: {removed: [], kept: []}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import argument_spec, database_config, fail, install_runner
from ansible.module_utils.pgdrill.backup_plan import plan_backup
from ansible.module_utils.pgdrill import operations
from ansible.module_utils.pgdrill import manifest as manifest_mod
from ansible.module_utils.pgdrill.errors import PgdrillError
from ansible.module_utils.pgdrill.naming import set_id_of_manifest


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            include_database=dict(type="bool", default=True),
            include_media=dict(type="bool", default=False),
            media_root=dict(type="path"),
            compression=dict(type="str", choices=["zstd", "gzip", "none"]),
            compression_level=dict(type="int"),
            format=dict(type="str", choices=["custom", "directory", "auto"]),
            dump_globals=dict(type="bool"),
            role_passwords=dict(type="bool"),
            row_counts=dict(type="bool"),
            skip_if_newer_than=dict(type="int", default=0),
            prune=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    install_runner(module)
    try:
        config = database_config(
            params,
            media_root=params["media_root"],
            compression=params["compression"],
            compression_level=params["compression_level"],
            format=params["format"],
            globals=params["dump_globals"],
            role_passwords=params["role_passwords"],
            row_counts=params["row_counts"],
            prune_after_backup=params["prune"],
        )
        recent, clock = operations.recent_backup(config, params["skip_if_newer_than"])
        if clock:
            module.warn(clock)  # such sets never count as recent: a backup is taken
        if recent:
            module.exit_json(
                changed=False,
                set=recent["set"],
                files=[{"name": name} for name in recent["files"]],
                backup_dir=config.backup_dir,
                skipped_because=f"newest set {recent['set']} is {recent['age_seconds']:.0f} s old (limit {params['skip_if_newer_than']} s)",
            )
        plan = plan_backup(config, params["include_database"], params["include_media"])
        if module.check_mode:
            preview = plan.preview()
            module.exit_json(
                changed=True,
                set=set_id_of_manifest(preview["files"][-1]),
                files=[{"name": name} for name in preview["files"]],
                backup_dir=config.backup_dir,
                notes=preview["notes"],
                msg=f"would write {len(preview['files'])} files into {config.backup_dir}",
            )
        result = operations.backup(config, plan, wait=config.lock_wait)
    except PgdrillError as exc:
        fail(module, exc)
    document = result["manifest"]
    manifest_name = manifest_mod.manifest_name(config.prefix, document["stamp"])
    output = dict(
        changed=True,
        set=document["set"],
        files=document["files"],
        backup_dir=config.backup_dir,
        duration_seconds=document["duration_seconds"],
        manifest=os.path.join(config.backup_dir, manifest_name),
        database={key: value for key, value in document["database"].items() if key != "system_identifier"},
        tables=len(document["row_counts"] or {}),
    )
    if "prune" in result:
        output["prune"] = result["prune"]
    module.exit_json(**output)


if __name__ == "__main__":
    main()
