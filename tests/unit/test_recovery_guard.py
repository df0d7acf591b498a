from pgdrill.recovery import Situation, globals_for_target, globals_problems, refusal, same_server


def situation(**kw):
    base = dict(target="shop_copy", target_exists=False, replace=False, other_sessions=0, terminate=False, is_source_on_same_server=False, confirm=None)
    base.update(kw)
    return Situation(**base)


def test_fresh_target_goes_ahead():
    assert refusal(situation()) is None


def test_existing_target_needs_replace():
    problem = refusal(situation(target_exists=True))
    assert "already exists" in problem.problem and "replace" in problem.fix
    assert refusal(situation(target_exists=True, replace=True)) is None


def test_other_sessions_need_terminate():
    problem = refusal(situation(target_exists=True, replace=True, other_sessions=3))
    assert "3 other connection" in problem.problem
    assert refusal(situation(target_exists=True, replace=True, other_sessions=3, terminate=True)) is None


def test_own_source_needs_confirm_equal_to_its_name():
    base = dict(target="shop", target_exists=True, replace=True, is_source_on_same_server=True)
    assert "taken from" in refusal(situation(**base)).problem
    assert "taken from" in refusal(situation(**base, confirm="yes")).problem
    assert refusal(situation(**base, confirm="shop")) is None


def test_same_server_needs_matching_identifiers_and_errs_towards_yes():
    assert same_server({"system_identifier": "1"}, {"system_identifier": "1"})
    assert not same_server({"system_identifier": "1"}, {"system_identifier": "2"})
    assert same_server({}, {"system_identifier": "2"})


def test_globals_replay_tolerates_existing_roles_only():
    stderr = 'psql:g.sql:14: ERROR:  role "postgres" already exists\npsql:g.sql:20: ERROR:  syntax error at or near "x"\n'
    assert globals_problems(stderr) == ['psql:g.sql:20: ERROR:  syntax error at or near "x"']


GLOBALS = '''--
-- Roles
--

CREATE ROLE app_owner;
ALTER ROLE app_owner WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:source';
CREATE ROLE "Report ""Reader""";
ALTER ROLE "Report ""Reader""" WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:reader';
COMMENT ON ROLE postgres IS 'the source''s superuser';
ALTER ROLE postgres SET search_path TO 'source';
GRANT app_owner TO "Report ""Reader""" GRANTED BY postgres;
CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';
'''


def test_globals_leave_the_targets_existing_roles_alone():
    script, skipped = globals_for_target(GLOBALS, {"postgres", 'Report "Reader"'})
    assert skipped == ["postgres", 'Report "Reader"']
    assert "PASSWORD 'SCRAM-SHA-256$4096:source'" not in script and "search_path" not in script and "COMMENT ON ROLE" not in script
    assert "reader'" not in script
    assert "CREATE ROLE app_owner;\nALTER ROLE app_owner WITH" in script  # a role staging lacks is created
    assert 'GRANT app_owner TO "Report ""Reader""" GRANTED BY postgres;' in script and "CREATE TABLESPACE fast" in script


def test_globals_for_an_empty_target_keep_everything():
    assert globals_for_target(GLOBALS, set()) == (GLOBALS, [])
    # a name that merely starts like an existing one is another role
    assert globals_for_target("CREATE ROLE postgres_ro;\n", {"postgres"}) == ("CREATE ROLE postgres_ro;\n", [])
