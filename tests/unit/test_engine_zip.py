"""The engine as the backup role installs it: one zip, packed on the controller, imported from."""

import os
import subprocess
import sys
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACK = os.path.join(REPO, "roles", "pgdrill_backup", "files", "engine_zip.py")
ENGINE = os.path.join(REPO, "module_utils", "pgdrill")


def pack(source, output):
    return subprocess.run([sys.executable, PACK, source, str(output)], capture_output=True, text=True)


def test_same_sources_give_the_same_bytes_and_a_working_command(tmp_path):
    assert pack(ENGINE, tmp_path / "a.zip").returncode == 0
    os.utime(os.path.join(ENGINE, "cli.py"))  # a fresh checkout has other mtimes: the zip must not care
    assert pack(ENGINE, tmp_path / "b.zip").returncode == 0
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    # What /usr/local/bin/pgdrill-backup does: the zip first on sys.path, then the CLI, isolated from this checkout (-I).
    code = f"import sys; sys.path.insert(0, {str(tmp_path / 'a.zip')!r}); import pgdrill.cli; print(pgdrill.cli.__file__)"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "a.zip" / "pgdrill" / "cli.py")
    assert not list(tmp_path.glob("*.partial"))
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:  # sub-packages travel, the Django app does not
        names = archive.namelist()
    assert "pgdrill/storage/s3.py" in names and not any("/contrib/" in name for name in names)


def test_a_directory_without_the_engine_is_refused(tmp_path):
    done = pack(str(tmp_path), tmp_path / "x.zip")
    assert done.returncode == 2 and "set pgdrill_backup_engine_src" in done.stderr and not (tmp_path / "x.zip").exists()


def test_the_role_packs_its_own_files_which_are_the_modules_engine():
    """The role reads nothing outside itself: its files/pgdrill is, in the checkout, the modules'
    module_utils/pgdrill (the collection build copies the same files there)."""
    role_copy = os.path.join(REPO, "roles", "pgdrill_backup", "files", "pgdrill")
    assert os.path.islink(role_copy) and os.path.realpath(role_copy) == os.path.realpath(ENGINE)
    with open(os.path.join(REPO, "roles", "pgdrill_backup", "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = handle.read()
    assert 'pgdrill_backup_engine_src: "{{ role_path }}/files/pgdrill"' in defaults and "../" not in defaults
