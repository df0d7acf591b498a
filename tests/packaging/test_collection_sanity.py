"""ansible-test sanity on the built collection: validate-modules (module docs against their argument
specs, authors, seealso, attributes, licence), ansible-doc, import, compile, yamllint,
runtime-metadata and the rest. pylint and pep8 (code style, which ruff covers for the whole
repository), pslint and shellcheck (no PowerShell or shell scripts) are left out."""

import os
import re
import subprocess
import sys

from helpers import REPO

SKIPPED = ("pylint", "pep8", "pslint", "shellcheck")


def test_ansible_test_sanity_passes(tmp_path):
    argv = [sys.executable, os.path.join(REPO, "tools", "ansible_test_sanity.py"), "--out", str(tmp_path)]
    for test in SKIPPED:
        argv += ["--skip-test", test]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    for test in ("validate-modules", "ansible-doc", "import", "compile", "yamllint", "runtime-metadata", "ignores", "shebang"):
        assert f'Running sanity test "{test}"' in output, test


def test_ansible_lint_production_profile_passes_on_the_built_collection(tmp_path):
    """The FQCN rewrite leaves nothing for ansible-lint's production profile (which the checkout
    also passes); the collection has no public repository address yet."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from build_collection import assemble

    root = assemble(str(tmp_path))
    env = dict(
        os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path), ANSIBLE_NOCOLOR="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    )
    done = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-lint"),
            "--nocolor",
            "--offline",
            "--profile",
            "production",
            "--warn-list",
            "galaxy[no-repository]",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert set(re.findall(r"^([a-z][a-z0-9-]*(?:\[[a-z0-9-]+\])?): ", output, re.M)) == {"galaxy[no-repository]"}, output[-4000:]
