"""One source for each setting: the engine's settings tables. The settings page is generated from
them, and the example config, the backup role's config template and the role's defaults must agree
with them (a key the role leaves alone is on tools/settings_doc.py's explicit list, with why)."""

import importlib.util
import os
import re

import yaml

from pgdrill.config import CONNECTION_SETTINGS, SETTINGS, build_database_config
from pgdrill.drill_config import DRILL_SETTINGS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "docs", "pgdrill.conf.example")
TEMPLATE = os.path.join(ROOT, "roles", "pgdrill_backup", "templates", "etc", "pgdrill", "pgdrill.conf.j2")
ROLE_DEFAULTS = os.path.join(ROOT, "roles", "pgdrill_backup", "defaults", "main.yml")


def _tool():
    spec = importlib.util.spec_from_file_location("settings_doc", os.path.join(ROOT, "tools", "settings_doc.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_the_settings_page_is_what_the_tables_say():
    assert _read(os.path.join(ROOT, "docs", "settings.md")) == _tool().render(), "docs/settings.md is stale: run tools/settings_doc.py"


def test_every_key_is_in_the_example_config():
    example = _read(EXAMPLE)
    missing = [key for key in [*SETTINGS, *CONNECTION_SETTINGS, *DRILL_SETTINGS] if not re.search(rf"^#? ?{key} =( |$)", example, re.M)]
    assert missing == [], f"keys missing from docs/pgdrill.conf.example: {missing}"


def test_every_key_is_written_by_the_backup_role_or_listed_as_not_managed():
    tool = _tool()
    template = _read(TEMPLATE)

    def written(key):
        if key in tool.ROLE_DICT_KEYS:
            return "remote_{{ key }}" in template
        if key in tool.ROLE_PER_DATABASE:
            return re.search(rf"'{key}'|database\.{key}\b", template) is not None
        return re.search(rf"^{key} = ", template, re.M) is not None

    keys = [*SETTINGS, *CONNECTION_SETTINGS]
    assert [key for key in keys if key not in tool.NOT_MANAGED_BY_ROLE and not written(key)] == []
    # The list stays honest: a key the role starts to write leaves it.
    assert [key for key in tool.NOT_MANAGED_BY_ROLE if key not in keys or written(key)] == []


def test_the_backup_roles_defaults_are_the_engines_unless_listed_as_different():
    tool = _tool()
    role = yaml.safe_load(_read(ROLE_DEFAULTS))
    engine = build_database_config("shop", {}, "/srv", "defaults", {})
    compared = []
    for key in [*SETTINGS, *CONNECTION_SETTINGS]:
        variable = tool.ROLE_VARIABLES.get(key, tool.ROLE_PREFIX + key)
        if key in tool.ROLE_DIFFERS or variable not in role:
            continue
        value = role[variable]
        if value in ("", [], {}, None):
            continue  # the template writes nothing: the engine's default applies
        ours = build_database_config("shop", {key: value}, "/srv", "role defaults", {})
        mine = getattr(ours.connection, key) if key in CONNECTION_SETTINGS else getattr(ours, key)
        theirs = getattr(engine.connection, key) if key in CONNECTION_SETTINGS else getattr(engine, key)
        assert mine == theirs, f"{variable}: {value!r} in the role, {theirs!r} in the engine (or list it in ROLE_DIFFERS, with why)"
        compared.append(key)
    assert {"retention_days", "keep_last", "compression", "lock_wait_timeout", "remote_object_lock_mode"} <= set(compared)
    assert engine.prune_after_backup is True and re.search("^prune_after_backup = yes$", _read(TEMPLATE), re.M)
    assert [key for key in tool.ROLE_DIFFERS if tool.ROLE_VARIABLES.get(key, tool.ROLE_PREFIX + key) not in role] == []


def test_every_role_variable_the_config_template_reads_is_declared_documented_and_defaulted():
    """A config key the role writes is a role variable in three more places: the argument specs
    (which validate it), the defaults and the role's README (by full name, or as ``_suffix`` in a
    row of sibling variables). Forgetting one fails here, not on a user's host."""
    role = os.path.join(ROOT, "roles", "pgdrill_backup")
    used = sorted(set(re.findall(r"\bpgdrill_backup_[a-z0-9_]+", _read(TEMPLATE))))
    specs = yaml.safe_load(_read(os.path.join(role, "meta", "argument_specs.yml")))["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load(_read(ROLE_DEFAULTS))
    readme = _read(os.path.join(role, "README.md"))
    assert len(used) > 20
    assert [name for name in used if name not in specs] == [], "declare these in roles/pgdrill_backup/meta/argument_specs.yml"
    assert [name for name in used if name not in defaults] == [], "give these a default in roles/pgdrill_backup/defaults/main.yml"
    undocumented = [name for name in used if name not in readme and f"`_{name[len('pgdrill_backup_') :]}`" not in readme]
    assert undocumented == [], "document these in roles/pgdrill_backup/README.md"
