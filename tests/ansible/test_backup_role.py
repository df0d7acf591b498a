"""The backup role on this machine (a local ansible-playbook run of provision_backups.yml, every path
under a temporary directory): what a new host that lacks the command's folder needs."""

import grp
import os
import pwd
import stat
import subprocess
import sys

from helpers import playbook_run


def _role_vars(tmp_path, pg, dbname, command):
    account = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    work = tmp_path / "host"
    return {
        "pgdrill_provision_client": False,
        "pgdrill_provision_become": False,
        "pgdrill_backup_manage_user": False,
        "pgdrill_backup_user": account,
        "pgdrill_backup_group": group,
        "pgdrill_backup_install_owner": account,
        "pgdrill_backup_install_group": group,
        "pgdrill_backup_scheduler": "none",
        "pgdrill_backup_install_dir": str(work / "opt"),
        "pgdrill_backup_config_dir": str(work / "etc"),
        "pgdrill_backup_command": str(command),
        "pgdrill_backup_python": sys.executable,
        "pgdrill_backup_dir": str(work / "backups"),
        "pgdrill_backup_host": pg.host,
        "pgdrill_backup_port": pg.port,
        "pgdrill_backup_login_user": "postgres",
        "pgdrill_backup_password": pg.password,
        "pgdrill_backup_databases": [{"name": dbname, "prefix": "shop"}],
    }


TASK = "Create the folder of the pgdrill-backup command"


def test_backup_role_creates_the_commands_folder_and_check_mode_predicts_it(tmp_path, pg, sample_db, monkeypatch):
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    command = tmp_path / "host" / "local" / "bin" / "pgdrill-backup"  # two folders that do not exist yet
    settings = _role_vars(tmp_path, pg, sample_db, command)

    # Check mode on a fresh host: it says it would create the folder, does not fail, creates nothing.
    predicted = playbook_run(tmp_path, "provision_backups.yml", settings, check=True)
    assert predicted.status == "successful", predicted.stdout[-4000:]
    assert predicted.task(TASK)["changed"]
    assert not (tmp_path / "host").exists()

    done = playbook_run(tmp_path, "provision_backups.yml", settings)
    assert done.status == "successful", done.stdout[-4000:]
    assert done.task(TASK)["changed"]
    for folder in (command.parent, command.parent.parent):
        info = os.stat(folder)
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o755, os.getuid(), os.getgid()), folder
    backed_up = subprocess.run([str(command), "--config", str(tmp_path / "host" / "etc" / "pgdrill.conf")], capture_output=True, text=True)
    assert backed_up.returncode == 0 and "backup set shop_" in backed_up.stdout, backed_up.stdout + backed_up.stderr

    # A folder that exists is the system's: the role leaves its owner and mode alone.
    os.chmod(command.parent, 0o711)
    again = playbook_run(tmp_path, "provision_backups.yml", settings)
    assert again.status == "successful", again.stdout[-4000:]
    assert not again.task(TASK)["changed"]
    assert stat.S_IMODE(os.stat(command.parent).st_mode) == 0o711
