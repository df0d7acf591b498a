"""What a new user following the README ran into (issue 18, item 16), on real clusters: messages
named by the series, and a restore proof that does not need the configured database to exist."""


def test_a_config_without_database_sections_names_the_series_in_its_messages_not_default(backup_env):
    done = backup_env.run()
    assert done.stdout.startswith(f"{backup_env.dbname}: backup set "), done.stdout
    assert "default:" not in done.stdout + done.stderr
    failed = backup_env.run("verify", "--set", "nope_20000101_000000_utc", check=None)
    assert failed.returncode != 0 and "default:" not in failed.stdout + failed.stderr, failed.stdout + failed.stderr


def test_verify_restore_on_a_new_host_does_not_need_the_configured_database(backup_env):
    """A new host (after a disaster) has no database of the set's name yet: the proof restores into a
    scratch database, so it connects to a maintenance database that exists."""
    from helpers import write_config

    backup_env.run()
    config = write_config(backup_env.config, backup_env.cluster, "not_created_on_this_host", backup_env.backup_dir, prefix=backup_env.dbname)
    assert backup_env.config == config
    done = backup_env.run("verify", "--restore", check=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "does not exist" not in done.stdout + done.stderr
