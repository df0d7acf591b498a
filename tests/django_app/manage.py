#!/usr/bin/env python3
"""A minimal Django project standing in for EZ360PM in the drill tests: its migrate and check run
against a restored database, configured the way the seed's settings are (POSTGRES_* variables)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
