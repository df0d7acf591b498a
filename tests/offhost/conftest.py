"""Real off-host targets on loopback for the off-host tests: SeaweedFS's S3 gateway and an rclone
SFTP server, one each per test session, stopped at its end."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess

import pytest

from pgdrill_lab.s3server import S3Server
from pgdrill_lab.sftpserver import SftpServer

_buckets = itertools.count(1)


@pytest.fixture(scope="session")
def s3server():
    with S3Server(name="tests-s3") as server:
        yield server


@pytest.fixture
def aws_env(s3server, monkeypatch, tmp_path):
    """The standard AWS variables pointing at the test server, and nothing of this machine's own
    AWS configuration."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for key, value in s3server.env().items():
        monkeypatch.setenv(key, value)
    return s3server


@pytest.fixture
def bucket(aws_env):
    return aws_env.create_bucket(f"pgdrill-test-{next(_buckets)}")


@pytest.fixture
def locked_bucket(aws_env):
    return aws_env.create_bucket(f"pgdrill-locked-{next(_buckets)}", object_lock=True)


@pytest.fixture(scope="session")
def sftp():
    with SftpServer(name="tests-sftp") as server:
        yield server


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """Three age identities made by age-keygen: {name: (identity file, recipient)}."""
    assert shutil.which("age") and shutil.which("age-keygen"), "./run setup installs the age package"
    directory = tmp_path_factory.mktemp("age-keys")
    found = {}
    for name in ("drill", "escrow", "stranger"):
        path = str(directory / f"{name}.key")
        subprocess.run(["age-keygen", "-o", path], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", path], check=True, capture_output=True, text=True).stdout.strip()
        found[name] = (path, recipient)
    return found
