# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""pgdrill for Django projects: ``INSTALLED_APPS += ["pgdrill.contrib.django"]`` (``pip install
pgdrill[django]``) gives ``python manage.py ez360_backup`` (the EZ360PM seed's command, with its
``--db``, ``--media`` and ``--out-dir`` flags) and ``python manage.py pgdrill_backup`` (the same,
under a neutral name), each with ``list``, ``verify`` and ``prune`` subcommands.

The engine's configuration is built from the project's settings (see ``settings.py`` here): the
connection from ``DATABASES[alias]``, ``MEDIA_ROOT``, the seed's ``EZ360_BACKUP_DIR``,
``EZ360_BACKUP_RETENTION_DAYS`` and ``EZ360_BACKUP_KEEP_LAST``, and any engine key from an optional
``PGDRILL = {...}`` dict. The database password reaches pg_dump and pg_restore only through their
environment, never their command line.
"""
