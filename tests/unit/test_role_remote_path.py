"""Item 12 of issue 18: hosts sharing a bucket never share a remote series. The backup role writes
each host's remote as pgdrill_backup_remote plus the host's own folder (its inventory_hostname by
default); prune_remote.yml, run from the controller, finds the same path."""

import os

import pytest
import yaml

from helpers import REPO
from pgdrill.storage import parse_remote

ROLE = os.path.join(REPO, "roles", "pgdrill_backup")


def render_config(**variables):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    with open(os.path.join(ROLE, "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = {key: trust_as_template(value) if isinstance(value, str) else value for key, value in yaml.safe_load(handle).items()}
    values = dict(defaults, inventory_hostname="db1.example.net", ansible_managed="managed", pgdrill_backup_databases=[], **variables)
    with open(os.path.join(ROLE, "templates", "etc", "pgdrill", "pgdrill.conf.j2"), encoding="utf-8") as handle:
        text = Templar(loader=DataLoader(), variables=values).template(trust_as_template(handle.read()))
    return [line.split(" = ", 1)[1] for line in text.splitlines() if line.startswith("remote = ")]


@pytest.mark.parametrize(
    "remote, folder, expected",
    [
        ("s3://acme-backups/pgdrill", None, "s3://acme-backups/pgdrill/db1.example.net"),
        ("s3://acme-backups/pgdrill/", None, "s3://acme-backups/pgdrill/db1.example.net"),
        ("s3://acme-backups", None, "s3://acme-backups/db1.example.net"),
        ("rclone:offsite:", None, "rclone:offsite:db1.example.net"),
        ("rclone::local:/srv/offsite", None, "rclone::local:/srv/offsite/db1.example.net"),
        ("s3://acme-backups/pgdrill", "db-one", "s3://acme-backups/pgdrill/db-one"),
        ("s3://acme-backups/pgdrill/db1", "", "s3://acme-backups/pgdrill/db1"),
    ],
)
def test_the_roles_remote_includes_the_host_by_default(remote, folder, expected):
    extra = {} if folder is None else {"pgdrill_backup_remote_host_folder": folder}
    assert render_config(pgdrill_backup_remote=remote, **extra) == [expected]
    assert parse_remote(expected).text == expected  # a remote the engine takes as it is
    assert render_config(pgdrill_backup_remote="") == []


def render_prune_remote(**variables):
    """The remote prune_remote.yml's task hands pgdrill_prune, rendered with the task's own vars."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    with open(os.path.join(REPO, "playbooks", "prune_remote.yml"), encoding="utf-8") as handle:
        (play,) = yaml.safe_load(handle)
    task = next(task for task in play["tasks"] if "pgdrill_prune" in task)
    own = {key: trust_as_template(value) for key, value in task["vars"].items()}
    values = dict(own, inventory_hostname="db1.example.net", **variables)
    return Templar(loader=DataLoader(), variables=values).template(trust_as_template(task["pgdrill_prune"]["remote"]))


@pytest.mark.parametrize(
    "remote, folder",
    [
        ("s3://acme-backups/pgdrill", None),
        ("s3://acme-backups/pgdrill/", None),
        ("rclone:offsite:", None),
        ("s3://acme-backups/pgdrill", "db-one"),
        ("s3://a-b/x", ""),
    ],
)
def test_prune_remote_finds_the_same_path_as_the_role(remote, folder):
    extra = {} if folder is None else {"pgdrill_backup_remote_host_folder": folder}
    assert [render_prune_remote(pgdrill_backup_remote=remote, **extra)] == render_config(pgdrill_backup_remote=remote, **extra)
