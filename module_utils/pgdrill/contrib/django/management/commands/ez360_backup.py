# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""``python manage.py ez360_backup``: the EZ360PM seed's backup command, run by pgdrill's engine."""

from pgdrill.contrib.django.command import BackupCommand


class Command(BackupCommand):
    pass
