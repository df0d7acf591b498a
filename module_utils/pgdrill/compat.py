# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""The names the EZ360PM seed gave its settings, still read where the seed's users set them.

The seed's backup command took ``EZ360_BACKUP_DIR``, ``EZ360_BACKUP_RETENTION_DAYS`` and
``EZ360_BACKUP_KEEP_LAST`` (from the environment or Django's settings) and ``MEDIA_ROOT``. The
engine's own paths know only the ``PGDRILL_*`` names; ``pgdrill-backup`` passes these to
``load_configs`` as aliases (a ``PGDRILL_*`` name wins), and the Django app reads the same names
from the project's settings.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from .config import DatabaseConfig, load_configs

# Seed name -> the engine key it sets.
SEED_SETTINGS: Dict[str, str] = {
    "EZ360_BACKUP_DIR": "backup_dir",
    "EZ360_BACKUP_RETENTION_DAYS": "retention_days",
    "EZ360_BACKUP_KEEP_LAST": "keep_last",
}
# Environment aliases pgdrill-backup reads: the seed's names, and MEDIA_ROOT as Django projects name it.
ENV_ALIASES: Dict[str, str] = {**SEED_SETTINGS, "MEDIA_ROOT": "media_root"}


def load_seed_configs(
    path: Optional[str] = None,
    environ: Optional[Mapping[str, str]] = None,
    overrides: Optional[Mapping[str, object]] = None,
    only: Optional[List[str]] = None,
) -> List[DatabaseConfig]:
    """``config.load_configs`` that also reads the seed's environment names."""
    return load_configs(path, environ=environ, overrides=overrides, only=only, env_aliases=ENV_ALIASES)
