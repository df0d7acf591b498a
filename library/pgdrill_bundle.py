#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: a backup set as one file, for the drill's transfer through the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_bundle
short_description: Pack a pgdrill backup set's files into one tar, or unpack one safely
description:
  - The restore drill's transfer through the controller moves a set as one file, whatever its format
    (a custom-format dump, or a directory-format dump's directory of one file per table).
  - With O(state=packed), writes the files O(paths) names (relative to O(directory)) into a new
    uncompressed tar O(archive) (mode 0600; the members are compressed or encrypted already). The tar
    is given the owner of the directory it lies in, so that a set only root can read, packed under
    become into the connection user's private temporary directory, can be fetched without become
    (streamed, not read whole into memory). An existing O(archive) is never overwritten.
  - Packing reads regular files only, each opened below O(directory) without following a link, and
    first checks that the archive's filesystem has room for the tar.
  - With O(state=unpacked), unpacks O(archive) into the existing, empty directory O(directory), files
    0600 and directories 0700 whatever the tar says. A member that is a link (symbolic or hard), a
    device, an absolute path, climbs out with C(..) or is named twice fails the task before anything
    is written.
version_added: "0.2.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_drill
    description: The module that verifies the unpacked set against its manifest and restores it.
options:
  state:
    description:
      - C(packed) writes O(archive) from O(paths) in O(directory); C(unpacked) unpacks O(archive) into O(directory).
    type: str
    choices: [packed, unpacked]
    required: true
  archive:
    description:
      - The tar file.
    type: path
    required: true
  directory:
    description:
      - With O(state=packed), the directory the set's files are in (the backup directory); with
        O(state=unpacked), the directory to unpack into.
    type: path
    required: true
  paths:
    description:
      - With O(state=packed), the files to pack, relative to O(directory) (a directory-format dump's
        members as C(<dir>/<member>)). Required with O(state=packed).
    type: list
    elements: str
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs wherever the task runs.
  check_mode:
    support: full
    description: Packs and unpacks nothing; checks what the real run would refuse (an existing archive,
      a path outside the set, a non-empty directory, a member that may not be unpacked) and lists the
      members it would write.
  diff_mode:
    support: none
    description: Files are packed or unpacked whole; there is no diff to show.
"""

EXAMPLES = r"""
- name: Pack the set where the connection user can fetch it
  pgdrill_bundle:
    state: packed
    directory: /var/backups/pgdrill/ez360pm
    paths: [ez360pm_manifest_20261126_021500_utc.json, ez360pm_db_20261126_021500_utc.dump.zst]
    archive: /tmp/pgdrill-drill-x1y2/set.tar
  become: true

- name: Unpack it on staging
  pgdrill_bundle:
    state: unpacked
    archive: /var/lib/pgdrill/drills/ez360pm_20261126_021500_utc.tar
    directory: /var/lib/pgdrill/drills/ez360pm_20261126_021500_utc.partial
"""

RETURN = r"""
archive:
  description: The tar file.
  returned: always
  type: str
  sample: /tmp/pgdrill-drill-x1y2/set.tar
size:
  description: The tar's size in bytes (0 when packing in check mode).
  returned: always
  type: int
  sample: 104867840
members:
  description: The members packed or unpacked (the paths asked for, in check mode).
  returned: always
  type: list
  elements: str
  sample: [ez360pm_manifest_20261126_021500_utc.json, ez360pm_db_20261126_021500_utc.dump.zst]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill import bundle
from ansible.module_utils.pgdrill.ansible_support import fail
from ansible.module_utils.pgdrill.errors import PgdrillError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["packed", "unpacked"], required=True),
            archive=dict(type="path", required=True),
            directory=dict(type="path", required=True),
            paths=dict(type="list", elements="str"),
        ),
        required_if=[("state", "packed", ["paths"])],
        supports_check_mode=True,
    )
    params = module.params
    archive, directory = params["archive"], params["directory"]
    try:
        if params["state"] == "packed" and module.check_mode:
            bundle.check_paths(params["paths"])
            if os.path.lexists(archive):
                raise PgdrillError(f"cannot create {archive}: File exists", fix="write it into a directory that does not hold it yet")
            members = params["paths"]
        elif params["state"] == "packed":
            bundle.pack(directory, params["paths"], archive)
            members = params["paths"]
        elif module.check_mode:
            members = bundle.members_of(archive, directory)
        else:
            members = bundle.unpack(archive, directory)
    except PgdrillError as exc:
        fail(module, exc, archive=archive)
    size = os.path.getsize(archive) if os.path.exists(archive) else 0
    module.exit_json(changed=True, archive=archive, size=size, members=members)


if __name__ == "__main__":
    main()
