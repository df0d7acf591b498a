# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Glue between pgdrill's engine and Ansible modules. Imported only by the modules in library/.

The option names here are documented once, in plugins/doc_fragments/pgdrill.py.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence

from .config import Connection, DatabaseConfig, build_database_config, load_configs
from .errors import PgdrillError
from .pipeline import Completed, use_runner

# Options of a backup series (doc fragment "pgdrill") and of a connection ("pgdrill.connection").
SERIES_ARGS: Dict[str, Dict[str, Any]] = dict(
    config=dict(type="path"),
    database=dict(type="str"),
    backup_dir=dict(type="path"),
    prefix=dict(type="str"),
    lock_wait=dict(type="float", default=0),
)
CONNECTION_ARGS: Dict[str, Dict[str, Any]] = dict(
    db=dict(type="str", aliases=["dbname"]),
    login_host=dict(type="str", aliases=["host"]),
    login_port=dict(type="int", aliases=["port"]),
    login_user=dict(type="str", aliases=["user"]),
    login_password=dict(type="str", no_log=True),
    passfile=dict(type="path"),
    ssl_mode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
    pg_bin_dir=dict(type="path"),
)

# Off-host copies and decryption (doc fragment "pgdrill.remote"). Credentials given as options are
# for the controller's own runs (a remote prune with delete rights); hosts use their AWS chain.
REMOTE_ARGS: Dict[str, Dict[str, Any]] = dict(
    remote=dict(type="str"),
    remote_endpoint_url=dict(type="str"),
    remote_region=dict(type="str"),
    remote_profile=dict(type="str"),
    remote_access_key_id=dict(type="str", no_log=True),
    remote_secret_access_key=dict(type="str", no_log=True),
    encrypt_identity_file=dict(type="path"),
)
_REMOTE_KEYS = ("remote", "remote_endpoint_url", "remote_region", "remote_profile", "encrypt_identity_file")

# module option -> engine config key
_CONNECTION_KEYS = {"db": "dbname", "login_host": "host", "login_port": "port", "login_user": "user", "passfile": "passfile", "ssl_mode": "sslmode"}
_SETTING_KEYS = ("backup_dir", "prefix", "pg_bin_dir", "lock_wait")


def argument_spec(**extra: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Series and connection options, plus the module's own."""
    return {**connection_argument_spec(), **{key: dict(value) for key, value in SERIES_ARGS.items()}, **extra}


def connection_argument_spec(**extra: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Connection options only, plus the module's own."""
    return {**{key: dict(value) for key, value in CONNECTION_ARGS.items()}, **extra}


def remote_argument_spec(**extra: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Series, connection and off-host options, plus the module's own."""
    return argument_spec(**{key: dict(value) for key, value in REMOTE_ARGS.items()}, **extra)


def remote_settings(params: Dict[str, Any]) -> Dict[str, Any]:
    """The config keys the off-host options give. Credentials given as options go into this
    module process's environment, where the AWS SDK's standard chain finds them; never into argv,
    a file or the result."""
    if params.get("remote_access_key_id") and params.get("remote_secret_access_key"):
        os.environ["AWS_ACCESS_KEY_ID"] = params["remote_access_key_id"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = params["remote_secret_access_key"]
    elif params.get("remote_access_key_id") or params.get("remote_secret_access_key"):
        raise PgdrillError("only one of remote_access_key_id and remote_secret_access_key was given", "give both, or neither to use the host's AWS chain")
    return {key: params[key] for key in _REMOTE_KEYS if params.get(key) is not None}


def connection_of(params: Dict[str, Any], base=None):
    """A Connection from the connection options, over ``base`` (say, a config file's) when given."""
    values = {key: params[option] for option, key in _CONNECTION_KEYS.items() if params.get(option) is not None}
    if params.get("login_password"):
        values["password"] = params["login_password"]
    return replace(base, **values) if base is not None else Connection(**values)


def install_runner(module) -> None:
    """Route the engine's single commands through AnsibleModule.run_command."""

    def runner(argv: Sequence[str], env: Dict[str, str], stdin_data: Optional[bytes]) -> Completed:
        extra = {key: value for key, value in env.items() if os.environ.get(key) != value}
        rc, out, err = module.run_command(list(argv), environ_update=extra, data=stdin_data, binary_data=True, check_rc=False)
        return Completed(list(argv), rc, out, err)

    use_runner(runner)


def database_config(params: Dict[str, Any], **settings: Any) -> DatabaseConfig:
    """The engine configuration a module works with: the host's config file (if named), overridden
    by every module option that was given. Raises PgdrillError with a message for the user."""
    values: Dict[str, Any] = {}
    for option, key in _CONNECTION_KEYS.items():
        if params.get(option) is not None:
            values[key] = params[option]
    for key in _SETTING_KEYS:
        if params.get(key) is not None:
            values[key] = params[key]
    values.update({key: value for key, value in settings.items() if value is not None})
    if any(key in params for key in REMOTE_ARGS):
        values.update(remote_settings(params))
    if params.get("config"):
        only = [params["database"]] if params.get("database") else None
        configs = load_configs(params["config"], environ={}, overrides=values, only=only)
        if len(configs) != 1:
            raise PgdrillError(
                f"{params['config']} configures {len(configs)} databases",
                "choose one with the 'database' option: " + ", ".join(c.label for c in configs),
            )
        config = configs[0]
    else:
        if "backup_dir" not in values and not values.get("remote"):
            raise PgdrillError("no backup directory given", "set 'backup_dir', or 'config' to a pgdrill config file that has one")
        if "backup_dir" not in values:
            values["backup_dir"] = os.path.join(os.getcwd(), ".pgdrill-remote-only")  # never touched: the series lives on the remote
        label = params.get("database") or "default"
        config = build_database_config(label, values, base_dir=os.getcwd(), source="module options", environ=os.environ)
    if params.get("login_password"):
        config = replace(config, connection=replace(config.connection, password=params["login_password"]))
    return config


# Details of a failure that a playbook may act on: a command's output, and what a restore did and
# found before it failed (so a drill's evidence can name the differences and drop what it created).
FAILURE_DETAILS = ("rc", "stderr", "stdout", "cmd", "fidelity", "row_counts", "restore")


def fail(module, exc: PgdrillError, **result: Any) -> None:
    details = {key: value for key, value in exc.details.items() if key in FAILURE_DETAILS}
    module.fail_json(msg=exc.message, **details, **result)
