from pgdrill.recovery import Situation, globals_problems, refusal, same_server


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
