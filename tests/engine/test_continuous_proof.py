"""Metrics and heartbeats from real runs: Debian's prometheus-node-exporter scrapes the metrics the
runs write (textfile collector on loopback), and a loopback HTTP recorder receives the pings."""

import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from pgdrill_lab.processes import free_ports

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


@pytest.fixture
def node_exporter(tmp_path):
    assert os.path.exists(NODE_EXPORTER), "./run installs Debian's prometheus-node-exporter"
    directory = tmp_path / "textfiles"
    directory.mkdir()
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [
            NODE_EXPORTER,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={directory}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.time() + 20
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            assert time.time() < deadline and proc.poll() is None, "node_exporter did not start"
            time.sleep(0.1)

    def scrape():
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}

    yield directory, scrape
    proc.terminate()
    proc.wait(10)


def test_runs_write_metrics_node_exporter_serves_and_pings_report_the_outcome(backup_env, node_exporter, ping_recorder):
    directory, scrape = node_exporter
    base, pings = ping_recorder
    ping_url = base + "/ping/0a1b2c-check-key"
    series = backup_env.dbname
    backup_env.rewrite(metrics_dir=str(directory), ping_url=ping_url)
    done = backup_env.run()
    assert "0a1b2c-check-key" not in done.stdout + done.stderr
    metrics = scrape()
    assert metrics["node_textfile_scrape_error"] == 0
    label = f'{{series="{series}"}}'
    success = metrics[f"pgdrill_backup_last_success_timestamp_seconds{label}"]
    assert abs(success - time.time()) < 120 and metrics[f"pgdrill_backup_last_exit_code{label}"] == 0
    assert metrics[f"pgdrill_backup_last_duration_seconds{label}"] > 0
    assert metrics[f'pgdrill_backup_last_size_bytes{{kind="db",series="{series}"}}'] > 0
    assert metrics[f'pgdrill_sets{{series="{series}",state="complete"}}'] == 1
    assert [path for path, _ in pings] == ["/ping/0a1b2c-check-key/start", "/ping/0a1b2c-check-key"]
    assert pings[1][1]["set"].startswith(series + "_")

    # A failing run: the exit code turns non-zero, the last success stays where it was, the ping says fail.
    backup_env.rewrite(metrics_dir=str(directory), ping_url=ping_url, host="/nonexistent")
    failed = backup_env.run(check=1)
    assert "0a1b2c-check-key" not in failed.stdout + failed.stderr
    metrics = scrape()
    assert metrics[f"pgdrill_backup_last_exit_code{label}"] == 1
    assert metrics[f"pgdrill_backup_last_success_timestamp_seconds{label}"] == success
    assert pings[-1][0] == "/ping/0a1b2c-check-key/fail" and "cannot reach the PostgreSQL server" in pings[-1][1]["error"]

    # A verify by restore shows up as its own freshness, by level.
    backup_env.rewrite(metrics_dir=str(directory), ping_exit_codes="yes", ping_url=ping_url)
    backup_env.run("verify", "--restore")
    metrics = scrape()
    assert abs(metrics[f'pgdrill_verify_last_success_timestamp_seconds{{level="restore",series="{series}"}}'] - time.time()) < 120
    assert metrics["node_textfile_scrape_error"] == 0
    assert oct(os.stat(directory / f"pgdrill_{series}.prom").st_mode & 0o777) == "0o644"


def test_a_bad_ping_url_is_refused_at_load_without_repeating_it(backup_env):
    backup_env.rewrite(ping_url="htps://hc-ping.example/0a1b2c-check-key")
    done = backup_env.run(check=2)
    assert "ping_url" in done.stderr and "0a1b2c-check-key" not in done.stderr and "http:// or https://" in done.stderr


def test_an_unwritable_metrics_dir_is_logged_and_never_fails_the_backup(backup_env, tmp_path):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file")
    backup_env.rewrite(metrics_dir=str(blocked))
    done = backup_env.run()
    assert "cannot write metrics" in done.stderr and len(backup_env.manifests()) == 1
    shutil.rmtree(tmp_path / "backups")
