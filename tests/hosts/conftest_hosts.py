"""Helpers for the tests on real hosts (podman containers running systemd, driven by Molecule)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)


def host_env() -> dict:
    return dict(
        os.environ,
        CONTAINERS_CONF=os.path.join(HERE, "containers.conf"),
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        NO_COLOR="1",
    )


def build_images() -> None:
    subprocess.run(["bash", os.path.join(HERE, "build-image.sh")], env=host_env(), check=True, capture_output=True)


def molecule(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run([os.path.join(BIN, "molecule"), *args], cwd=REPO, env=host_env(), capture_output=True, text=True)
    done.seconds = time.monotonic() - started  # type: ignore[attr-defined]
    if check and done.returncode != 0:
        raise AssertionError(f"molecule {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}")
    return done


def inventory_of(scenario: str) -> str:
    """The inventory Molecule wrote for a created scenario (newest, should several exist)."""
    found = glob.glob(os.path.expanduser(f"~/.ansible/tmp/molecule.*.{scenario}/inventory"))
    assert found, f"no inventory for scenario {scenario}: was it created?"
    return max(found, key=os.path.getmtime)
