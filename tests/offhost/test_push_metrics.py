"""A failed push never records a remote success (issue 18): the metrics' remote last-success time
comes only from pushes that succeeded, through a real backup run and a real pgdrill-backup push
against the real S3 server (refused credentials, or an endpoint where nothing answers)."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from test_disaster_recovery import remote_settings

METRIC = "pgdrill_remote_last_success_timestamp_seconds"


def remote_success(metrics_dir):
    """The values of the remote last-success samples in the series' metrics file, by target."""
    (name,) = [name for name in os.listdir(metrics_dir) if name.endswith(".prom")]
    with open(os.path.join(metrics_dir, name), encoding="utf-8") as handle:
        return {match[1]: float(match[2]) for match in re.finditer(METRIC + r'\{.*target="([^"]*)".*\} (\S+)', handle.read())}


def state_success(metrics_dir):
    (name,) = [name for name in os.listdir(metrics_dir) if name.endswith(".state.json")]
    with open(os.path.join(metrics_dir, name), encoding="utf-8") as handle:
        return {target: entry.get("last_success") for target, entry in json.load(handle).get("remote", {}).items()}


@pytest.mark.parametrize("failure", ["refused credentials", "nothing answers"])
def test_a_failed_push_never_records_a_remote_success(backup_env, aws_env, bucket, tmp_path, monkeypatch, failure):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    good = remote_settings(aws_env, bucket)
    broken = dict(good, remote_endpoint_url="http://127.0.0.1:1") if failure == "nothing answers" else good

    def fail_pushes():
        backup_env.rewrite(metrics_dir=metrics_dir, **broken)
        if failure == "refused credentials":
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + aws_env.secret_key[:4])

    def fix_pushes():
        backup_env.rewrite(metrics_dir=metrics_dir, **good)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_env.secret_key)

    # A first backup whose push fails: the run fails, and no remote success is recorded at all.
    fail_pushes()
    backup_env.run(check=1)
    assert remote_success(metrics_dir) == {}
    # One that pushes: the success is recorded.
    fix_pushes()
    backup_env.run()
    (first,) = remote_success(metrics_dir).values()
    assert time.time() - 60 < first <= time.time()
    # Failed pushes later, by a backup run and by pgdrill-backup push: the time stays.
    time.sleep(1.1)
    fail_pushes()
    backup_env.run(check=1)
    assert remote_success(metrics_dir) == {good["remote"]: first}
    backup_env.run("push", check=1)
    assert remote_success(metrics_dir) == {good["remote"]: first}
    assert state_success(metrics_dir) == {good["remote"]: first}
    # And a push that works again advances it.
    fix_pushes()
    backup_env.run("push")
    assert remote_success(metrics_dir)[good["remote"]] > first
