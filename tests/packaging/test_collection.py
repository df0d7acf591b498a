"""The Ansible collection pgdrill.pgdrill as a user gets it: the tarball `./run collection` builds,
installed with ansible-galaxy into an empty collections path of a fresh virtual environment, used
from a directory outside the checkout by FQCN only: ansible-doc for every module and role, and a
playbook that provisions backups on localhost against a real cluster, backs up and runs a restore
drill; the collection's own playbooks; and the backup role's engine from the package index."""

import filecmp
import glob
import json
import os
import re
import textwrap

import pytest
from ansible.release import __version__ as ANSIBLE_CORE

from conftest import check, clean_env, fresh_venv
from helpers import REPO

MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "library")) if name.endswith(".py"))
ROLES = sorted(name for name in os.listdir(os.path.join(REPO, "roles")) if os.path.isdir(os.path.join(REPO, "roles", name, "tasks")))
FQ = "pgdrill.pgdrill"


@pytest.fixture(scope="module")
def user(tmp_path_factory, collection_tarball):
    """A user's controller: a fresh venv with ansible-core, the collection in an empty collections
    path, and a project directory outside the checkout."""
    base = tmp_path_factory.mktemp("collection-user")
    bindir = fresh_venv(base / "venv", f"ansible-core=={ANSIBLE_CORE}", "psycopg[binary]>=3.1,<4")
    collections = base / "collections"
    collections.mkdir()
    project = base / "project"
    project.mkdir()
    env = clean_env(
        PATH=bindir + os.pathsep + os.environ["PATH"],
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_NOCOLOR="1",
        XDG_STATE_HOME=str(base / "state"),
        ANSIBLE_LOCAL_TEMP=str(base / "tmp"),
        ANSIBLE_HOME=str(base / "ansible-home"),
    )
    check([os.path.join(bindir, "ansible-galaxy"), "collection", "install", collection_tarball, "-p", str(collections)], env=env, cwd=str(project))

    class User:
        pass

    who = User()
    who.bin, who.env, who.project, who.base = bindir, env, project, base
    who.root = collections / "ansible_collections" / "pgdrill" / "pgdrill"
    return who


def test_installed_collection_has_everything_and_one_engine(user):
    assert not str(user.project).startswith(REPO)
    for module in MODULES:
        assert (user.root / "plugins" / "modules" / f"{module}.py").is_file()
    for role in ROLES:
        assert (user.root / "roles" / role / "tasks" / "main.yml").is_file()
    for path in ("meta/runtime.yml", "galaxy.yml", "LICENSE", "CHANGELOG.md", "README.md", "plugins/doc_fragments/pgdrill.py", "playbooks/run_backup.yml"):
        assert (user.root / path).exists() or path == "galaxy.yml" and (user.root / "MANIFEST.json").exists(), path
    # The engine the backup role installs on hosts is, file for file, what the modules import, and the checkout's.
    here = os.path.join(REPO, "module_utils", "pgdrill")
    engine = sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, "**", "*.py"), recursive=True) if "contrib" not in os.path.relpath(p, here))
    assert "storage/s3.py" in engine  # sub-packages (the storage backends) travel too
    for name in engine:
        assert filecmp.cmp(
            user.root / "plugins" / "module_utils" / "pgdrill" / name, user.root / "roles" / "pgdrill_backup" / "files" / "pgdrill" / name, shallow=False
        )
        assert filecmp.cmp(user.root / "plugins" / "module_utils" / "pgdrill" / name, os.path.join(REPO, "module_utils", "pgdrill", name), shallow=False)
    assert not (user.root / "plugins" / "module_utils" / "pgdrill" / "contrib").exists()
    text = "".join(p.read_text() for p in user.root.rglob("*.yml")) + "".join(p.read_text() for p in (user.root / "plugins" / "modules").glob("*.py"))
    assert (
        "ansible.module_utils.pgdrill" not in text and "playbook_dir" not in (user.root / "roles").joinpath("pgdrill_drill", "defaults", "main.yml").read_text()
    )
    manifest = json.loads((user.root / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("pgdrill", "pgdrill") and manifest["license"] == ["MIT"]


def test_ansible_doc_renders_every_module_and_role_by_fqcn(user):
    listed = check([os.path.join(user.bin, "ansible-doc"), "-l", FQ], env=user.env, cwd=str(user.project)).stdout
    assert sorted(line.split()[0] for line in listed.splitlines() if line.strip()) == [f"{FQ}.{m}" for m in MODULES]
    for module in MODULES:
        done = check([os.path.join(user.bin, "ansible-doc"), f"{FQ}.{module}"], env=user.env, cwd=str(user.project))
        assert done.stderr.strip() == "", (module, done.stderr)
        for section in ("OPTIONS", "ATTRIBUTES", "EXAMPLES", "RETURN VALUES", "SEE ALSO"):
            assert section in done.stdout, (module, section)
        assert f"{FQ}.{module}:" in done.stdout or f"{FQ}.{module}" in done.stdout
    for role in ROLES:
        done = check([os.path.join(user.bin, "ansible-doc"), "-t", "role", f"{FQ}.{role}"], env=user.env, cwd=str(user.project))
        assert re.search(r"ENTRY POINT: \*?main\*?", done.stdout), (role, done.stdout[:600])


def _vars(user, pg, dbname, work):
    account = "root" if os.geteuid() == 0 else os.environ.get("USER", "")
    import grp
    import pwd

    group = grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name
    return {
        "pgdrill_backup_manage_user": False,
        "pgdrill_backup_user": account,
        "pgdrill_backup_group": group,
        "pgdrill_backup_install_owner": account,
        "pgdrill_backup_install_group": group,
        "pgdrill_backup_scheduler": "none",
        "pgdrill_backup_install_dir": f"{work}/opt",
        "pgdrill_backup_config_dir": f"{work}/etc",
        "pgdrill_backup_command": f"{work}/bin/pgdrill-backup",
        "pgdrill_backup_python": os.path.join(user.bin, "python"),
        "pgdrill_backup_dir": f"{work}/backups",
        "pgdrill_backup_host": pg.host,
        "pgdrill_backup_port": pg.port,
        "pgdrill_backup_login_user": "postgres",
        "pgdrill_backup_password": pg.password,
        "pgdrill_backup_databases": [{"name": dbname, "prefix": "shop"}],
        "pgdrill_config_path": f"{work}/etc/pgdrill.conf",
        "pgdrill_drill_source_host": "localhost",
        "pgdrill_drill_database": dbname,
        "pgdrill_drill_source_config": f"{work}/etc/pgdrill.conf",
        "pgdrill_drill_work_dir": f"{work}/staging",
        "pgdrill_drill_host": pg.host,
        "pgdrill_drill_port": pg.port,
        "pgdrill_drill_login_user": "postgres",
        "pgdrill_drill_passfile": f"{work}/etc/pgpass",
        "pgdrill_drill_checks": [{"name": "rows", "sql": "SELECT 1 FROM invoices LIMIT 1", "expect": "rows"}],
    }


SITE = textwrap.dedent("""\
    ---
    - name: Provision pgdrill backups on this machine
      hosts: databases
      roles:
        - role: pgdrill.pgdrill.pgdrill_backup

    - name: Back up now and prove the backup restores
      hosts: databases
      gather_facts: false
      tasks:
        - name: Take a backup set
          pgdrill.pgdrill.pgdrill_dump:
            config: "{{ pgdrill_config_path }}"
            database: "{{ pgdrill_drill_database }}"
          register: backup

        - name: Read the sets
          pgdrill.pgdrill.pgdrill_info:
            config: "{{ pgdrill_config_path }}"
            database: "{{ pgdrill_drill_database }}"
          register: sets

        - name: Check what the modules said
          ansible.builtin.assert:
            that:
              - backup is changed
              - sets.sets | length == 1

        - name: Run a restore drill into a scratch database
          ansible.builtin.include_role:
            name: pgdrill.pgdrill.pgdrill_drill
    """)


def _playbook(user, *args):
    return check([os.path.join(user.bin, "ansible-playbook"), "-i", "inventory.ini", *args], env=user.env, cwd=str(user.project))


def _inventory(user):
    (user.project / "inventory.ini").write_text(
        f"[databases]\nlocalhost ansible_connection=local ansible_python_interpreter={os.path.join(user.bin, 'python')}\n"
    )


def test_a_playbook_outside_the_checkout_provisions_backs_up_and_drills(user, pg, sample_db, tmp_path):
    work = tmp_path / "host"
    (work / "bin").mkdir(parents=True)
    _inventory(user)
    (user.project / "site.yml").write_text(SITE)
    (user.project / "vars.json").write_text(json.dumps(_vars(user, pg, sample_db, work)))
    done = _playbook(user, "site.yml", "-e", "@vars.json")
    assert "failed=0" in done.stdout, done.stdout[-3000:]
    assert pg.password not in done.stdout + done.stderr
    # The drill's evidence went to the role's default controller directory: the user's state directory.
    evidence = glob.glob(str(user.base / "state" / "pgdrill" / "drills" / "evidence" / "*" / "*.json"))
    assert evidence, done.stdout[-3000:]
    assert json.loads(open(evidence[-1], encoding="utf-8").read())["outcome"] == "passed"
    assert "PASSED" in (user.base / "state" / "pgdrill" / "drills" / "drill-log.md").read_text()
    # The host command the role installed runs the engine from the role's zip.
    listing = check([str(work / "bin" / "pgdrill-backup"), "--config", str(work / "etc" / "pgdrill.conf"), "list"], env=clean_env(), cwd=str(tmp_path))
    assert "complete" in listing.stdout
    # The collection's own playbooks, by FQCN.
    again = _playbook(user, f"{FQ}.run_backup", "-e", "@vars.json", "-e", "pgdrill_hosts=databases")
    assert "changed=1" in again.stdout, again.stdout[-3000:]


def test_backup_role_can_install_the_engine_wheel_from_the_package_index(user, pg, sample_db, tmp_path, wheel):
    """pgdrill_backup_engine_from: index, with a local index directory standing in for the package index."""
    work = tmp_path / "host"
    (work / "bin").mkdir(parents=True)
    _inventory(user)
    settings = dict(
        _vars(user, pg, sample_db, work),
        pgdrill_backup_engine_from="index",
        pgdrill_backup_engine_pip_args=["--no-index", "--find-links", os.path.dirname(wheel)],
    )
    (user.project / "index-vars.json").write_text(json.dumps(settings))
    (user.project / "provision.yml").write_text("---\n- name: Provision\n  hosts: databases\n  roles:\n    - role: pgdrill.pgdrill.pgdrill_backup\n")
    _playbook(user, "provision.yml", "-e", "@index-vars.json")
    with open(wheel, "rb") as handle:
        assert (work / "opt" / "lib" / "pgdrill.zip").read_bytes() == handle.read()
    done = check([str(work / "bin" / "pgdrill-backup"), "--config", str(work / "etc" / "pgdrill.conf")], env=clean_env(), cwd=str(tmp_path))
    assert "backup set shop_" in done.stdout
