"""The minimal project with pgdrill's Django app installed, configured the way the seed's
config/settings/base.py reads its backup settings (EZ360_BACKUP_* variables, MEDIA_ROOT)."""

import os

from settings import *  # noqa: F401,F403

INSTALLED_APPS = INSTALLED_APPS + ["pgdrill.contrib.django"]  # noqa: F405
DATABASES["default"]["OPTIONS"] = {"sslmode": "disable", "application_name": "ez360_backup"}  # noqa: F405
MEDIA_ROOT = os.environ.get("MEDIA_ROOT", "")
EZ360_BACKUP_DIR = os.environ.get("EZ360_BACKUP_DIR", "")
EZ360_BACKUP_RETENTION_DAYS = int(os.environ.get("EZ360_BACKUP_RETENTION_DAYS", "14"))
EZ360_BACKUP_KEEP_LAST = int(os.environ.get("EZ360_BACKUP_KEEP_LAST", "14"))
PGDRILL = {"prefix": "ez360pm", "compression": "gzip"}
