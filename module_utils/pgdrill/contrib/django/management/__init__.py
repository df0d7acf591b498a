# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
