"""`pip install pgdrill` gives the engine and `pgdrill-backup`, nothing of the lab: the wheel is
built from the checkout, installed into a fresh virtual environment outside it, and backs up a real
cluster from there."""

import json
import os
import re
import subprocess
import zipfile

import pytest

from conftest import check, clean_env, fresh_venv, wheel_names
from helpers import REPO, write_config


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel):
    return fresh_venv(tmp_path_factory.mktemp("wheel-venv") / "venv", wheel)


def test_the_wheel_holds_the_engine_and_one_command_only(wheel):
    names = wheel_names(wheel)
    packages = {name.split("/")[0] for name in names}
    version = os.path.basename(wheel).split("-")[1]
    assert packages == {"pgdrill", f"pgdrill-{version}.dist-info"}, packages
    assert not any("pgdrill_lab" in name or name.endswith((".sql", ".yml", ".yaml")) for name in names), names
    engine = sorted(name for name in names if re.fullmatch(r"pgdrill/(?:offsite/|storage/)?[a-z_0-9]+\.py", name))
    here = os.path.join(REPO, "module_utils", "pgdrill")
    checkout = [
        os.path.relpath(os.path.join(d, n), here)
        for d, _, files in os.walk(here)
        for n in files
        if n.endswith(".py") and "contrib" not in d and "__pycache__" not in d
    ]
    assert engine == sorted(f"pgdrill/{name}" for name in checkout)
    assert "pgdrill/contrib/django/management/commands/ez360_backup.py" in names
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(next(name for name in names if name.endswith("entry_points.txt"))).decode()
        metadata = archive.read(next(name for name in names if name.endswith("/METADATA"))).decode()
        for name in names:
            if name.startswith("pgdrill/") and name.endswith(".py") and "/contrib/" not in name:
                # One implementation: byte for byte the files the Ansible modules import.
                with open(os.path.join(REPO, "module_utils", name), "rb") as handle:
                    assert archive.read(name) == handle.read(), name
    assert re.findall(r"^(\S+) = ", entry_points, re.M) == ["pgdrill-backup"], entry_points
    assert "Provides-Extra: django" in metadata and "Provides-Extra: lab" not in metadata
    assert "Requires-Dist: yaml" not in metadata.lower()


def test_installed_outside_the_checkout_it_backs_up_a_real_cluster(venv, tmp_path, pg, sample_db):
    where = check(
        [os.path.join(venv, "python"), "-c", "import pgdrill, importlib.util; print(pgdrill.__file__); print(importlib.util.find_spec('pgdrill_lab'))"],
        env=clean_env(),
        cwd=str(tmp_path),
    ).stdout.split("\n")
    assert where[0].startswith(os.path.dirname(venv)) and not where[0].startswith(REPO) and where[1] == "None", where
    version = check([os.path.join(venv, "pgdrill-backup"), "--version"], env=clean_env(), cwd=str(tmp_path)).stdout
    assert re.fullmatch(r"pgdrill \d+\.\d+\.\d+\S*\n", version), version
    config = write_config(tmp_path / "pgdrill.conf", pg, sample_db, tmp_path / "backups", compression="gzip")
    command = [os.path.join(venv, "pgdrill-backup"), "--config", config]
    backup = check(command + ["--json"], env=clean_env(), cwd=str(tmp_path))
    result = json.loads(backup.stdout)
    assert result["ok"] and result["results"][0]["manifest"]["database"]["name"] == sample_db
    verify = check(command + ["verify", "--restore", "--json"], env=clean_env(), cwd=str(tmp_path))
    assert json.loads(verify.stdout)["ok"]
    listing = subprocess.run(command + ["list"], env=clean_env(), cwd=str(tmp_path), capture_output=True, text=True)
    assert listing.returncode == 0 and "complete" in listing.stdout
