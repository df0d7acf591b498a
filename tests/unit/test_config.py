import os

import pytest

from pgdrill.backup_plan import dump_format
from pgdrill.config import load_configs
from pgdrill.errors import PgdrillError


def write(tmp_path, text):
    path = tmp_path / "pgdrill.conf"
    path.write_text(text)
    return str(path)


def test_seed_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (config,) = load_configs(environ={"PGDATABASE": "ez360pm"})
    assert config.backup_dir == str(tmp_path / "backups")  # <base>/backups
    assert (config.retention_days, config.keep_last) == (14, 14)
    assert config.prefix == "ez360pm" and config.compression == "zstd"


def test_seed_env_names_are_aliases_and_pgdrill_names_win(tmp_path):
    from pgdrill.compat import load_seed_configs as load_configs  # the seed's names: pgdrill-backup's loader

    env = {"EZ360_BACKUP_DIR": "/srv/b", "EZ360_BACKUP_RETENTION_DAYS": "30", "EZ360_BACKUP_KEEP_LAST": "5", "PGDATABASE": "d"}
    (config,) = load_configs(environ=env)
    assert (config.backup_dir, config.retention_days, config.keep_last) == ("/srv/b", 30, 5)
    (config,) = load_configs(environ={**env, "PGDRILL_KEEP_LAST": "7", "PGDRILL_BACKUP_DIR": "/srv/p"})
    assert (config.backup_dir, config.keep_last) == ("/srv/p", 7)


def test_file_sections_inherit_and_env_overrides_file(tmp_path):
    path = write(tmp_path, "[pgdrill]\nbackup_dir = /b\nkeep_last = 3\nhost = db1\n\n[database shop]\nkeep_last = 9\n\n[database crm]\nprefix = crm-main\n")
    configs = {c.label: c for c in load_configs(path, environ={})}
    assert configs["shop"].keep_last == 9 and configs["shop"].connection.dbname == "shop" and configs["shop"].prefix == "shop"
    assert configs["crm"].keep_last == 3 and configs["crm"].prefix == "crm-main" and configs["crm"].connection.host == "db1"
    configs = load_configs(path, environ={"PGDRILL_KEEP_LAST": "1"})
    assert {c.keep_last for c in configs} == {1}


def test_relative_default_backup_dir_is_next_to_the_config(tmp_path):
    path = write(tmp_path, "[pgdrill]\ndbname = x\n")
    (config,) = load_configs(path, environ={})
    assert config.backup_dir == os.path.join(str(tmp_path), "backups")


@pytest.mark.parametrize(
    "text,words",
    [
        ("[pgdrill]\nkeep_last = many\n", ["keep_last", "'many'", "whole number"]),
        ("[pgdrill]\nretention_days = -1\n", ["retention_days", "from 0 to 36500"]),
        ("[pgdrill]\nretention_days = 1e20\n", ["retention_days", "from 0 to 36500"]),
        ("[pgdrill]\nretention_days = 100000000000000000000\n", ["retention_days"]),
        ("[pgdrill]\ndebris_grace_hours = inf\n", ["debris_grace_hours"]),
        ("[pgdrill]\nlock_wait = inf\n", ["lock_wait"]),
        ("[pgdrill]\nlock_wait = nan\n", ["lock_wait"]),
        ("[pgdrill]\nkeep_last = \u0663\n", ["keep_last", "whole number"]),
        ("[pgdrill]\nport = 70000\n", ["port", "65535"]),
        ("[pgdrill]\nmax_runtime = -5\n", ["max_runtime"]),
        ("[pgdrill]\ncompression = lz4\n", ["compression", "zstd, gzip, none"]),
        ("[pgdrill]\nkeep_lats = 3\n", ["unknown key 'keep_lats'"]),
        ("[pgdrill]\npassword = hunter2\n", ["password", ".pgpass"]),
        ("[pgdril]\nkeep_last = 3\n", ["unknown section [pgdril]"]),
        ("[pgdrill]\nprefix = a/b\n", ["prefix"]),
        ("keep_last = 3\n", ["bad config file"]),
    ],
)
def test_bad_config_is_named(tmp_path, text, words):
    with pytest.raises(PgdrillError) as caught:
        load_configs(write(tmp_path, text), environ={})
    message = caught.value.message
    assert all(word in message for word in words), message
    assert "hunter2" not in message


def test_bad_env_value_names_the_variable():
    from pgdrill.compat import load_seed_configs as load_configs  # the seed's names: pgdrill-backup's loader

    with pytest.raises(PgdrillError) as caught:
        load_configs(environ={"EZ360_BACKUP_KEEP_LAST": "x"})
    assert "EZ360_BACKUP_KEEP_LAST" in caught.value.message


def test_two_databases_cannot_share_a_series(tmp_path):
    path = write(tmp_path, "[pgdrill]\nbackup_dir = /b\nprefix = same\n[database a]\n[database b]\n")
    with pytest.raises(PgdrillError, match="share the backup series"):
        load_configs(path, environ={})


def test_two_databases_cannot_share_a_remote_series(tmp_path):
    """Issue 18, R24: the same prefix pushed to the same remote from two backup directories."""
    remote = "remote = s3://backups/pgdrill\n"
    path = write(tmp_path, f"[pgdrill]\nprefix = same\n{remote}[database a]\nbackup_dir = /a\n[database b]\nbackup_dir = /b\nremote = s3://backups/pgdrill/\n")
    with pytest.raises(PgdrillError, match="share the remote series 'same'") as caught:
        load_configs(path, environ={})
    assert "'a' and 'b'" in caught.value.problem and "prefix" in caught.value.fix
    other = write(
        tmp_path, f"[pgdrill]\nprefix = same\n{remote}[database a]\nbackup_dir = /a\n[database b]\nbackup_dir = /b\nremote = s3://backups/pgdrill/b\n"
    )
    assert [c.remote for c in load_configs(other, environ={})] == ["s3://backups/pgdrill", "s3://backups/pgdrill/b"]


def test_unknown_database_selection(tmp_path):
    path = write(tmp_path, "[database a]\n")
    with pytest.raises(PgdrillError, match="'zzz' is not in the configuration"):
        load_configs(path, environ={}, only=["zzz"])


@pytest.mark.parametrize(
    "key,value",
    [("retention_days", 10**20), ("debris_grace_hours", float("inf")), ("lock_wait", float("nan")), ("keep_last", -1), ("port", 70000), ("restore_jobs", 0)],
)
def test_typed_values_from_modules_obey_the_same_rules(key, value):
    from pgdrill.config import build_database_config

    with pytest.raises(PgdrillError) as caught:
        build_database_config("x", {"backup_dir": "/b", key: value}, "/", "module options", {})
    assert key in caught.value.message


def test_typed_values_round_trip():
    from pgdrill.config import build_database_config

    config = build_database_config(
        "x", {"backup_dir": "/b", "keep_last": 7, "debris_grace_hours": 0.00001, "globals": False, "lock_wait": 2.5}, "/", "module options", {}
    )
    assert (config.keep_last, config.debris_grace_hours, config.globals, config.lock_wait) == (7, 0.00001, False, 2.5)


def test_ping_url_may_live_in_a_file_of_its_own_and_is_never_repeated(tmp_path):
    from pgdrill.config import parse_value
    from pgdrill.errors import PgdrillError

    secret = tmp_path / "ping-url"
    secret.write_text("https://hc-ping.example/0a1b2c-check-key\n")
    assert parse_value("ping_url", f"@{secret}", "test") == "https://hc-ping.example/0a1b2c-check-key"
    secret.write_text("hc-ping.example/0a1b2c-check-key\n")
    for raw in (f"@{secret}", "hc-ping.example/0a1b2c-check-key", f"@{tmp_path / 'missing'}"):
        try:
            parse_value("ping_url", raw, "test")
        except PgdrillError as exc:
            assert "0a1b2c-check-key" not in exc.message and "or @FILE" in exc.fix
        else:
            raise AssertionError(raw)


def test_tiers_time_zone_and_durations(tmp_path):
    from pgdrill.config import retention_policy

    path = write(
        tmp_path,
        "[pgdrill]\nbackup_dir = /b\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 12\nkeep_yearly = 2\n"
        "keep_within = 36h\nretention_timezone = Europe/Berlin\n[database shop]\nkeep_within = 2w\n[database crm]\nkeep_within = 3\n[database off]\nkeep_within = 0\n",
    )
    configs = {c.label: c for c in load_configs(path, environ={})}
    policy = retention_policy(configs["shop"])
    assert (policy.keep_daily, policy.keep_weekly, policy.keep_monthly, policy.keep_yearly) == (7, 4, 12, 2)
    assert policy.keep_within == 14 * 86400 and policy.timezone == "Europe/Berlin" and policy.tiered
    assert retention_policy(configs["crm"]).keep_within == 3 * 86400  # a plain number is days, as retention_days
    assert retention_policy(configs["off"]).keep_within == 0
    (default,) = load_configs(write(tmp_path, "[pgdrill]\nbackup_dir = /b\n"), environ={})
    policy = retention_policy(default)
    assert not policy.tiered and (policy.keep_last, policy.retention_days, policy.timezone, policy.keep_within) == (14, 14, "UTC", 0)


def test_the_remote_keeps_its_own_tiers_or_the_local_ones(tmp_path):
    from pgdrill.config import retention_policy

    path = write(
        tmp_path,
        "[pgdrill]\nbackup_dir = /b\nkeep_last = 3\nkeep_daily = 7\nretention_timezone = America/New_York\n"
        "remote_keep_last = 0\nremote_keep_monthly = 12\nremote_keep_yearly = 5\nremote_keep_within = 1w\n",
    )
    (config,) = load_configs(path, environ={})
    local, remote = retention_policy(config), retention_policy(config, remote=True)
    assert (local.keep_last, local.keep_daily, local.keep_monthly, local.keep_yearly, local.keep_within) == (3, 7, 0, 0, 0)
    assert (remote.keep_last, remote.keep_daily, remote.keep_monthly, remote.keep_yearly, remote.keep_within) == (0, 7, 12, 5, 604800)
    assert remote.timezone == local.timezone == "America/New_York" and remote.retention_days == local.retention_days == 14


@pytest.mark.parametrize(
    "text,words",
    [
        ("retention_timezone = Mars/Olympus_Mons\n", ["retention_timezone", "'Mars/Olympus_Mons'", "IANA time zone", "tzdata"]),
        ("retention_timezone = ../../etc/passwd\n", ["retention_timezone"]),
        ("keep_within = 36m\n", ["keep_within", "36h, 14d or 2w"]),
        ("keep_within = 1.5d\n", ["keep_within"]),
        ("keep_within = 99999w\n", ["keep_within", "at most 36500 days"]),
        ("keep_daily = -1\n", ["keep_daily", "whole number"]),
        ("remote_keep_weekly = many\n", ["remote_keep_weekly", "whole number"]),
        ("remote_keep_within = 5y\n", ["remote_keep_within"]),
    ],
)
def test_bad_retention_values_are_named(tmp_path, text, words):
    with pytest.raises(PgdrillError) as caught:
        load_configs(write(tmp_path, "[pgdrill]\n" + text), environ={})
    assert all(word in caught.value.message + caught.value.fix for word in words), (caught.value.message, caught.value.fix)


def test_an_unknown_time_zone_exits_2_naming_the_key(tmp_path):
    from helpers import run_cli

    done = run_cli("--config", write(tmp_path, "[pgdrill]\nbackup_dir = b\nretention_timezone = Europe/Atlantis\n"), "list", check=2)
    assert "retention_timezone = 'Europe/Atlantis'" in done.stderr and "IANA time zone" in done.stderr


def test_an_empty_pgdrill_config_counts_as_unset(monkeypatch, tmp_path):
    from pgdrill import config as config_mod

    default = tmp_path / "pgdrill.conf"
    default.write_text("[pgdrill]\n")
    monkeypatch.setattr(config_mod, "DEFAULT_CONFIG_PATH", str(default))
    assert config_mod.config_file(None, {"PGDRILL_CONFIG": ""}) == str(default)
    assert config_mod.config_file(None, {"PGDRILL_CONFIG": "/etc/other.conf"}) == "/etc/other.conf"
    assert config_mod.config_file("/srv/given.conf", {"PGDRILL_CONFIG": "/etc/other.conf"}) == "/srv/given.conf"


def test_the_dump_format_is_custom_unless_chosen_per_database_or_in_the_defaults(tmp_path):
    path = write(tmp_path, "[pgdrill]\nbackup_dir = /b\nformat = directory\ndump_jobs = 3\n\n[database shop]\n\n[database crm]\nformat = custom\n")
    configs = {c.label: c for c in load_configs(path, environ={})}
    assert (configs["shop"].format, configs["shop"].dump_jobs) == ("directory", 3)
    assert configs["crm"].format == "custom"
    (plain,) = load_configs(write(tmp_path, "[pgdrill]\nbackup_dir = /b\n"), environ={})
    assert (plain.format, plain.dump_jobs) == ("custom", 2)


@pytest.mark.parametrize(
    "text, words",
    [
        ("format = tar\n", ["format", "'tar'", "custom, directory"]),
        ("format = directory\ncompression = gzip\n", ["format = directory with compression = gzip", "compression = zstd"]),
        ("format = auto\ncompression = gzip\n", ["format = auto with compression = gzip", "format = custom for gzip"]),
        ("directory_above = 1.5GB\n", ["directory_above", "'1.5GB'", "kB, MB, GB or TB"]),
        ("dump_jobs = 0\n", ["dump_jobs"]),
    ],
)
def test_a_bad_dump_format_is_named_with_the_fix(tmp_path, text, words):
    with pytest.raises(PgdrillError) as caught:
        load_configs(write(tmp_path, "[pgdrill]\nbackup_dir = /b\n" + text), environ={})
    message = str(caught.value)
    assert all(word in message for word in words), message


def test_format_auto_reads_sizes_as_postgresql_does_and_picks_directory_from_its_threshold(tmp_path):
    path = write(
        tmp_path, "[pgdrill]\nbackup_dir = /b\nformat = auto\n\n[database a]\n\n[database b]\ndirectory_above = 500MB\n\n[database c]\ndirectory_above = 4096\n"
    )
    sizes = {c.label: (c.format, c.directory_above) for c in load_configs(path, environ={})}
    assert sizes == {"a": ("auto", 1 << 30), "b": ("auto", 500 << 20), "c": ("auto", 4096)}
    assert [dump_format("auto", size, 1 << 30) for size in (0, (1 << 30) - 1, 1 << 30, 5 << 30, None)] == [
        "custom",
        "custom",
        "directory",
        "directory",
        "custom",
    ]
    assert [dump_format(setting, 5 << 30, 1 << 30) for setting in ("custom", "directory")] == ["custom", "directory"]


def test_a_directory_format_series_pushes_to_its_remote(tmp_path):
    (config,) = load_configs(write(tmp_path, "[pgdrill]\nbackup_dir = /b\nformat = directory\nremote = s3://bucket/path\n"), environ={})
    assert config.format == "directory" and config.remote_upload
