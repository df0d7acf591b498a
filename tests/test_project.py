"""The project's promises about itself: lint, module docs, and the README's main command."""

import os
import subprocess
import sys

import pytest

from helpers import REPO

BIN = os.path.dirname(sys.executable)
MODULES = [
    "pgdrill_dump",
    "pgdrill_prune",
    "pgdrill_verify",
    "pgdrill_restore",
    "pgdrill_info",
    "pgdrill_smoke",
    "pgdrill_evidence",
    "pgdrill_drill",
    "pgdrill_pitr_restore",
    "pgdrill_report",
    "pgdrill_pin",
    "pgdrill_push",
    "pgdrill_pull",
    "pgdrill_bundle",
]


def _env():
    return dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_NOCOLOR="1")


def test_ansible_lint_production_profile_passes():
    done = subprocess.run([os.path.join(BIN, "ansible-lint"), "--nocolor"], cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


@pytest.mark.parametrize("module", MODULES)
def test_module_documentation_renders_without_warnings(module):
    done = subprocess.run([os.path.join(BIN, "ansible-doc"), "-M", "library", module], cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    for section in ("OPTIONS", "ATTRIBUTES", "EXAMPLES", "RETURN VALUES"):
        assert section in done.stdout, section
    assert "check_mode" in done.stdout
    if module not in ("pgdrill_evidence", "pgdrill_report", "pgdrill_bundle"):  # the three that never connect to PostgreSQL
        assert "login_password" in done.stdout


def test_module_docs_match_their_argument_specs():
    """Every option a module accepts is documented with the same type and default, and vice versa."""
    import yaml

    from helpers import load

    fragments = load_fragments()
    for name in MODULES:
        module = load(name)
        own = yaml.safe_load(module.DOCUMENTATION)
        documented = {}
        for fragment in own.get("extends_documentation_fragment", []):
            documented.update(yaml.safe_load(fragments[fragment])["options"])
        documented.update(own.get("options") or {})
        spec = _spec_of(module)
        assert set(spec) == set(documented), (name, set(spec) ^ set(documented))
        for option, rules in spec.items():
            doc = documented[option]
            assert doc.get("type") == rules.get("type"), (name, option)
            assert doc.get("default") == rules.get("default"), (name, option)
            assert sorted(doc.get("aliases") or []) == sorted(rules.get("aliases") or []), (name, option)
            assert doc.get("choices") == rules.get("choices"), (name, option)


def load_fragments():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fragment", os.path.join(REPO, "plugins", "doc_fragments", "pgdrill.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {
        "pgdrill": module.ModuleDocFragment.DOCUMENTATION,
        "pgdrill.connection": module.ModuleDocFragment.CONNECTION,
        "pgdrill.remote": module.ModuleDocFragment.REMOTE,
    }


def _spec_of(module):
    """The argument_spec a module builds, captured by running main() until AnsibleModule starts."""
    from ansible.module_utils import basic

    captured = {}

    class Stop(Exception):
        pass

    original = basic.AnsibleModule.__init__

    def capture(self, argument_spec, **kwargs):
        captured.update(argument_spec)
        raise Stop

    basic.AnsibleModule.__init__ = capture
    try:
        module.main()
    except Stop:
        pass
    finally:
        basic.AnsibleModule.__init__ = original
    return captured


def test_readme_main_command_runs_the_demo():
    """./run demo does set-up, then this: a throwaway cluster, pgdrill provisioned on localhost, a
    backup and a restore drill through ansible-playbook, the evidence. .ci/run exercises the set-up."""
    done = subprocess.run([os.path.join(BIN, "pgdrill-lab"), "demo", "--scale", "2000"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "changed: [localhost] => (item=ez360pm)" in done.stdout  # run_backup.yml took a set
    assert '"outcome": "passed"' in done.stdout and "row counts against the manifest" in done.stdout
    assert "checks ok · PASSED" in done.stdout  # the drill log line
    page = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("report page: "))
    assert page.endswith("pgdrill-report.html") and "0 of 1 failing" in done.stdout  # the report playbook's summary
    work = page.split("/controller/")[0]
    assert f"removed the cluster and {work}" in done.stdout and not os.path.exists(work)  # nothing left behind without --keep
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    assert "./run demo" in readme and "./run test" in readme


def test_ruff_lint_and_format_pass():
    """The Python code is linted and formatted as pyproject.toml's [tool.ruff] says."""
    for argv in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([os.path.join(BIN, "ruff"), *argv], cwd=REPO, env=_env(), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_no_type_errors_in_the_engine():
    """The engine (module_utils/pgdrill) type-checks as pyproject.toml's [tool.mypy] says."""
    done = subprocess.run([os.path.join(BIN, "mypy")], cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_roles_claim_only_the_platforms_their_host_tests_run_on():
    """galaxy_info platforms name what tests/hosts proves (the images the Molecule scenarios start),
    nothing more; docs/installing.md names what is expected to work but untested."""
    import glob
    import re

    import yaml

    tested = set()
    for scenario in glob.glob(os.path.join(REPO, "molecule", "*", "molecule.yml")):
        for platform in yaml.safe_load(open(scenario))["platforms"]:
            tested.add(re.fullmatch(r"localhost/pgdrill-(?:db)?host:(\w+)", platform["image"]).group(1))
    assert tested == {"bookworm"}
    for meta in glob.glob(os.path.join(REPO, "roles", "*", "meta", "main.yml")):
        platforms = yaml.safe_load(open(meta))["galaxy_info"]["platforms"]
        assert platforms == [{"name": "Debian", "versions": sorted(tested)}], meta
    installing = open(os.path.join(REPO, "docs", "installing.md")).read()
    assert "Tested on Debian 12 (bookworm)" in installing and "expected to work but untested" in installing


def test_every_property_test_has_fixed_examples_and_a_fixed_seed():
    """A verdict never depends on chance: each Hypothesis test also runs fixed @example cases, and
    the profile tests/conftest.py loads draws the same examples on every run."""
    import ast

    from hypothesis import settings

    assert settings.default.derandomize and settings.default.database is None
    without = []
    for root, _, files in os.walk(os.path.join(REPO, "tests")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as handle:
                tree = ast.parse(handle.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                    called = [d.func for d in node.decorator_list if isinstance(d, ast.Call)]
                    names = {getattr(f, "id", getattr(f, "attr", "")) for f in called} | {getattr(d, "id", "") for d in node.decorator_list}
                    if "given" in names and not names & {"example", "fixed_examples"}:
                        without.append(f"{os.path.relpath(path, REPO)}::{node.name}")
    assert without == [], f"property tests without @example cases: {without}"


def test_every_mutant_still_finds_the_line_it_breaks():
    """./run mutants is not part of the suite (it takes a while), but a mutant whose original text
    no longer occurs exactly once would report STALE there: catch that here, on every run."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mutants", os.path.join(REPO, "tests", "mutants.py"))
    mutants = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutants)
    stale = []
    for mutant in mutants.MUTANTS:
        with open(os.path.join(REPO, mutant.path), encoding="utf-8") as handle:
            count = handle.read().count(mutant.original)
        if count != 1:
            stale.append(f"{mutant.name}: its text occurs {count} times in {mutant.path}")
    names = [mutant.name for mutant in mutants.MUTANTS]
    assert not stale, stale
    assert len(names) == len(set(names)), "two mutants share a name"


def _markdown_headings(path):
    """The #anchors of a Markdown page's headings, as GitHub makes them (repeated ones get -1, -2, ...)."""
    import re

    anchors, seen, fenced = set(), {}, False
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("```"):
                fenced = not fenced
            elif not fenced and re.match(r"#{1,6} ", line):
                slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
                seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _relative_links(path):
    """Each relative link target of a Markdown page, outside code blocks and code spans."""
    import re

    targets, fenced = [], False
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                continue
            for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
                if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                    targets.append(target)
    return targets


def test_every_relative_link_in_the_readme_and_docs_resolves():
    """Every relative Markdown link in README.md and docs/*.md points at a file that exists, and its
    #anchor at a heading of that page; every page of docs/ is reachable from the README."""
    import glob

    pages = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
    broken, linked = [], set()
    for page in pages:
        for target in _relative_links(page):
            name, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(page), name)) if name else page
            where = f"{os.path.relpath(page, REPO)}: {target}"
            linked.add(resolved)
            if not os.path.exists(resolved):
                broken.append(f"{where} (no such file)")
            elif anchor and (not resolved.endswith(".md") or anchor not in _markdown_headings(resolved)):
                broken.append(f"{where} (no such heading)")
    assert broken == [], broken
    unlinked = [os.path.relpath(page, REPO) for page in pages[1:] if page not in linked]
    assert unlinked == [], f"docs pages nothing links to: {unlinked}"
