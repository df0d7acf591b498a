# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
# Documentation shared by pgdrill's modules: where a backup series lives and how to reach PostgreSQL.


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  config:
    description:
      - Path of a pgdrill config file on the managed host (as written by the pgdrill backup role).
      - Settings from the file's C([pgdrill]) section and the chosen O(database) section are used
        first; every option given to the module overrides them.
    type: path
  database:
    description:
      - The C([database NAME]) section of O(config) to use. Needed when the file has several.
    type: str
  backup_dir:
    description:
      - Directory of the backup series. Required unless O(config) provides it.
    type: path
  prefix:
    description:
      - File name prefix of the backup series. Defaults to the database name.
    type: str
  lock_wait:
    description:
      - Seconds to wait for another run on the same backup series before failing.
    type: float
    default: 0
requirements:
  - Python 3.9 or newer on the managed host.
  - psycopg 3 on the managed host, for the operations that connect to PostgreSQL.
  - The PostgreSQL client programs on the managed host.
notes:
  - The modules run pgdrill's engine, the same code as the C(pgdrill-backup) host command, so
    naming, manifests, retention and verification follow the same rules everywhere.
"""

    # The connection options alone (pgdrill_smoke uses only these).
    CONNECTION = r"""
options:
  db:
    description:
      - Name of the database. Defaults to libpq's choice (E(PGDATABASE), else the user name).
    type: str
    aliases: [dbname]
  login_host:
    description:
      - Host name or Unix socket directory of the PostgreSQL server. Defaults to libpq's (E(PGHOST)).
    type: str
    aliases: [host]
  login_port:
    description:
      - Port of the PostgreSQL server. Defaults to libpq's (E(PGPORT), else 5432).
    type: int
    aliases: [port]
  login_user:
    description:
      - Role to connect as. Defaults to libpq's (E(PGUSER), else the OS user).
    type: str
    aliases: [user]
  login_password:
    description:
      - Password of O(login_user). Handed to PostgreSQL programs in their environment, never on a
        command line, and hidden from Ansible's output. Prefer O(passfile).
    type: str
  passfile:
    description:
      - Path of a C(.pgpass) file on the managed host (mode 0600).
    type: path
  ssl_mode:
    description:
      - libpq's C(sslmode). Defaults to libpq's (C(prefer)).
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  pg_bin_dir:
    description:
      - Directory holding pg_dump, pg_dumpall and pg_restore. Defaults to the installed client of the
        closest major version at least the server's, else the programs on E(PATH).
    type: path
"""

    # Off-host copies (pgdrill_push, pgdrill_pull, and remote: true on pgdrill_prune, pgdrill_verify, pgdrill_info).
    REMOTE = r"""
options:
  remote:
    description:
      - The off-host copy, C(s3://BUCKET/PREFIX) (S3-compatible object storage) or C(rclone:REMOTE:PATH)
        (any rclone backend). Defaults to the config's C(remote).
    type: str
  remote_endpoint_url:
    description:
      - Endpoint of S3-compatible storage that is not AWS (MinIO, SeaweedFS, Ceph, ...).
    type: str
  remote_region:
    description:
      - Region of the bucket.
    type: str
  remote_profile:
    description:
      - Profile of E(AWS_SHARED_CREDENTIALS_FILE) (or C(~/.aws/credentials)) to use.
    type: str
  remote_access_key_id:
    description:
      - Access key for this run only (say, credentials with delete rights for a remote prune run
        from the controller). Handed to the AWS SDK through the module's environment, hidden from
        Ansible's output. Hosts should use their AWS chain instead.
    type: str
  remote_secret_access_key:
    description:
      - Secret key belonging to O(remote_access_key_id).
    type: str
  encrypt_identity_file:
    description:
      - Path of an age identity (secret key) file on the managed host, for sets that must be
        decrypted (restores, and verifications that restore). Defaults to the config's.
    type: path
requirements:
  - boto3 on the managed host for C(s3://) remotes; rclone for C(rclone:) remotes; age for encrypted sets.
"""
