"""What the packaging tests share: fresh virtual environments outside the checkout, and the
pgdrill wheel and collection tarball built from it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from helpers import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))


def check(argv, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure, show what it said."""
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def clean_env(**extra: str) -> dict:
    """The environment without this checkout's Python, Ansible and libpq settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "PG", "PGDRILL_", "EZ360_", "VIRTUAL_ENV", "PYTHON", "DJANGO_"))}
    env.update(extra)
    return env


def fresh_venv(path, *requirements: str) -> str:
    """A new virtual environment at ``path`` (system Python, not this one's packages) with
    ``requirements`` installed from the package index; returns its bin directory."""
    check(["python3", "-m", "venv", str(path)], env=clean_env())
    bindir = os.path.join(str(path), "bin")
    if requirements:
        check([os.path.join(bindir, "pip"), "install", "-q", "--disable-pip-version-check", *requirements], env=clean_env(), cwd=str(path))
    return bindir


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> str:
    """The pgdrill wheel, built from the checkout as `./run wheel` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    check([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", "--wheel-dir", str(out), REPO], env=clean_env())
    wheels = [name for name in os.listdir(out) if name.endswith(".whl")]
    assert len(wheels) == 1, wheels
    return str(out / wheels[0])


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory) -> str:
    """The collection's tarball, assembled and built as `./run collection` does."""
    from build_collection import assemble, build_tarball

    out = tmp_path_factory.mktemp("collection-build")
    return build_tarball(assemble(str(out / "src")), str(out / "dist"))


def wheel_names(path: str):
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()
