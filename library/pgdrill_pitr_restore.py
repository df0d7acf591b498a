#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# pgdrill: restore a cluster for real from its pgBackRest repository, to a point.

from __future__ import annotations

DOCUMENTATION = r"""
module: pgdrill_pitr_restore
short_description: Restore a PostgreSQL cluster for real from its pgBackRest repository, to a point in time
description:
  - Disaster recovery - pgBackRest restores stanza O(stanza) into the cluster's data directory O(data_dir),
    the server starts on it (with C(pg_ctl), as the owner of O(pgbackrest_config), the cluster's OS user),
    replays WAL to O(target) and is promoted. The result names the LSN and commit time reached.
  - O(data_dir) must be empty or absent (it is then made, 0700, the cluster's OS user's). Over an existing
    data directory the module refuses unless O(confirm) names that directory; only then is its server stopped
    (a fast shutdown) and the restore made over it (C(--delta)).
  - Archiving is off in the restored cluster (C(archive_mode = off) in its C(postgresql.auto.conf)) until you
    turn it back on with the C(pgdrill_pitr) role (C(playbooks/provision_pitr.yml)), once this host is the one
    that writes.
  - When O(service) names the cluster's systemd unit, the promoted server is then stopped cleanly (a fast
    shutdown) and started by that unit, which must come up active, running O(data_dir), out of recovery;
    otherwise the server stays under C(pg_ctl), outside any unit.
  - The repository and version checks, the restore and the recovery are the physical drill's own steps
    (M(pgdrill_drill) with O(pgdrill_drill#module:kind=physical)).
  - In check mode the request, the directory and the repository (C(pgbackrest info), the major version of this
    host's binaries) are checked and the result says what would be done; nothing changes.
version_added: "0.2.0"
author: pgdrill maintainers (@pgdrill)
seealso:
  - module: pgdrill_drill
    description: The physical drill, which restores the same way into a throwaway data directory and proves it.
extends_documentation_fragment: [pgdrill.connection]
options:
  stanza:
    description: The pgBackRest stanza to restore.
    type: str
    required: true
  pgbackrest_config:
    description: pgBackRest's config file on this host (the cluster's OS user's; it holds the repository's secrets).
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  data_dir:
    description: The cluster's data directory, restored into (an absolute path).
    type: path
    required: true
  config_dir:
    description:
      - Where the cluster's C(postgresql.conf) lives, for C(pg_ctl -D) (default O(data_dir)). On Debian it is
        C(/etc/postgresql/VERSION/CLUSTER).
    type: path
  target:
    description: V(latest) (all archived WAL), C(time:ISO8601) (with its offset) or C(name:POINT) (a restore point).
    type: str
    default: latest
  confirm:
    description: Replace the cluster in an existing O(data_dir) - must equal O(data_dir).
    type: str
  recovery_timeout:
    description: Seconds to wait for recovery to reach its target.
    type: float
    default: 3600
  service:
    description:
      - The systemd unit that runs this cluster (Debian - C(postgresql@15-main)). After promotion the server is
        handed to it; a unit this host lacks is refused before anything changes, unless O(service_optional).
      - Unset or empty - the restored server stays under C(pg_ctl).
    type: str
  service_optional:
    description: When O(service) is not on this host (or systemd does not run here), leave the server under C(pg_ctl) instead of refusing.
    type: bool
    default: false
attributes:
  platform:
    support: full
    platforms: posix
    description: Runs on the host whose cluster is restored (as root or as the cluster's OS user).
  check_mode:
    support: full
    description:
      - Checks the request, the data directory and the repository and says what it would do; stops, restores and starts nothing.
  diff_mode:
    support: none
    description: A restore replaces a whole cluster; there is no file diff to show.
"""

EXAMPLES = r"""
- name: Restore the cluster onto this new host, to the latest archived WAL
  pgdrill_pitr_restore:
    stanza: main
    data_dir: /var/lib/postgresql/15/main
    config_dir: /etc/postgresql/15/main
"""

RETURN = r"""
data_dir_was:
  description: What O(data_dir) held before - V(absent), V(empty) or V(holds data).
  returned: always
  type: str
replaced:
  description: Whether an existing cluster was replaced (O(confirm) named it).
  returned: always
  type: bool
server_stopped:
  description: Whether a server running on O(data_dir) was stopped first.
  returned: when not in check mode
  type: bool
target:
  description: The target, as the physical drill's evidence names it.
  returned: always
  type: dict
  sample: {type: latest, value: null}
backup_label:
  description: The pgBackRest backup set restored from.
  returned: when not in check mode
  type: str
wal_range:
  description: The WAL files replayed, from the backup's first to the one holding the LSN reached.
  returned: when not in check mode
  type: dict
reached:
  description: The LSN of the last WAL record replayed and the commit time of the last transaction replayed (UTC).
  returned: when not in check mode
  type: dict
  sample: {lsn: 0/5000138, commit_time: "2026-11-26T02:15:00.104030Z"}
service:
  description: The systemd unit the restored server was (in check mode - would be) handed to, or null.
  returned: always
  type: str
timings:
  description: Seconds of the restore and of the recovery (start, replay, promotion).
  returned: when not in check mode
  type: dict
note:
  description: That archiving is off in the restored cluster, and how to turn it back on.
  returned: when not in check mode
  type: str
msg:
  description: In check mode, what would be done.
  returned: in check mode
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgdrill.ansible_support import connection_argument_spec, connection_of, fail
from ansible.module_utils.pgdrill.errors import PgdrillError
from ansible.module_utils.pgdrill.pitr_restore import pitr_restore


def main():
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            stanza=dict(type="str", required=True),
            pgbackrest_config=dict(type="path", default="/etc/pgbackrest/pgbackrest.conf"),
            data_dir=dict(type="path", required=True),
            config_dir=dict(type="path"),
            target=dict(type="str", default="latest"),
            confirm=dict(type="str"),
            recovery_timeout=dict(type="float", default=3600),
            service=dict(type="str"),
            service_optional=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = pitr_restore(
            params["stanza"],
            params["pgbackrest_config"],
            params["data_dir"],
            target=params["target"],
            confirm=params["confirm"],
            connection=connection_of(params),
            pg_bin_dir=params["pg_bin_dir"],
            config_dir=params["config_dir"],
            recovery_timeout=params["recovery_timeout"],
            service=params["service"],
            service_optional=params["service_optional"],
            check=module.check_mode,
        )
    except PgdrillError as exc:
        fail(module, exc)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
