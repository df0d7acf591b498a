"""pgBackRest reads its conf.d only when no --config is given: the secrets the pgdrill_pitr role
keeps in conf.d beside pgbackrest.conf reach every command pgdrill runs only because argv names the
include path too. Asked of the real pgbackrest binary (its debug log lists the options it loaded)."""

import os
import subprocess


from pgdrill import pgbackrest


def _loaded_options(command, tmp_path):
    done = subprocess.run([*command[:-1], "--log-level-console=debug", command[-1]], capture_output=True, text=True, cwd=tmp_path)
    begin = [line for line in done.stdout.splitlines() if "command begin" in line]
    assert begin, done.stdout + done.stderr
    return begin[0]


def test_argv_makes_pgbackrest_read_the_secrets_in_conf_d_beside_the_config(tmp_path):
    config = tmp_path / "pgbackrest.conf"
    config.write_text(f"[global]\nrepo1-path={tmp_path}/repo\nlog-path={tmp_path}\nlock-path={tmp_path}\n\n[main]\npg1-path={tmp_path}/pg\n")
    # Without conf.d, argv names no include path (pgBackRest refuses a missing one).
    assert pgbackrest.argv(str(config), "main", "info") == ["pgbackrest", f"--config={config}", "--stanza=main", "info"]
    os.mkdir(tmp_path / "conf.d", 0o700)
    (tmp_path / "conf.d" / "pgdrill-secrets.conf").write_text("[global]\nrepo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass=not-in-argv-7c1d\n")
    command = pgbackrest.argv(str(config), "main", "info")
    assert command == ["pgbackrest", f"--config={config}", f"--config-include-path={tmp_path}/conf.d", "--stanza=main", "info"]
    loaded = _loaded_options(command, tmp_path)
    assert "--repo1-cipher-pass=<redacted>" in loaded and "--repo1-cipher-type=aes-256-cbc" in loaded
    # What pgBackRest does when given --config alone: the secrets are not read.
    alone = _loaded_options(["pgbackrest", f"--config={config}", "--stanza=main", "info"], tmp_path)
    assert "repo1-cipher" not in alone
    assert "not-in-argv-7c1d" not in " ".join(command)
