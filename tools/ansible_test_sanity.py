#!/usr/bin/env python3
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Run ``ansible-test sanity`` on the assembled collection where ansible-test's pip bootstrap
script cannot be downloaded (machines that reach only the package index).

    tools/ansible_test_sanity.py [--out DIR] [ansible-test sanity arguments...]
    e.g. tools/ansible_test_sanity.py --test validate-modules

ansible-test creates its sanity virtual environments without pip and fetches get-pip.py from its
own CI host to bootstrap one. This places a stand-in in ansible-test's cache when none is there: it
installs the pip that ships with Python (ensurepip), which then installs the exact packages ansible-test
asks for from the configured package index. The collection is assembled first (build/collection) and
ansible-test runs inside it, as it must, in a throwaway git repository so it knows the files.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_collection import REPO, assemble  # noqa: E402

STAND_IN = '''"""Stand-in for get-pip.py (written by pgdrill's tools/ansible_test_sanity.py): pip from ensurepip,
then pip installs what ansible-test asked for from the configured index."""
import ensurepip
import os
import subprocess
import sys

environment = dict(os.environ)  # ensurepip points PIP_CONFIG_FILE at /dev/null: pip's own config must count
ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade"] + args, env=environment))
'''


def seed_cache() -> None:
    """The stand-in, under the name of the pip version this ansible-test bootstraps."""
    import inspect

    from ansible_test._internal import python_requirements

    versions = re.findall(r"pip='([0-9.]+)'", inspect.getsource(python_requirements.get_venv_packages)) or ["24.2"]
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    for version in set(versions):
        path = os.path.join(cache, f"get_pip_{version.replace('.', '_')}.py")
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(STAND_IN)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ansible-test sanity on the assembled collection; other arguments go to ansible-test sanity.")
    parser.add_argument("--out", default=os.path.join(REPO, "build", "collection"), help="where to assemble the collection (default: build/collection)")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    seed_cache()
    root = assemble(os.path.abspath(args.out))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    test = os.path.join(os.path.dirname(sys.executable), "ansible-test")
    return subprocess.run([test, "sanity", "--python", f"{sys.version_info[0]}.{sys.version_info[1]}", *rest], cwd=root).returncode


if __name__ == "__main__":
    sys.exit(main())
