#!/usr/bin/env python3
# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Assemble the Ansible collection pgdrill.pgdrill from this repository, and build its tarball.

    tools/build_collection.py [--out DIR] [--tarball DIST_DIR]

The repository keeps the layout a playbook directory has (library/, module_utils/, plugins/,
roles/, playbooks/, wired by ansible.cfg), which is what the other tools, the tests and the demo
use. This script lays the same files out as ansible_collections/pgdrill/pgdrill/ and rewrites only
names, never behaviour:

- library/*.py -> plugins/modules/: ``ansible.module_utils.pgdrill`` imports become
  ``ansible_collections.pgdrill.pgdrill.plugins.module_utils.pgdrill``; doc fragments, seealso and
  M()/O()/RV() references and the EXAMPLES' module names become FQCNs;
- module_utils/pgdrill/*.py -> plugins/module_utils/pgdrill/ as they are (their imports are relative),
  and the same files into roles/pgdrill_backup/files/pgdrill/, the engine the backup role installs on
  hosts (in the checkout that directory is a link to module_utils/pgdrill): one implementation;
  pgdrill.contrib (the Django app) belongs to the wheel only;
- plugins/doc_fragments/ as it is;
- roles/ and playbooks/: module names and role names become FQCNs (playbooks/group_vars/, which only
  this checkout's playbooks use, is left out);
- collection/galaxy.yml (its version set to the engine's), collection/meta/ (runtime.yml,
  execution-environment.yml), collection/README.md, LICENSE, CHANGELOG.md, and the execution
  environment's requirements.txt and bindep.txt.

Afterwards every YAML file and module is checked for a short pgdrill name left behind, so that a
task written in a form the rewrite does not know fails the build instead of the collection.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from typing import Callable, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMESPACE, NAME = "pgdrill", "pgdrill"
FQ = f"{NAMESPACE}.{NAME}"
MODULE_UTILS_IMPORT = f"ansible_collections.{NAMESPACE}.{NAME}.plugins.module_utils.pgdrill"
ENGINE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "contrib")
# The ansible-core versions meta/runtime.yml admits, for tests/sanity/ignore-X.Y.txt.
ANSIBLE_CORE_VERSIONS = ("2.19", "2.20", "2.21")


def engine_version() -> str:
    with open(os.path.join(REPO, "module_utils", "pgdrill", "__init__.py"), encoding="utf-8") as handle:
        match = re.search(r'^__version__ = "([^"]+)"', handle.read(), re.M)
    assert match, "module_utils/pgdrill/__init__.py has no __version__"
    return match.group(1)


def module_names() -> List[str]:
    return sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "library")) if name.endswith(".py"))


def role_names() -> List[str]:
    return sorted(name for name in os.listdir(os.path.join(REPO, "roles")) if os.path.isdir(os.path.join(REPO, "roles", name, "tasks")))


def _alternation(names: List[str]) -> str:
    return "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))


def fqcn_yaml(text: str, modules: List[str], roles: List[str]) -> str:
    """Module keys (tasks, module_defaults, EXAMPLES) and role references, as FQCNs."""
    mods, rols = _alternation(modules), _alternation(roles)
    text = re.sub(rf"^(\s*(?:-\s+)?)({mods}):(?=\s|$)", rf"\g<1>{FQ}.\g<2>:", text, flags=re.M)
    text = re.sub(rf"^(\s*-\s+role:\s+)({rols})[ \t]*$", rf"\g<1>{FQ}.\g<2>", text, flags=re.M)
    text = re.sub(rf"^(\s*-\s+)({rols})[ \t]*$", rf"\g<1>{FQ}.\g<2>", text, flags=re.M)
    # include_role / import_role: the name on the lines that follow.
    text = re.sub(rf"((?:ansible\.builtin\.)?(?:include|import)_role:\s*\n(?:\s+\w+:.*\n)*?\s+name:\s+)({rols})[ \t]*$", rf"\g<1>{FQ}.\g<2>", text, flags=re.M)
    return text


def fqcn_module(text: str, modules: List[str], roles: List[str]) -> str:
    mods = _alternation(modules)
    text = text.replace("ansible.module_utils.pgdrill", MODULE_UTILS_IMPORT)
    text = re.sub(
        r"^(extends_documentation_fragment:\s*\[)([^\]]*)\]",
        lambda m: m.group(1) + ", ".join(f"{FQ}.{part.strip()}" for part in m.group(2).split(",")) + "]",
        text,
        flags=re.M,
    )
    text = re.sub(
        r"^(extends_documentation_fragment:\s*\n)((?:\s+-\s+\S+\n)+)",
        lambda m: m.group(1) + re.sub(r"(-\s+)(pgdrill\S*)", rf"\g<1>{FQ}.\g<2>", m.group(2)),
        text,
        flags=re.M,
    )
    text = re.sub(rf"^(\s+-\s+module:\s+)({mods})[ \t]*$", rf"\g<1>{FQ}.\g<2>", text, flags=re.M)
    text = re.sub(rf"\b(M\(|O\(|RV\()({mods})(?=\)|#module:)", rf"\g<1>{FQ}.\g<2>", text)
    return fqcn_yaml(text, modules, roles)


def leftovers(text: str, modules: List[str], roles: List[str]) -> List[str]:
    """Lines that still name a pgdrill module or role by its short name where a FQCN belongs."""
    mods, rols = _alternation(modules), _alternation(roles)
    patterns = [
        rf"^\s*(?:-\s+)?(?:{mods}):(?:\s|$)",
        rf"^\s*-\s+role:\s+(?:{rols})[ \t]*$",
        rf"^\s+name:\s+(?:{rols})[ \t]*$",
        r"ansible\.module_utils\.pgdrill",
        rf"\b(?:M|O|RV)\((?:{mods})(?:\)|#)",
        rf"^\s+-\s+module:\s+(?:{mods})[ \t]*$",
    ]
    return [line for line in text.splitlines() if any(re.search(p, line) for p in patterns)]


def _copy_rewritten(source: str, target: str, rewrite: Callable[[str], str]) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(source, encoding="utf-8") as handle:
        text = handle.read()
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(rewrite(text))
    shutil.copymode(source, target)


def assemble(out: str) -> str:
    """Lay the collection out under ``out``; returns ansible_collections/pgdrill/pgdrill in it."""
    root = os.path.join(out, "ansible_collections", NAMESPACE, NAME)
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    modules, roles = module_names(), role_names()
    problems: List[str] = []

    for module in modules:
        target = os.path.join(root, "plugins", "modules", f"{module}.py")
        _copy_rewritten(os.path.join(REPO, "library", f"{module}.py"), target, lambda t: fqcn_module(t, modules, roles))
    engine = os.path.join(REPO, "module_utils", "pgdrill")
    shutil.copytree(engine, os.path.join(root, "plugins", "module_utils", "pgdrill"), ignore=ENGINE_IGNORE)
    shutil.copytree(
        os.path.join(REPO, "plugins", "doc_fragments"), os.path.join(root, "plugins", "doc_fragments"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )

    for role in roles:
        source = os.path.join(REPO, "roles", role)
        for directory, subdirs, files in os.walk(source):
            relative = os.path.relpath(directory, source)
            if relative == os.path.join("files", "pgdrill") or "__pycache__" in relative.split(os.sep):
                subdirs[:] = []
                continue
            subdirs[:] = [d for d in subdirs if not os.path.islink(os.path.join(directory, d))]
            for name in files:
                src, dst = os.path.join(directory, name), os.path.join(root, "roles", role, relative, name)
                if name.endswith((".yml", ".yaml", ".md")):  # the READMEs' examples too
                    _copy_rewritten(src, dst, lambda t: fqcn_yaml(t, modules, roles))
                elif not name.endswith(".pyc"):
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy2(src, dst)
        if os.path.islink(os.path.join(source, "files", "pgdrill")) or os.path.isdir(os.path.join(source, "files", "pgdrill")):
            # The engine the role installs on hosts: the very files of plugins/module_utils/pgdrill.
            shutil.copytree(engine, os.path.join(root, "roles", role, "files", "pgdrill"), ignore=ENGINE_IGNORE)

    for name in sorted(os.listdir(os.path.join(REPO, "playbooks"))):
        if name.endswith(".yml"):
            _copy_rewritten(os.path.join(REPO, "playbooks", name), os.path.join(root, "playbooks", name), lambda t: fqcn_yaml(t, modules, roles))

    with open(os.path.join(REPO, "collection", "galaxy.yml"), encoding="utf-8") as handle:
        galaxy = re.sub(r"^version: .*$", f"version: {engine_version()}", handle.read(), count=1, flags=re.M)
    with open(os.path.join(root, "galaxy.yml"), "w", encoding="utf-8") as handle:
        handle.write(galaxy)
    os.makedirs(os.path.join(root, "meta"))
    for name in ("runtime.yml", "execution-environment.yml"):
        shutil.copy2(os.path.join(REPO, "collection", "meta", name), os.path.join(root, "meta", name))
    shutil.copy2(os.path.join(REPO, "collection", "README.md"), os.path.join(root, "README.md"))
    for name in ("LICENSE", "CHANGELOG.md", "execution-environment/requirements.txt", "execution-environment/bindep.txt"):
        shutil.copy2(os.path.join(REPO, name), os.path.join(root, os.path.basename(name)))

    # ansible-test sanity's exceptions, each with its reason, once per ansible-core version.
    os.makedirs(os.path.join(root, "tests", "sanity"))
    ignores = [f"plugins/modules/{module}.py validate-modules:missing-gplv3-license # pgdrill is MIT (LICENSE, SPDX headers)" for module in modules]
    ignores += [
        "roles/pgdrill_backup/templates/usr/local/bin/pgdrill-backup.j2 shebang # a template: the host's Python, set by the role",
    ]
    for version in ANSIBLE_CORE_VERSIONS:
        with open(os.path.join(root, "tests", "sanity", f"ignore-{version}.txt"), "w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in ignores))

    for directory, _, files in os.walk(root):
        for name in files:
            checked = name.endswith((".yml", ".yaml", ".py")) and "module_utils" not in directory
            if checked and os.path.join("files", "pgdrill") not in directory:
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as handle:
                    problems += [f"{os.path.relpath(path, root)}: {line.strip()}" for line in leftovers(handle.read(), modules, roles)]
    if problems:
        raise SystemExit("short pgdrill names left in the collection (write them in a form tools/build_collection.py rewrites):\n  " + "\n  ".join(problems))
    return root


def build_tarball(root: str, dist: str) -> str:
    os.makedirs(dist, exist_ok=True)
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    subprocess.run(
        [galaxy if os.path.exists(galaxy) else "ansible-galaxy", "collection", "build", root, "--output-path", dist, "--force"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return os.path.join(os.path.abspath(dist), f"{NAMESPACE}-{NAME}-{engine_version()}.tar.gz")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Assemble the pgdrill.pgdrill collection and build its tarball.")
    parser.add_argument("--out", default=os.path.join(REPO, "build", "collection"), help="where ansible_collections/ is laid out (default: build/collection)")
    parser.add_argument("--tarball", metavar="DIST_DIR", help="also build the tarball with ansible-galaxy collection build into this directory")
    args = parser.parse_args(argv)
    root = assemble(os.path.abspath(args.out))
    print(root)
    if args.tarball:
        print(build_tarball(root, args.tarball))
    return 0


if __name__ == "__main__":
    sys.exit(main())
