"""The execution environment definition: ansible-builder lays out a complete build context from it
(the image itself needs the base image's registry, which this machine cannot reach)."""

import os
import shutil
import sys

import yaml

from conftest import check, clean_env
from helpers import REPO

FILES = ("execution-environment.yml", "requirements.yml", "requirements.txt", "bindep.txt")


def test_ansible_builder_creates_the_build_context_with_the_collection(tmp_path, collection_tarball):
    # The checkout's layout: execution-environment/ beside dist/, where ./run collection puts the tarball.
    (tmp_path / "execution-environment").mkdir()
    for name in FILES:
        shutil.copy(os.path.join(REPO, "execution-environment", name), tmp_path / "execution-environment" / name)
    (tmp_path / "dist").mkdir()
    shutil.copy(collection_tarball, tmp_path / "dist")
    builder = os.path.join(os.path.dirname(sys.executable), "ansible-builder")
    check([builder, "create", "--file", "execution-environment.yml", "--context", "context"], cwd=str(tmp_path / "execution-environment"), env=clean_env())
    context = tmp_path / "execution-environment" / "context"
    containerfile = (context / "Containerfile").read_text()
    build = context / "_build"
    assert (build / "pgdrill" / os.path.basename(collection_tarball)).is_file()
    assert "COPY _build/pgdrill/ /build/pgdrill/" in containerfile
    assert "ansible-galaxy collection install" in containerfile and "bindep" in containerfile
    # requirements.yml names the tarball of this version, where the galaxy stage puts it.
    collections = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert collections == [{"name": f"/build/pgdrill/{os.path.basename(collection_tarball)}", "type": "file"}]
    assert "psycopg" in (build / "requirements.txt").read_text()
    bindep = (build / "bindep.txt").read_text()
    for package in ("postgresql", "zstd", "age"):
        assert f"\n{package}" in "\n" + bindep, package
    # What the galaxy stage runs, with the tarball where the image would have it.
    requirements = (build / "requirements.yml").read_text().replace("/build/pgdrill/", f"{build}/pgdrill/")
    (tmp_path / "local-requirements.yml").write_text(requirements)
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    check(
        [galaxy, "collection", "install", "-r", "local-requirements.yml", "--collections-path", str(tmp_path / "ee-collections"), "--offline"],
        cwd=str(tmp_path),
        env=clean_env(),
    )
    assert (tmp_path / "ee-collections" / "ansible_collections" / "pgdrill" / "pgdrill" / "meta" / "execution-environment.yml").is_file()
