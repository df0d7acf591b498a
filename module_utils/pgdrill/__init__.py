# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""pgdrill's backup engine.

One implementation of naming, manifests, retention, verification and restore, shared by the host
command ``pgdrill-backup`` (installed as the ``pgdrill`` package) and by the Ansible modules in
``library/`` (shipped by Ansible as ``ansible.module_utils.pgdrill``). Imports inside the package are
relative so that both names work. Runs on Python 3.9+ with the standard library; psycopg 3 is
imported only where a live connection is needed.
"""

__version__ = "0.1.0"
