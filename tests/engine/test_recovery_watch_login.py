"""The restored server's recovery is watched through a login: a login the server refuses fails at
once, naming it, instead of being taken for a server still starting until the recovery timeout."""

import time

import pytest

from pgdrill.config import Connection
from pgdrill.db import classify_connect_error
from pgdrill.errors import PgdrillError
from pgdrill.throwaway import Server, still_starting


@pytest.mark.parametrize(
    "libpq, waits",
    [
        ('connection to server on socket "/run/x/.s.PGSQL.5432" failed: No such file or directory', True),
        ('connection to server on socket "/run/x/.s.PGSQL.5432" failed: FATAL:  the database system is starting up', True),
        (
            "connection to server failed: FATAL:  the database system is not yet accepting connections\nDETAIL:  Consistent recovery state has not been yet reached.",
            True,
        ),
        ('connection to server on socket "/run/x/.s.PGSQL.5432" failed: FATAL:  Peer authentication failed for user "postgres"', False),
        ('connection to server failed: FATAL:  role "restorer" does not exist', False),
        ("connection to server failed: fe_sendauth: no password supplied", False),
    ],
)
def test_only_a_server_not_up_yet_is_waited_for(libpq, waits):
    assert still_starting(classify_connect_error(libpq, "the restored server").problem) is waits


def test_a_refused_login_fails_the_watch_at_once(pg, tmp_path):
    watched = Server(
        pg.bindir, pg.data, pg.os_user, str(tmp_path / "log"), Connection(host=pg.host, port=pg.port, user="no_such_restorer", passfile=pg.passfile)
    )
    started = time.monotonic()
    with pytest.raises(PgdrillError) as caught:
        watched.wait_promoted(timeout=120)
    assert time.monotonic() - started < 30  # not the recovery timeout
    assert "refused the login that watches its recovery" in caught.value.problem and "no_such_restorer" in caught.value.problem
    assert "pg_ident.conf" in caught.value.fix
