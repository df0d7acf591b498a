# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
from django.apps import AppConfig


class PgdrillConfig(AppConfig):
    name = "pgdrill.contrib.django"
    label = "pgdrill"
    verbose_name = "pgdrill backups"
