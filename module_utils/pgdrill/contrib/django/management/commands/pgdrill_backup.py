# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""``python manage.py pgdrill_backup``: ``ez360_backup`` under a neutral name."""

from pgdrill.contrib.django.command import BackupCommand


class Command(BackupCommand):
    pass
