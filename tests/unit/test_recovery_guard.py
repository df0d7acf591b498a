from pgdrill.globals_script import globals_for_target, globals_problems
from pgdrill.recovery import Situation, refusal, same_server


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
    plan = globals_for_target(GLOBALS, {"postgres", 'Report "Reader"'})
    script = plan.script
    assert plan.left_alone == ["postgres", 'Report "Reader"'] and plan.created == ["app_owner"]
    assert "PASSWORD 'SCRAM-SHA-256$4096:source'" not in script and "search_path" not in script and "COMMENT ON ROLE" not in script
    assert "reader'" not in script
    assert "CREATE ROLE app_owner;\nALTER ROLE app_owner WITH" in script  # a role staging lacks is created
    # a membership granted to a role staging already has would change that role: left out
    assert "GRANT app_owner TO" not in script and "CREATE TABLESPACE fast" in script


def test_globals_for_an_empty_target_keep_everything():
    plan = globals_for_target(GLOBALS, set())
    assert plan.script == GLOBALS and plan.left_alone == [] and plan.created == ["app_owner", "postgres", 'Report "Reader"']
    # a name that merely starts like an existing one is another role
    assert globals_for_target("CREATE ROLE postgres_ro;\n", {"postgres"}).script == "CREATE ROLE postgres_ro;\n"


def test_globals_for_staging_create_roles_without_passwords_or_login():
    plan = globals_for_target(GLOBALS, {"postgres"}, role_passwords=False)
    assert "PASSWORD" not in plan.script
    assert 'ALTER ROLE "Report ""Reader""" WITH NOLOGIN;' in plan.script
    assert "NOLOGIN NOREPLICATION" in plan.script  # already NOLOGIN: unchanged
    assert not [line for line in plan.script.splitlines() if line.startswith("ALTER ROLE") and " LOGIN" in line]
    assert 'GRANT app_owner TO "Report ""Reader""" GRANTED BY postgres;' in plan.script  # between new roles: kept
    assert plan.changes == ["left out the statements for roles the target already has: postgres", "created 2 role(s) without passwords and NOLOGIN"]
