# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Optional integrations of pgdrill's engine with other software (not used by the Ansible modules)."""
