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


def test_restore_media_to_dir_puts_what_media_root_held_into_dir(backup_env, tmp_path):
    """`restore-media --to DIR` makes DIR what MEDIA_ROOT was (the README's `--to /srv/app/media-restored`,
    then move it into place): the files directly in DIR, not in DIR/<name of the old root>/, with the
    root's own mode; links stay links, relative to where they were."""
    import os

    from helpers import tree_hash

    media = tmp_path / "site-media"
    (media / "uploads" / "2026").mkdir(parents=True)
    (media / "uploads" / "2026" / "logo.png").write_bytes(os.urandom(4096))
    (media / "robots.txt").write_text("User-agent: *\n")
    os.symlink("../../robots.txt", media / "uploads" / "2026" / "robots-link")
    os.link(media / "robots.txt", media / "uploads" / "robots-hardlink")
    os.chmod(media / "uploads", 0o750)
    os.chmod(media, 0o755)
    backup_env.rewrite(media_root=str(media))
    backup_env.run("--db", "--media")
    target = tmp_path / "media-restored"
    done = backup_env.run("restore-media", "--to", str(target))
    assert sorted(os.listdir(target)) == ["robots.txt", "uploads"], os.listdir(target)
    assert tree_hash(target) == tree_hash(media)
    assert f"restored into {target}" in done.stdout
    # An empty directory made for it (a mount point, say) takes the media the same way.
    empty = tmp_path / "mounted"
    empty.mkdir(mode=0o700)
    backup_env.run("restore-media", "--to", str(empty))
    assert tree_hash(empty) == tree_hash(media)
    # --help and the command reference (docs/host-command.md) say the same.
    assert "directly in DIR" in " ".join(backup_env.run("restore-media", "--help").stdout.split())
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "host-command.md"), encoding="utf-8") as handle:
        readme = " ".join(handle.read().split())
    assert "restore-media [SET] --to DIR restore a set's media root as DIR (new or empty): what MEDIA_ROOT held goes directly in DIR" in readme
