"""Mutation run: break one safety rule at a time and check that the tests meant to guard it fail.

Each mutant is a one-line change to the engine (the text must occur exactly once, so the list cannot
silently go stale). The run works on a copy of the checkout in a temporary directory, never on the
checkout itself, and runs only the tests named for each mutant. Every mutant must be killed.

    ./run mutants                 # all of them (about 10 minutes on 2 cores)
    ./run mutants pipeline lock   # those whose name contains one of the words
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, NamedTuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINE = "module_utils/pgdrill/"


class Mutant(NamedTuple):
    name: str
    path: str
    original: str
    mutated: str
    tests: List[str]


SAFETY = "tests/engine/test_safety_rules.py::"
BACKUP = "tests/engine/test_backup.py::"
VERIFY = "tests/engine/test_verify_prune_list.py::"
HARD = "tests/engine/test_hardening.py::"
TIERS = "tests/unit/test_retention_tiers.py::"
RETENTION = "tests/engine/test_tiers_and_pins.py::"
VERDICTS = "tests/engine/test_verdicts.py::"
FIDELITY = "tests/engine/test_verify_fidelity.py::"
PHYSICAL = "tests/pitr/test_physical_drill.py::"
PITR_UNIT = "tests/unit/test_pitr_drill.py::"
PITR = "tests/pitr/test_exact_restore_points.py::"
DR = "tests/pitr/test_point_in_time_disaster_recovery.py::"
DR_UNIT = "tests/unit/test_pitr_restore.py::"
FINGERPRINT = "tests/unit/test_fingerprint.py::"
DJANGO = "tests/packaging/test_django_command.py::"
CORPUS = "tests/engine/test_bad_input_corpus.py::"
UNTRUSTED = "tests/offhost/test_remote_untrusted.py::"
MEDIA = "tests/engine/test_media_members.py::"
REMOTE2 = "tests/offhost/test_remote_hardening.py::"
REMOTE2_UNIT = "tests/unit/test_remote.py::"
DIRSETS = "tests/engine/test_directory_sets.py::"
OFFSITE_DIRSETS = "tests/offhost/test_directory_sets_offsite.py::"
OVERLAP = "tests/offhost/test_upload_beside_dump.py::"

MUTANTS = [
    Mutant(
        "pipeline: only the last program's exit status counts",
        ENGINE + "pipeline.py",
        "failed = [index for index, rc in enumerate(rcs) if rc != 0]",
        "failed = [index for index, rc in enumerate(rcs) if rc != 0 and index == len(rcs) - 1]",
        [SAFETY + "test_pg_dump_dying_mid_stream_in_the_zstd_pipe_fails_the_run_and_prunes_nothing"],
    ),
    Mutant(
        "backup: a failed run prunes anyway",
        ENGINE + "backup.py",
        "            except BaseException:\n                # Once the manifest has its final name",
        "            except BaseException:\n                self.series.prune()\n                # Once the manifest has its final name",
        [
            SAFETY + "test_pg_dump_dying_mid_stream_in_the_zstd_pipe_fails_the_run_and_prunes_nothing",
            BACKUP + "test_failed_dump_keeps_nothing_and_prunes_nothing",
        ],
    ),
    Mutant(
        "snapshot: row counts in READ COMMITTED",
        ENGINE + "db.py",
        "conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ",
        "conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED",
        [BACKUP + "test_row_counts_match_the_dump_even_while_the_application_writes"],
    ),
    Mutant(
        "verify: sha256 not compared",
        ENGINE + "verify.py",
        'elif digest != entry["sha256"]:',
        "elif False:",
        [VERIFY + "test_bit_flip_fails_verify_and_is_remembered"],
    ),
    # A failed check blames the set only when its own bytes are proven bad (tests/engine/test_verdicts.py).
    Mutant(
        "verdict: a check that could not run blames the set",
        ENGINE + "verdict.py",
        "    if isinstance(exc, SetDamaged):\n        return check(name, False, exc.message)",
        "    if True:\n        return check(name, False, exc.message)",
        [VERDICTS + "test_a_wrong_key_never_makes_good_sets_prunable"],
    ),
    Mutant(
        "verdict: any failed check makes the set bad",
        ENGINE + "verdict.py",
        "    if any(isinstance(item, dict) and blame_of(item) == BLAME_SET for item in failed):",
        "    if failed:",
        [VERDICTS + "test_a_missing_tool_or_a_server_that_is_down_blames_nothing_and_keeps_the_last_verdict"],
    ),
    Mutant(
        "verdict: an inconclusive run forgets the last conclusive verdict",
        ENGINE + "manifest.py",
        '        document["last_conclusive"] = verdict.conclusive(previous)',
        '        document["last_conclusive"] = None',
        [VERDICTS + "test_a_missing_tool_or_a_server_that_is_down_blames_nothing_and_keeps_the_last_verdict"],
    ),
    Mutant(
        "verdict: a role without CREATEDB blames the set",
        ENGINE + "verify.py",
        '            checks.append(verdict.failed_check("restore", exc))\n        else:',
        '            checks.append(verdict.check("restore", False, exc.message))\n        else:',
        [VERDICTS + "test_a_role_without_createdb_cannot_verify_by_restore_and_blames_nothing"],
    ),
    Mutant(
        "verdict: restored rows that differ do not blame the set",
        ENGINE + "recovery.py",
        "        return SetDamaged(\n            f\"restored database '{target}' does not match the manifest",
        "        return PgdrillError(\n            f\"restored database '{target}' does not match the manifest",
        [VERDICTS + "test_restored_content_that_differs_blames_the_set"],
    ),
    Mutant(
        "verdict: a flipped byte is only 'could not verify'",
        ENGINE + "verify.py",
        '            checks.append(verdict.check(name, False, "sha256 does not match the manifest: the file is corrupted"))',
        '            checks.append(verdict.check(name, False, "sha256 does not match the manifest: the file is corrupted", blame="environment"))',
        [VERDICTS + "test_bytes_proven_bad_still_count_against_the_set"],
    ),
    Mutant(
        "verdict: age's 'does not authenticate' is not damage",
        ENGINE + "encryption.py",
        '            "use another set or another copy (local or remote); this file cannot be trusted",\n            True,',
        '            "use another set or another copy (local or remote); this file cannot be trusted",\n            False,',
        ["tests/unit/test_encryption.py::test_age_failures_are_explained"],
    ),
    Mutant(
        "fsio: a final file may be replaced",
        ENGINE + "fsio.py",
        "            os.link(self.temp_path, self.final_path)",
        "            os.replace(self.temp_path, self.final_path); os.link(self.final_path, self.temp_path)",
        [SAFETY + "test_a_final_file_is_never_overwritten"],
    ),
    Mutant(
        "retention: the newest complete set is not protected",
        ENGINE + "retention.py",
        '            _add(reasons, newest.set_id, f"newest complete set holding {what} (never deleted)")',
        "            pass",
        [VERIFY + "test_newest_set_survives_keep_last_zero_and_debris_goes_after_grace", "tests/unit/test_retention.py"],
    ),
    Mutant(
        "retention: keep_last ignored",
        ENGINE + "retention.py",
        "        for facts in group[: policy.keep_last]:",
        "        for facts in group[:0]:",
        ["tests/unit/test_retention.py", VERIFY + "test_prune_removes_only_its_own_old_sets_and_explains"],
    ),
    Mutant(
        "prune: files before the manifest",
        ENGINE + "sets.py",
        "key=lambda name: 0 if is_manifest(name) else 1",
        "key=lambda name: 1 if is_manifest(name) else 0",
        [SAFETY + "test_prune_deletes_a_sets_manifest_before_its_files"],
    ),
    Mutant(
        "series: other prefixes' temporaries removed",
        ENGINE + "series.py",
        "for name in catalog.stale_temporaries(self.directory, self.prefix) if remove_file(",
        "for name in [n for n in os.listdir(self.directory) if '.part-' in n] if remove_file(",
        [SAFETY + "test_a_run_removes_only_its_own_series_leftovers"],
    ),
    Mutant(
        "backup: two runs in one second share a stamp",
        ENGINE + "backup.py",
        "        taken = any(entry.stamp == stamp for entry in series.sets())",
        "        taken = False",
        [SAFETY + "test_a_second_already_used_by_the_series_is_never_reused"],
    ),
    Mutant(
        "cli: SIGTERM not turned into an unwind",
        ENGINE + "cli.py",
        "    signal.signal(signal.SIGTERM, on_sigterm)",
        "    pass",
        [SAFETY + "test_sigterm_mid_dump_removes_the_partial_files_and_exits_143"],
    ),
    Mutant(
        "restore: one job decompresses to disk instead of streaming",
        ENGINE + "archives.py",
        "    if jobs <= 1:",
        "    if False:",
        [SAFETY + "test_one_job_restores_a_zstd_set_through_a_pipe"],
    ),
    Mutant(
        "restore: other sessions not refused",
        ENGINE + "recovery.py",
        "    if s.target_exists and s.other_sessions and not s.terminate:",
        "    if False:",
        [SAFETY + "test_replacing_a_database_refuses_its_sessions_unless_told_to_end_them", "tests/unit/test_recovery_guard.py"],
    ),
    Mutant(
        "restore: the set's own source database not refused",
        ENGINE + "recovery.py",
        "    if s.is_source_on_same_server and s.confirm != s.target:",
        "    if False:",
        ["tests/unit/test_recovery_guard.py"],
    ),
    Mutant(
        "fingerprint: ACLs not compared",
        ENGINE + "fingerprint.py",
        "            if field in PRIVILEGE_FIELDS and not privileges:",
        "            if field in PRIVILEGE_FIELDS:",
        ["tests/unit/test_fingerprint.py", "tests/engine/test_verify_fidelity.py"],
    ),
    Mutant(
        "fingerprint: objects missing from the restore ignored",
        ENGINE + "fingerprint.py",
        '            differences.append(Difference(key, "missing from the restore", "present", "absent"))',
        "            pass",
        ["tests/unit/test_fingerprint.py"],
    ),
    Mutant(
        "globals: the target's own roles replayed over",
        ENGINE + "globals_script.py",
        "        if name in existing_roles:",
        "        if False:",
        ["tests/unit/test_recovery_guard.py"],
    ),
    Mutant(
        "globals: staging roles get the source's passwords",
        ENGINE + "globals_script.py",
        '            new_line = _LOGIN.sub("NOLOGIN", _PASSWORD.sub("", line))',
        "            new_line = line",
        ["tests/unit/test_recovery_guard.py"],
    ),
    Mutant(
        "scratch: any database dropped",
        ENGINE + "scratch.py",
        "        if created_at(database_mark(admin, name)) is None:",
        "        if False:",
        ["tests/ansible/test_fidelity.py::test_scratch_cleanup_refuses_a_database_pgdrill_did_not_make"],
    ),
    Mutant(
        "verify: row counts not compared",
        ENGINE + "recovery.py",
        "    mismatches = db.compare_counts(expected, actual)",
        "    mismatches = []",
        [VERIFY + "test_restore_check_compares_real_row_counts"],
    ),
    Mutant(
        "verify: a full disk while decompressing not reported",
        ENGINE + "archives.py",
        "        full = exc.errno == errno.ENOSPC",
        "        full = False",
        [SAFETY + "test_a_full_disk_while_decompressing_fails_the_restore_check_and_cleans_up"],
    ),
    Mutant(
        "lock: not exclusive",
        ENGINE + "locking.py",
        "                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)",
        ["tests/engine/test_errors_and_secrets.py::test_second_run_is_refused_while_the_lock_is_held"],
    ),
    Mutant(
        "lock: a planted link is followed",
        ENGINE + "locking.py",
        '        flags = os.O_RDWR | NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)',
        '        flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)',
        [HARD + "test_lock_file_symlink_is_refused_and_its_target_untouched"],
    ),
    Mutant(
        "fsio: a partial file carries its final name",
        ENGINE + "fsio.py",
        "        self.temp_path = os.path.join(directory, temp_prefix(final_name) + secrets.token_hex(4))",
        "        self.temp_path = os.path.join(directory, final_name)",
        [BACKUP + "test_kill_9_mid_dump_leaves_no_final_file_and_the_next_run_cleans_up"],
    ),
    Mutant(
        "completeness: a file's size is not checked",
        ENGINE + "catalog.py",
        '        elif have.size != entry["size"]:',
        "        elif False:",
        [HARD + "test_a_set_with_a_missing_or_truncated_dump_is_damaged_and_never_counts"],
    ),
    Mutant(
        "retention: a run's own set may be pruned",
        ENGINE + "retention.py",
        "        if facts.protected:",
        "        if False:",
        ["tests/unit/test_retention.py", HARD + "test_sets_from_the_future_never_evict_new_sets_nor_pass_for_fresh"],
    ),
    Mutant(
        "retention: sets from the future count as backups",
        ENGINE + "retention.py",
        "    return moment - now > FUTURE_TOLERANCE",
        "    return False",
        ["tests/unit/test_retention.py", HARD + "test_sets_from_the_future_never_evict_new_sets_nor_pass_for_fresh"],
    ),
    Mutant(
        "retention: a pinned set may be pruned",
        ENGINE + "retention.py",
        "        if facts.pinned:",
        "        if False:",
        [TIERS + "test_a_pinned_set_stays_whatever_else_it_is", RETENTION + "test_pin_list_prune_unpin_on_real_sets"],
    ),
    Mutant(
        "retention: tiers count UTC days whatever the time zone",
        ENGINE + "retention.py",
        '    if name.upper() in ("UTC", "ETC/UTC"):',
        "    if True:",
        [TIERS + "test_the_time_zone_decides_where_a_day_and_a_week_end", RETENTION + "test_tiers_on_real_sets_follow_the_calendar_of_the_time_zone"],
    ),
    Mutant(
        "retention: a set that failed verification fills a tier",
        ENGINE + "retention.py",
        "        candidates = [facts for facts in group if not facts.known_bad]",
        "        candidates = list(group)",
        [TIERS + "test_failed_sets_never_fill_a_tier_and_pins_always_stay"],
    ),
    Mutant(
        "retention: an unfilled tier forgets the oldest set",
        ENGINE + "retention.py",
        "    if count and candidates and len(picks) < count",
        "    if False and count and candidates and len(picks) < count",
        [TIERS + "test_an_unfilled_tier_keeps_the_oldest_set_too"],
    ),
    Mutant(
        "fsio: a shared existing directory is accepted",
        ENGINE + "fsio.py",
        "    problem = existing_dir_problem(info, os.geteuid())\n    if problem:",
        "    problem = existing_dir_problem(info, os.geteuid())\n    if False:",
        [HARD + "test_existing_shared_or_linked_directories_are_refused_never_chmoded"],
    ),
    Mutant(
        "verify --all: only the newest set",
        ENGINE + "catalog.py",
        "        return [backup for backup in sets if backup.manifest_trusted]",
        "        return [backup for backup in sets if backup.manifest_trusted][:1]",
        [SAFETY + "test_verify_all_checks_every_set_and_fails_on_an_old_bad_one"],
    ),
    Mutant(
        "scheduled drill: the scratch database stays after the drill",
        ENGINE + "drill_steps.py",
        "    if run.target and not run.kept:",
        "    if False:",
        ["tests/engine/test_scheduled_drill.py::test_the_drill_command_restores_proves_smoke_tests_records_and_cleans_up"],
    ),
    Mutant(
        "scheduled drill: a stale newest set is drilled anyway",
        ENGINE + "drill_steps.py",
        "    if wanted is None and config.max_age_hours and age_hours > config.max_age_hours:",
        "    if False:",
        ["tests/engine/test_scheduled_drill.py::test_a_stale_newest_set_fails_the_drill_before_any_restore"],
    ),
    # Issue 18, slice "restore proofs that do not lie, and the seed's command for an ordinary Django role".
    Mutant(
        "fidelity: an ACL equal to its owner's default fails the proof",
        ENGINE + "fingerprint.py",
        '            if field == "acl" and _acl_as_compared(key, want, source_major) == _acl_as_compared(key, got, target_major):',
        "            if False:",
        [
            FIDELITY + "test_an_acl_equal_to_the_owners_default_does_not_fail_the_restore_proof",
            FINGERPRINT + "test_an_acl_equal_to_the_owners_default_is_the_default",
        ],
    ),
    Mutant(
        "fidelity: the owner's default ACL of a major is not the server's acldefault",
        ENGINE + "fingerprint.py",
        "if major is not None and major >= since)",
        "if major is not None and major > since)",
        [FINGERPRINT + "test_an_acl_equal_to_the_owners_default_is_the_default", FIDELITY + "test_the_owner_default_acls_are_the_servers_own_acldefault"],
    ),
    Mutant(
        "fidelity: column privileges not recorded",
        ENGINE + "fingerprint.py",
        '            "column_acls": {column: _acl(value) for column, value in sorted((column_acls or {}).items())},',
        '            "column_acls": {},',
        [FIDELITY + "test_the_fingerprint_records_column_privileges_and_a_lost_one_fails"],
    ),
    Mutant(
        "fidelity: column privileges not compared",
        ENGINE + "fingerprint.py",
        '            if field in ("schema", "table", "for_role", "increment"):',
        '            if field in ("schema", "table", "for_role", "increment", "column_acls"):',
        [FINGERPRINT + "test_column_privileges_are_compared"],
    ),
    Mutant(
        "fidelity: an extension version on the same major is an upgrade note",
        ENGINE + "fingerprint.py",
        "    if not majors or majors[0] >= majors[1]:",
        "    if not majors or majors[0] > majors[1]:",
        [FINGERPRINT + "test_an_extension_version_differs_on_the_same_major_or_a_downgrade"],
    ),
    Mutant(
        "partial restore: a sequence pulled in as a dependency loses its value",
        ENGINE + "toc.py",
        'DECORATIONS = ("ACL", "COMMENT", "SEQUENCE SET")',
        'DECORATIONS = ("ACL", "COMMENT")',
        [FIDELITY + "test_a_partial_restore_keeps_the_value_of_a_sequence_it_pulls_in"],
    ),
    Mutant(
        "globals: a role that may not read password hashes fails the backup",
        ENGINE + "backup.py",
        "    if wanted and not readable:",
        "    if False:",
        [FIDELITY + "test_a_role_that_owns_its_database_backs_it_up_and_verify_restore_names_createdb"],
    ),
    Mutant(
        "verify --restore: a role without CREATEDB is not told so",
        ENGINE + "db.py",
        '        if "permission denied to create database" in str(exc):',
        "        if False:",
        [FIDELITY + "test_a_role_that_owns_its_database_backs_it_up_and_verify_restore_names_createdb"],
    ),
    Mutant(
        "django: --no-prune ignored",
        ENGINE + "contrib/django/command.py",
        '        if action == "backup" and options.get("no_prune"):',
        "        if False:",
        [DJANGO + "test_retention_from_the_seed_settings_and_no_prune"],
    ),
    Mutant(
        "django: DATABASES OPTIONS do not reach pg_dump",
        ENGINE + "contrib/django/command.py",
        "            _environment(libpq_env),",
        "            _environment({}),",
        [DJANGO + "test_manage_py_in_a_process_keeps_the_password_off_every_command_line"],
    ),
    Mutant(
        "django: pgdrill's own psycopg defaults override DATABASES OPTIONS",
        ENGINE + "db.py",
        "if not environ.get(LIBPQ_VARIABLES[key])}",
        "if True}",
        [
            DJANGO + "test_options_reach_libpq_and_win_over_pgdrills_own_defaults",
            DJANGO + "test_manage_py_in_a_process_keeps_the_password_off_every_command_line",
        ],
    ),
    # Issue 18, engine hardening (manifests, work files, keys, dates, metrics).
    Mutant(
        "hardening: manifest field types not checked",
        ENGINE + "manifest.py",
        '    found.extend(schema_problems(document, SCHEMA, ""))',
        "    pass",
        [CORPUS + "test_manifest_fields_of_the_wrong_type_or_date_make_the_set_damaged_everywhere"],
    ),
    Mutant(
        "hardening: impossible manifest dates accepted",
        ENGINE + "manifest.py",
        "        return moment.tzinfo is not None and EARLIEST <= moment <= LATEST",
        "        return moment.tzinfo is not None",
        [CORPUS + "test_manifest_fields_of_the_wrong_type_or_date_make_the_set_damaged_everywhere"],
    ),
    Mutant(
        "hardening: an identity file others can read is used",
        ENGINE + "encryption.py",
        "    if mode & 0o077:",
        "    if False:",
        ["tests/unit/test_encryption.py::test_an_identity_file_others_can_read_or_write_is_refused_as_ssh_refuses_its_keys"],
    ),
    Mutant(
        "hardening: the decoded work file stays on disk",
        ENGINE + "archives.py",
        "            os.unlink(plain)",
        "            pass",
        ["tests/offhost/test_encrypted_sets.py::test_kill_9_of_verify_restore_leaves_no_plaintext_and_the_next_run_removes_its_work_directory"],
    ),
    Mutant(
        "hardening: work directories of killed runs stay",
        ENGINE + "fsio.py",
        "    remove_stale_work_dirs(parent, kind)",
        "    pass",
        ["tests/offhost/test_encrypted_sets.py::test_kill_9_of_verify_restore_leaves_no_plaintext_and_the_next_run_removes_its_work_directory"],
    ),
    Mutant(
        "hardening: metrics from the newest set, complete or not",
        ENGINE + "metrics.py",
        '    newest = next((entry for entry in sets if entry.get("state") == "complete"), None)',
        "    newest = next(iter(sets), None)",
        ["tests/unit/test_metrics_report.py::test_last_success_and_sizes_come_from_the_newest_complete_set_not_the_newest_set"],
    ),
    Mutant(
        "hardening: the metrics file is rewritten in place",
        ENGINE + "fsio.py",
        "            os.replace(temp, os.path.join(directory, name))",
        '            open(os.path.join(directory, name), "w").write(open(temp).read()); os.unlink(temp)',
        ["tests/unit/test_metrics_report.py::test_the_metrics_file_is_replaced_never_rewritten_in_place"],
    ),
    Mutant(
        "hardening: only a readable pin file pins",
        ENGINE + "catalog.py",
        '        return any(entry.kind == "pin" for entry in self.files)',
        '        return isinstance(self.pin, dict) and isinstance(self.pin.get("reason"), str)',
        [RETENTION + "test_an_empty_or_unreadable_pin_file_still_pins_its_set"],
    ),
    # --- issue 18, slice "the remote is untrusted input" ---------------------------------------
    Mutant(
        "remote: names matched with a trailing newline",
        ENGINE + "naming.py",
        "match = FINAL_RE.fullmatch(name)",
        "match = re.match(_FINAL + '$', name)",
        [
            "tests/unit/test_naming.py::test_names_are_matched_whole_a_trailing_newline_is_not_a_match",
            UNTRUSTED + "test_a_key_ending_in_a_newline_is_foreign_and_crashes_nothing",
        ],
    ),
    Mutant(
        "remote: push owes only sets newer than the newest remote stamp",
        ENGINE + "offsite_sets.py",
        "            candidates.append(backup)",
        "            candidates.extend([backup] if backup.id in on_remote or backup.stamp > max([e.stamp for e in on_remote.values() if e.complete] or ['']) else [])",
        [
            "tests/unit/test_remote.py::test_owed_sets_ignore_the_stamps_a_planted_future_set_stops_nothing",
            UNTRUSTED + "test_a_set_dated_2099_planted_on_the_remote_stops_no_later_upload",
        ],
    ),
    Mutant(
        "remote: the next backup does not finish a set the remote holds part of",
        ENGINE + "offsite_sets.py",
        "    absent = [backup for backup in candidates if backup.id not in on_remote]",
        "    absent = list(candidates)",
        ["tests/unit/test_remote.py::test_owed_sets_ignore_the_stamps_a_planted_future_set_stops_nothing"],
    ),
    Mutant(
        "remote: a same-name, same-size object is taken for the file",
        ENGINE + "offsite/push.py",
        "    junk = [problem for problem in",
        "    junk = [] and [problem for problem in",
        [UNTRUSTED + "test_a_junk_object_of_the_right_size_is_not_taken_for_the_file"],
    ),
    Mutant(
        "remote: complete on the remote from the manifest alone",
        ENGINE + "offsite_sets.py",
        '    return "damaged"\n',
        '    return "complete"\n',
        [UNTRUSTED + "test_a_pushed_set_whose_dump_was_deleted_is_not_complete_there"],
    ),
    Mutant(
        "remote: retention ignores what verify --remote proved bad",
        ENGINE + "offsite_sets.py",
        "        info.verification = records.get(info.set_id)",
        "        info.verification = None",
        [UNTRUSTED + "test_remote_retention_honours_what_verify_remote_proved_bad"],
    ),
    Mutant(
        "remote: pull without a set does not fall back from a corrupt newest set",
        ENGINE + "offsite/pull.py",
        "            except Mismatch as exc:",
        "            except KeyError as exc:",
        [UNTRUSTED + "test_pull_without_a_set_falls_back_to_the_newest_set_that_verifies"],
    ),
    Mutant(
        "remote: pull does not check the manifest's sha256 on arrival",
        ENGINE + "offsite/pull.py",
        '        return remote.get(entry["name"], directory, expected_sha256=entry["sha256"], expected_size=entry["size"])',
        '        return remote.get(entry["name"], directory, expected_size=entry["size"])',
        [UNTRUSTED + "test_pull_checks_every_file_against_the_manifest_on_arrival"],
    ),
    Mutant(
        "remote: remote manifests skip the local validity checks",
        ENGINE + "offsite/base.py",
        "                problems = manifest_mod.problems(document, prefix, entry.stamp)",
        "                problems = []",
        [UNTRUSTED + "test_remote_manifests_pass_the_same_checks_as_local_ones"],
    ),
    Mutant(
        "remote: a damaged remote set is pruned as debris",
        ENGINE + "offsite_sets.py",
        "        return bool(self.problems)",
        "        return False",
        [UNTRUSTED + "test_a_damaged_remote_set_is_kept_for_a_person_not_pruned_as_debris"],
    ),
    Mutant(
        "remote: prune deletes data files before the manifest",
        ENGINE + "sets.py",
        "    return sorted(names, key=lambda name: 0 if is_manifest(name) else 1)",
        "    return sorted(names)",
        [UNTRUSTED + "test_remote_prune_deletes_each_manifest_first"],
    ),
    Mutant(
        "remote: hidden object names accepted",
        ENGINE + "storage/__init__.py",
        '    return not part or part.startswith(".") or any(ord(char) < 32 for char in part)',
        "    return not part or any(ord(char) < 32 for char in part)",
        ["tests/unit/test_remote.py::test_remote_object_names_are_plain_file_names"],
    ),
    # Issue 18, slice "drills, pings, roles and the new user's path".
    Mutant(
        "ping: no wall-clock deadline, only the socket's per-read timeout",
        ENGINE + "ping.py",
        "    worker.join(timeout)",
        "    worker.join()",
        ["tests/unit/test_ping.py::test_a_server_that_trickles_its_answer_is_cut_at_the_deadline_by_the_wall_clock"],
    ),
    Mutant(
        "scheduled drill: a damaged set is drilled anyway (no verification on arrival)",
        ENGINE + "drill_steps.py",
        "    if words is not None:",
        "    if False:",
        ["tests/engine/test_scheduled_drill.py::test_a_damaged_set_fails_the_drill_on_arrival_before_any_scratch_database"],
    ),
    Mutant(
        "scheduled drill: keep = on_failure keeps the scratch database of a passed drill",
        ENGINE + "drill.py",
        '(keep == "on_failure" and not passed)',
        '(keep == "on_failure")',
        ["tests/engine/test_scheduled_drill.py::test_keep_on_failure_drops_the_scratch_database_of_a_passed_drill_and_no_smoke_check_is_said"],
    ),
    Mutant(
        "drill: a failing post-restore command passes",
        ENGINE + "drill.py",
        "                ok = done.returncode == 0",
        "                ok = True",
        ["tests/engine/test_scheduled_drill.py::test_a_failing_post_restore_command_fails_the_drill"],
    ),
    Mutant(
        "scheduled drill: a drill whose record cannot be written still passes",
        ENGINE + "scheduled.py",
        '    return (False, "record", f"cannot record the drill: {problem}") if passed else (passed, failed_step, error)',
        "    return (passed, failed_step, error)",
        ["tests/engine/test_scheduled_drill.py::test_a_drill_whose_log_line_cannot_be_written_fails_everywhere"],
    ),
    Mutant(
        "drill evidence: two drills in the same second share one record",
        ENGINE + "drill.py",
        '    drill_id = re.sub(r"[^A-Za-z0-9]", "", str(record.get("drill_id") or ""))',
        '    drill_id = ""',
        ["tests/engine/test_scheduled_drill.py::test_two_drills_in_the_same_second_keep_two_evidence_records_and_two_log_lines"],
    ),
    Mutant(
        "drill log: the restore's own proofs counted as smoke checks",
        ENGINE + "drill.py",
        '    if record.get("outcome") == "passed" and not any(check.get("kind") in SMOKE_KINDS for check in checks):',
        "    if False:",
        ["tests/engine/test_scheduled_drill.py::test_keep_on_failure_drops_the_scratch_database_of_a_passed_drill_and_no_smoke_check_is_said"],
    ),
    Mutant(
        "verify --restore: the scratch proof needs the configured database to exist",
        ENGINE + "db.py",
        "    for name in dict.fromkeys((preferred, *MAINTENANCE_DATABASES)):",
        "    for name in (preferred,):",
        ["tests/engine/test_new_user_path.py::test_verify_restore_on_a_new_host_does_not_need_the_configured_database"],
    ),
    Mutant(
        "config: a config without database sections speaks as 'default'",
        ENGINE + "config.py",
        "        config = replace(config, label=prefix)  # a config without [database NAME] sections: its messages name the series",
        "        pass",
        ["tests/engine/test_new_user_path.py::test_a_config_without_database_sections_names_the_series_in_its_messages_not_default"],
    ),
    # Issue 18, engine hardening (second slice): media members, age mid-dump, encrypted gzip media,
    # calendar buckets in retention_timezone, failed pushes in the metrics, E7 end to end.
    Mutant(
        "hardening2: monthly buckets in UTC, not in retention_timezone",
        ENGINE + "retention.py",
        '        return moment.astimezone(tz).strftime("%Y-%m")',
        '        return moment.astimezone(timezone.utc).strftime("%Y-%m")',
        [TIERS + "test_monthly_and_yearly_buckets_end_at_midnight_in_the_retention_timezone", TIERS + "test_a_month_boundary_far_from_utc"],
    ),
    Mutant(
        "hardening2: yearly buckets in UTC, not in retention_timezone",
        ENGINE + "retention.py",
        '        return moment.astimezone(tz).strftime("%Y")',
        '        return moment.astimezone(timezone.utc).strftime("%Y")',
        [TIERS + "test_monthly_and_yearly_buckets_end_at_midnight_in_the_retention_timezone"],
    ),
    Mutant(
        "hardening2: an identity file others can read is used by verify --restore",
        ENGINE + "encryption.py",
        "    problem = identity_mode_problem(path, os.stat(path).st_mode)",
        "    problem = None",
        [VERDICTS + "test_an_identity_file_others_can_read_is_refused_with_the_chmod_fix_and_blames_nothing"],
    ),
    Mutant(
        "hardening2: an identity file others can read blames the set",
        ENGINE + "encryption.py",
        '        raise PgdrillError(problem, f"chmod 600 {path}; if others could read it',
        '        raise SetDamaged(problem, f"chmod 600 {path}; if others could read it',
        [VERDICTS + "test_an_identity_file_others_can_read_is_refused_with_the_chmod_fix_and_blames_nothing"],
    ),
    Mutant(
        "hardening2: an age stage that dies mid-dump is ignored",
        ENGINE + "backup.py",
        "        sealer.close()\n        try:\n            checker.close()",
        "        sealer.abort()\n        try:\n            checker.close()",
        [SAFETY + "test_an_age_stage_that_dies_mid_dump_fails_the_backup_and_prunes_nothing"],
    ),
    Mutant(
        "hardening2: a fed pipeline's failure is not raised",
        ENGINE + "pipeline.py",
        "        self._finish()\n        if self._error:\n            raise self._error[0]",
        "        self._finish()\n        if False:\n            raise self._error[0]",
        [SAFETY + "test_an_age_stage_that_dies_mid_dump_fails_the_backup_and_prunes_nothing"],
    ),
    Mutant(
        "hardening2: an encrypted gzip media archive is not gunzipped",
        ENGINE + "archives.py",
        '    elif plain_name(name).endswith(".gz"):',
        '    elif name.endswith(".gz"):',
        ["tests/offhost/test_encrypted_sets.py::test_an_encrypted_series_with_gzip_verifies_and_restores_its_media"],
    ),
    Mutant(
        "hardening2: a backup whose push failed records a remote success",
        ENGINE + "operations.py",
        '"succeeded": None if failed or not pushed else time.time()}',
        '"succeeded": time.time()}',
        ["tests/offhost/test_push_metrics.py::test_a_failed_push_never_records_a_remote_success"],
    ),
    Mutant(
        "hardening2: a failed pgdrill-backup push records a remote success",
        ENGINE + "operations.py",
        '"succeeded": time.time() if pushed else None},',
        '"succeeded": time.time()},',
        ["tests/offhost/test_push_metrics.py::test_a_failed_push_never_records_a_remote_success"],
    ),
    Mutant(
        "hardening2: a failed push erases the last remote success",
        ENGINE + "metrics.py",
        '        if remote.get("succeeded") is not None:',
        "        if True:",
        ["tests/offhost/test_push_metrics.py::test_a_failed_push_never_records_a_remote_success"],
    ),
    Mutant(
        "hardening2: verify reads a crafted media archive without checking its members",
        ENGINE + "media.py",
        "            check_member(member, names, links)\n            members += 1",
        "            members += 1",
        [MEDIA + "test_a_crafted_media_archive_is_refused_naming_the_member_and_why"],
    ),
    Mutant(
        "hardening2: restore-media extracts before checking every member",
        ENGINE + "archives.py",
        "    read_media(path, identity)\n    os.makedirs(destination, mode=0o700, exist_ok=True)",
        "    os.makedirs(destination, mode=0o700, exist_ok=True)",
        [MEDIA + "test_a_crafted_media_archive_is_refused_naming_the_member_and_why"],
    ),
    Mutant(
        "hardening2: a media member with '..' in its path is accepted",
        ENGINE + "media.py",
        '    if ".." in name.split("/"):',
        "    if False:",
        [MEDIA + "test_a_crafted_media_archive_is_refused_naming_the_member_and_why"],
    ),
    Mutant(
        "hardening2: a media member under an earlier symbolic link is accepted",
        ENGINE + "media.py",
        "        links.add(normal)",
        "        pass",
        [MEDIA + "test_a_crafted_media_archive_is_refused_naming_the_member_and_why", MEDIA + "test_the_member_rule"],
    ),
    # Issue 18, slice "drills, roles and the new user's path" (what was left: drill2).
    Mutant(
        "restore-media: DIR gets the media root's own name inside it, not its files",
        ENGINE + "archives.py",
        "        MEDIA_TOP_AS_DESTINATION,\n",
        "",
        ["tests/engine/test_new_user_path.py::test_restore_media_to_dir_puts_what_media_root_held_into_dir"],
    ),
    Mutant(
        "scheduled drill: a kept copy of the set keeps the globals (the source's password hashes)",
        ENGINE + "drill.py",
        'if isinstance(entry, dict) and entry.get("kind") == "globals"]',
        "if False]",
        ["tests/engine/test_scheduled_drill.py::test_keep_always_keeps_the_fetched_copy_without_the_globals_and_says_where"],
    ),
    Mutant(
        "drill log: a kept scratch database and kept copies are not said",
        ENGINE + "drill.py",
        "        *([kept] if kept else []),\n",
        "",
        [
            "tests/engine/test_scheduled_drill.py::test_keep_always_keeps_the_fetched_copy_without_the_globals_and_says_where",
            "tests/ansible/test_drill.py::test_passing_drill_can_keep_its_database_for_inspection",
        ],
    ),
    Mutant(
        "drill log: a line without the drill's id (a repeated drill of the same set can lose its line)",
        ENGINE + "drill.py",
        """        *([f"drill {record['drill_id']}"] if record.get("drill_id") else []),""",
        "",
        ["tests/ansible/test_drill.py::test_a_repeated_drill_of_the_same_set_adds_a_line_of_its_own_to_the_drill_log"],
    ),
    Mutant(
        "drill role: a kept copy of the set keeps the globals",
        "roles/pgdrill_drill/tasks/logical.yml",
        'loop: "{{ __pgdrill_drill_kept_places | product(__pgdrill_drill_kept_left_out) | list }}"',
        "loop: []",
        ["tests/ansible/test_drill.py::test_passing_drill_can_keep_its_database_for_inspection"],
    ),
    Mutant(
        "backup role: the folder of the command is not created",
        "roles/pgdrill_backup/tasks/engine.yml",
        "  when: not __pgdrill_backup_command_dir.stat.exists",
        "  when: false",
        ["tests/ansible/test_backup_role.py::test_backup_role_creates_the_commands_folder_and_check_mode_predicts_it"],
    ),
    # --- issue 18, slice "the remote is untrusted input", the rest (items 12, 14, 15) ----------------
    Mutant(
        "remote: pull into an encrypted series takes a foreign set",
        ENGINE + "offsite/pull.py",
        "    if not recipients:\n        return None  # a plaintext series: nothing to compare with",
        "    if True:\n        return None  # a plaintext series: nothing to compare with",
        [REMOTE2_UNIT + "test_a_foreign_set_for_an_encrypted_series", REMOTE2 + "test_pull_into_an_encrypted_series_refuses_a_foreign_set_unless_asked"],
    ),
    Mutant(
        "remote: another host's sets in the series go unwarned",
        ENGINE + "offsite/push.py",
        "        if isinstance(host, str) and host not in ours:",
        "        if False:",
        [REMOTE2 + "test_a_push_warns_when_another_host_writes_the_same_remote_series"],
    ),
    Mutant(
        "role: the remote path without the host",
        "roles/pgdrill_backup/templates/etc/pgdrill/pgdrill.conf.j2",
        "{{ '' if pgdrill_backup_remote_host_folder | length == 0 else",
        "{{ '' if true else",
        ["tests/unit/test_role_remote_path.py"],
    ),
    Mutant(
        "remote: a push aborts other series' interrupted uploads",
        ENGINE + "storage/__init__.py",
        'if getattr(parse_file_name(folder_of(name)), "prefix", None) == prefix and now - started > age',
        "if now - started > age",
        [
            REMOTE2_UNIT + "test_stale_uploads_are_the_series_own_and_older_than_a_day",
            REMOTE2 + "test_each_push_aborts_the_series_stale_multipart_uploads_only",
        ],
    ),
    Mutant(
        "remote: a push aborts uploads in progress",
        ENGINE + "storage/__init__.py",
        'if getattr(parse_file_name(folder_of(name)), "prefix", None) == prefix and now - started > age',
        'if getattr(parse_file_name(folder_of(name)), "prefix", None) == prefix',
        [
            REMOTE2_UNIT + "test_stale_uploads_are_the_series_own_and_older_than_a_day",
            REMOTE2 + "test_each_push_aborts_the_series_stale_multipart_uploads_only",
        ],
    ),
    Mutant(
        "remote: a push never aborts interrupted uploads",
        ENGINE + "offsite/push.py",
        "    aborted = [] if dry_run else _abort_stale_uploads(config, remote, now)",
        "    aborted = []",
        [REMOTE2 + "test_each_push_aborts_the_series_stale_multipart_uploads_only"],
    ),
    Mutant(
        "overlap: a dump that fails leaves its upload on the remote",
        ENGINE + "backup.py",
        "                self.early.abort()  # nothing of the set on the remote either",
        "                pass",
        [OVERLAP + "test_the_dump_goes_up_while_pg_dump_writes_and_nothing_shows_unless_the_set_is_final"],
    ),
    Mutant(
        "overlap: the bytes sent beside the dump are not checked against the file",
        ENGINE + "storage/s3_parts.py",
        "        if self.sender.sent != self._final or self.sender.whole.hexdigest() != self._sha256:",
        "        if False:",
        ["tests/offhost/test_remote_s3.py::test_an_upload_beside_its_writer_exists_only_once_its_bytes_are_the_files"],
    ),
    Mutant(
        "overlap: the upload beside the dump completes before the set is final",
        ENGINE + "offsite/early.py",
        "            upload.ended(writer.size, writer.sha256)",
        "            upload.ended(writer.size, writer.sha256), self.complete()",
        [OVERLAP + "test_the_dump_goes_up_while_pg_dump_writes_and_nothing_shows_unless_the_set_is_final"],
    ),
    Mutant(
        "overlap: a directory set's member upload completes as soon as it is sealed, before the set is final",
        ENGINE + "offsite/early.py",
        '            upload.ended(member["size"], member["sha256"])',
        '            upload.ended(member["size"], member["sha256"]), remote.finish_while_written(upload, name)',
        [OVERLAP + "test_a_directory_sets_members_go_up_as_they_are_sealed_and_show_only_once_the_set_is_final"],
    ),
    Mutant(
        "overlap: a failed run leaves its member uploads beside the dump incomplete on the remote",
        ENGINE + "offsite/early.py",
        "                self.remote.abort_while_written(upload, name)",
        "                pass",
        [OVERLAP + "test_a_directory_sets_members_go_up_as_they_are_sealed_and_show_only_once_the_set_is_final"],
    ),
    Mutant(
        "overlap: a storage failure of an upload beside the dump fails the backup (instead of the push sending what is missing)",
        ENGINE + "offsite/early.py",
        "        except Mismatch:",
        "        except Exception:",
        [OVERLAP + "test_a_directory_sets_members_go_up_as_they_are_sealed_and_show_only_once_the_set_is_final"],
    ),
    Mutant(
        "overlap: the uploads of a directory set's members do not share the parts in flight (memory and connections grow with the members)",
        ENGINE + "storage/s3_parts.py",
        "        slots = self._slots",
        "        slots = None",
        ["tests/offhost/test_remote_s3.py::test_the_members_uploaded_beside_the_dump_share_two_parts_in_flight_and_follow_their_directorys_rename"],
    ),
    Mutant(
        "remote: Object Lock days on a bucket without Object Lock not named",
        ENGINE + "storage/s3.py",
        '        if (answer.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") != "Enabled":',
        "        if False:",
        [REMOTE2 + "test_object_lock_days_on_a_bucket_without_object_lock_is_named"],
    ),
    Mutant(
        "remote: an access denied delete counts as kept (locked)",
        ENGINE + "storage/s3.py",
        '                    if code in ("AccessDenied", "403") and self._locked(key, version):',
        '                    if code in ("AccessDenied", "403"):',
        [REMOTE2 + "test_put_only_credentials_push_but_a_denied_delete_fails_the_remote_prune"],
    ),
    Mutant(
        "remote: the endpoint's userinfo in the S3 client's messages",
        ENGINE + "storage/s3.py",
        '        endpoint = without_userinfo(self.endpoint_url) if self.endpoint_url else "AWS S3"',
        '        endpoint = self.endpoint_url or "AWS S3"',
        [REMOTE2 + "test_the_s3_client_never_puts_an_endpoints_userinfo_in_a_message"],
    ),
    Mutant(
        "config: an endpoint with credentials is repeated in the message",
        ENGINE + "rules.py",
        '    if "@" in value:  # user:secret@host',
        "    if False:  # user:secret@host",
        [REMOTE2 + "test_a_secret_in_the_endpoint_url_is_refused_at_load_and_never_echoed"],
    ),
    Mutant(
        "remote: downloads readable by others",
        ENGINE + "fsio.py",
        "FILE_MODE = 0o600",
        "FILE_MODE = 0o644",
        [REMOTE2 + "test_every_file_a_pull_writes_is_private_whatever_the_umask"],
    ),
    Mutant(
        "remote: a set only the remote holds cannot be pinned",
        ENGINE + "operations.py",
        "        if config.remote and not _held_here(series, wanted):",
        "        if False:",
        [REMOTE2 + "test_a_set_only_the_remote_holds_can_be_pinned_and_remote_retention_keeps_it"],
    ),
    Mutant(
        "remote: unpin says unpinned while Object Lock keeps the remote pin",
        ENGINE + "operations.py",
        '        if unpin and outcome.get("remote") == f"remote pin {LOCKED}":',
        "        if False:",
        [REMOTE2 + "test_unpin_never_says_unpinned_while_an_object_locked_remote_pin_stays"],
    ),
    Mutant(
        "backup: SIGTERM during the push is no failed run",
        ENGINE + "operations.py",
        "    except BaseException as exc:  # a failure, or SIGTERM",
        "    except PgdrillError as exc:  # a failure, or SIGTERM",
        [REMOTE2 + "test_sigterm_during_the_push_of_a_backup_fails_the_ping_and_the_metrics"],
    ),
    # --- issue 20, slice "the physical drill" (item 5) ------------------------------------------------
    Mutant(
        "physical drill: a latest drill that stopped at a gap in the archive passes",
        ENGINE + "physical_steps.py",
        "    if gap:",
        "    if False:",
        [PHYSICAL + "test_a_latest_drill_over_a_gap_in_the_archive_fails_naming_it"],
    ),
    Mutant(
        "physical drill: tablespaces restored to the source's paths",
        ENGINE + "pgbackrest.py",
        "    if tablespaces_under:",
        "    if False:",
        [PHYSICAL + "test_drills_to_a_point_a_time_and_the_latest_wal_prove_what_they_restored"],
    ),
    Mutant(
        "physical drill: the leftover sweep follows a planted symlink",
        ENGINE + "throwaway.py",
        "        info = os.lstat(path)",
        "        info = os.stat(path)",
        [PHYSICAL + "test_directories_left_by_a_killed_drill_are_swept_after_a_day_unless_kept"],
    ),
    Mutant(
        "physical drill: unlogged tables counted against the point",
        ENGINE + "pitr_drill.py",
        "    names = sorted((set(expected) | set(actual)) - set(unlogged))",
        "    names = sorted(set(expected) | set(actual))",
        [PITR_UNIT + "test_unlogged_tables_are_not_counted_against_a_point"],
    ),
    Mutant(
        "physical drill: staging binaries of another major version restore anyway",
        ENGINE + "pitr_drill.py",
        "    if staging == repository:",
        "    if True:",
        [
            PITR_UNIT + "test_the_repository_major_and_the_refusal_of_another_one",
            PHYSICAL + "test_a_staging_host_of_another_major_version_is_refused_before_any_restore",
        ],
    ),
    Mutant(
        "physical drill: a restored database whose fingerprint differs from the point's passes",
        ENGINE + "physical_steps.py",
        '            problems += [f"fingerprint: {difference.describe()}" for difference in differences[:20]]',
        "            problems += []",
        [PHYSICAL + "test_a_point_whose_record_does_not_match_fails_the_drill"],
    ),
    Mutant(
        "physical drill: a refused login is waited for until the recovery timeout",
        ENGINE + "throwaway.py",
        '    return problem.startswith(("cannot reach the PostgreSQL server", "cannot connect to"))',
        "    return True",
        ["tests/engine/test_recovery_watch_login.py"],
    ),
    Mutant(
        "physical drill: amcheck's failure on a damaged index is not a problem",
        ENGINE + "physical_steps.py",
        '                problems.append(f"amcheck: index {index}: {str(exc).strip()}")',
        "                pass",
        ["tests/engine/test_amcheck_finds_corruption.py::test_amcheck_names_a_damaged_index_and_passes_healthy_ones"],
    ),
    Mutant(
        "physical drill: the logical set and the physical restore are not compared",
        ENGINE + "physical_steps.py",
        "    different = [name for name in sorted(set(physical) | set(logical)) if physical.get(name) != logical.get(name)]",
        "    different = []",
        [PHYSICAL + "test_a_set_target_restores_the_logical_set_beside_the_physical_one_and_they_must_agree"],
    ),
    Mutant(
        "physical drill: the throwaway server archives like its source",
        ENGINE + "pitr_drill.py",
        '        "archive_mode": "off",',
        '        "archive_mode": "on",',
        [PITR_UNIT + "test_the_throwaway_server_listens_only_on_its_own_socket_and_never_archives"],
    ),
    Mutant(
        "physical drill: a latest drill's RPO counts only to the newest commit recovered, not the source's",
        ENGINE + "pitr_drill.py",
        '        seconds = (_moment(source["newest_commit"]) - _moment(reached_commit)).total_seconds()',
        "        seconds = 0.0",
        [PITR_UNIT + "test_the_rpo_says_its_basis_and_never_invents_a_figure"],
    ),
    Mutant(
        "physical drill: a point older than the newest backup is restored from the newest backup",
        ENGINE + "pitr_drill.py",
        "    return before[-1]",
        "    return None",
        [
            PITR_UNIT + "test_a_point_is_restored_from_the_newest_backup_that_ended_before_it",
            PHYSICAL + "test_a_point_whose_record_does_not_match_fails_the_drill",
        ],
    ),
    Mutant(
        "pitr: a backup with pitr_stanza marks no restore point",
        ENGINE + "backup.py",
        "            if config.pitr_stanza and config.pitr_mark:",
        "            if False:",
        [PITR + "test_a_logical_backup_dumps_in_its_restore_points_snapshot_and_a_physical_restore_there_holds_the_set"],
    ),
    Mutant(
        "pitr: a point record others can read",
        ENGINE + "pitr.py",
        """        directory, name, json.dumps(record, indent=2, sort_keys=True) + "\\n", "the restore point record", "make the backup directory the backup user's", 0o600""",
        """        directory, name, json.dumps(record, indent=2, sort_keys=True) + "\\n", "the restore point record", "make the backup directory the backup user's", 0o644""",
        [PITR + "test_a_logical_backup_dumps_in_its_restore_points_snapshot_and_a_physical_restore_there_holds_the_set"],
    ),
    Mutant(
        "pitr-backup: a failed pgBackRest backup exits 0",
        ENGINE + "operations.py",
        "        raise failure",
        "        pass",
        [PITR + "test_pitr_backup_runs_from_flags_alone_as_the_cluster_user_with_metrics_and_pings"],
    ),
    Mutant(
        "pitr-status: a stanza whose archiving is off is ok",
        ENGINE + "operations.py",
        "            status.update(ok=False, status=exc.message)",
        "            status.update(status=exc.message)",
        [PITR + "test_pgdrill_info_reports_the_stanza_of_a_database_with_pitr_and_says_why_when_it_cannot"],
    ),
    # --- issue 20, slice "disaster recovery to the latest point" (item 6) ------------------------------
    Mutant(
        "pitr restore: an existing data directory is restored over without the confirmation",
        ENGINE + "pitr_restore.py",
        "    if not confirm:",
        "    if False:",
        [
            DR_UNIT + "test_an_existing_data_directory_is_replaced_only_when_the_confirmation_names_it",
            DR + "test_the_source_destroyed_restore_database_brings_back_every_committed_transaction_and_its_guard_holds",
        ],
    ),
    Mutant(
        "pitr restore: a confirmation naming another directory replaces this one",
        ENGINE + "pitr_restore.py",
        "    if confirm and os.path.normpath(confirm) != os.path.normpath(data_dir):",
        "    if False:",
        [
            DR_UNIT + "test_an_existing_data_directory_is_replaced_only_when_the_confirmation_names_it",
            DR + "test_the_source_destroyed_restore_database_brings_back_every_committed_transaction_and_its_guard_holds",
        ],
    ),
    Mutant(
        "pitr restore: check mode restores",
        ENGINE + "pitr_restore.py",
        "    if check:",
        "    if False:",
        [DR + "test_the_source_destroyed_restore_database_brings_back_every_committed_transaction_and_its_guard_holds"],
    ),
    Mutant(
        "physical restore: the server is not waited for until it is promoted",
        ENGINE + "physical_steps.py",
        "    server.wait_promoted(timeout)",
        "    pass",
        [DR + "test_the_source_destroyed_restore_database_brings_back_every_committed_transaction_and_its_guard_holds"],
    ),
    Mutant(
        "pitr restore: a named systemd unit this host lacks is skipped, the server left under pg_ctl",
        ENGINE + "pitr_restore.py",
        "    if optional:",
        "    if True:",
        [DR_UNIT + "test_the_restored_server_goes_to_a_unit_systemd_has_and_a_named_unit_it_lacks_is_refused"],
    ),
    Mutant(
        "pitr: pgBackRest given --config alone never reads the secrets in conf.d",
        ENGINE + "pgbackrest.py",
        "    return directory if os.path.isdir(directory) else None",
        "    return None",
        ["tests/pitr/test_pgbackrest_config_include.py::test_argv_makes_pgbackrest_read_the_secrets_in_conf_d_beside_the_config"],
    ),
    Mutant(
        "pitr role: a setting waiting for a restart is taken as not written (ALTER SYSTEM on every run)",
        "roles/pgdrill_pitr/vars/main.yml",
        "WHERE f.name = w.name ORDER BY f.seqno DESC LIMIT 1",
        "WHERE f.name = w.name AND f.error IS NULL ORDER BY f.seqno DESC LIMIT 1",
        ["tests/pitr/test_pitr_role_settings.py::test_archiving_settings_say_what_to_set_and_what_needs_a_restart"],
    ),
    Mutant(
        "pitr role: archiving counted as running when only written to the files",
        "roles/pgdrill_pitr/vars/main.yml",
        "FILTER (WHERE context = 'postmaster' AND running <> ALL (accepted))",
        "FILTER (WHERE context = 'postmaster' AND configured <> ALL (accepted))",
        ["tests/pitr/test_pitr_role_settings.py::test_archiving_settings_say_what_to_set_and_what_needs_a_restart"],
    ),
    Mutant(
        "directory sets: a member whose bytes changed passes verify",
        ENGINE + "dirsets.py",
        'if digest != member["sha256"]:',
        "if False:",
        [DIRSETS + "test_an_encrypted_directory_set_is_private_whole_verified_restored_and_any_changed_file_is_named"],
    ),
    Mutant(
        "directory sets: a file planted in the directory goes unnoticed",
        ENGINE + "dirsets.py",
        'found += [f"{directory}/{name} is not in the manifest" for name in sorted(present) if name not in wanted]',
        "found += []",
        [DIRSETS + "test_an_encrypted_directory_set_is_private_whole_verified_restored_and_any_changed_file_is_named"],
    ),
    Mutant(
        "directory sets: a failed dump leaves its partial directory",
        ENGINE + "dirsets.py",
        "shutil.rmtree(self.final_path if self.committed else self.temp_path, ignore_errors=True)",
        "pass",
        [DIRSETS + "test_directory_sets_are_pruned_and_pinned_as_one_set_and_a_failed_dump_leaves_nothing"],
    ),
    Mutant(
        "directory sets: members left unencrypted in an encrypted series",
        ENGINE + "dirsets.py",
        "commands = [[*compressor, source], *encrypt] if compressor else [[*encrypt[0], source]]",
        "commands = [[*compressor, source]] if compressor else [[*encrypt[0], source]]",
        [DIRSETS + "test_an_encrypted_directory_set_is_private_whole_verified_restored_and_any_changed_file_is_named"],
    ),
    Mutant(
        "directory sets: a partial restore of a directory set restores everything",
        ENGINE + "dirsets.py",
        "        argv = pg_restore_argv(tools, plain, dbname, jobs=jobs, use_list=use_list, **flags)",
        "        argv = pg_restore_argv(tools, plain, dbname, jobs=jobs, **flags)",
        [DIRSETS + "test_an_encrypted_directory_set_is_private_whole_verified_restored_and_any_changed_file_is_named"],
    ),
    Mutant(
        "directory sets: the drill's copy over ssh leaves a directory-format dump behind",
        ENGINE + "scheduled.py",
        '        ["scp", "-B", "-r", *options,',
        '        ["scp", "-B", *options,',
        ["tests/engine/test_scheduled_drill.py::test_the_drill_restores_a_directory_set_with_the_same_proofs_and_copies_one_over_ssh_whole"],
    ),
    Mutant(
        "directory sets on a remote: members missing or changed there go unnoticed",
        ENGINE + "offsite_sets.py",
        "            found += _directory_problems(entry, objects, where)",
        "            found += []",
        [REMOTE2_UNIT + "test_a_remote_directory_dump_is_checked_member_by_member_against_the_manifest"],
    ),
    Mutant(
        "directory sets on a remote: the S3 listing misses the members",
        ENGINE + "storage/s3.py",
        'if is_object_name(item["Prefix"][len(base) :] + "member")]',
        "if False]",
        [OFFSITE_DIRSETS + "test_an_encrypted_directory_set_goes_to_s3_member_by_member_resumes_comes_back_and_restores"],
    ),
    Mutant(
        "directory sets on a remote: a prune leaves the empty folder of an rclone remote",
        ENGINE + "offsite/prune.py",
        "                remote.remove_empty_folder(folder)",
        "                pass",
        [OFFSITE_DIRSETS + "test_a_directory_set_through_rclone_is_a_folder_of_members_comes_back_whole_and_goes_whole"],
    ),
    Mutant(
        "directory sets on a remote: a pull that failed at a member leaves its partial directory",
        ENGINE + "dirsets.py",
        "        shutil.rmtree(partial, ignore_errors=True)",
        "        pass",
        [OFFSITE_DIRSETS + "test_an_encrypted_directory_set_goes_to_s3_member_by_member_resumes_comes_back_and_restores"],
    ),
    Mutant(
        "remote prune: a locked manifest is kept while its set's unlocked files are deleted",
        ENGINE + "offsite/prune.py",
        "                break  # its files' locks may end sooner (taken when each upload began): a kept manifest keeps them all",
        "                pass",
        ["tests/offhost/test_disaster_recovery.py::test_remote_retention_never_leaves_a_locked_manifest_without_its_files"],
    ),
    Mutant(
        "drill transfer: a tar member that climbs out with '..' or is an absolute path is unpacked",
        ENGINE + "bundle.py",
        '        return f"{name!r} {problem}"',
        "        pass",
        ["tests/unit/test_bundle.py::test_a_member_that_could_write_outside_is_refused_before_anything_is_written"],
    ),
    Mutant(
        "drill transfer: a tar member that is a link is unpacked",
        ENGINE + "bundle.py",
        "if not (member.isfile() or member.isdir()):",
        "if False:",
        ["tests/unit/test_bundle.py::test_a_member_that_could_write_outside_is_refused_before_anything_is_written"],
    ),
    Mutant(
        "drill transfer: packing follows a link put in place of the set's directory (root reads what it points at)",
        ENGINE + "bundle.py",
        "below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | CLOEXEC, dir_fd=fd)",
        "below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | CLOEXEC, dir_fd=fd)",
        ["tests/unit/test_bundle.py::test_a_path_outside_the_set_or_through_a_link_is_never_read"],
    ),
    Mutant(
        "drill transfer: the tar keeps root as its owner, so only a fetch under become could read it",
        ENGINE + "bundle.py",
        "os.fchown(fd, owner.st_uid, owner.st_gid)",
        "pass",
        ["tests/ansible/test_drill.py::test_a_set_only_root_can_read_travels_as_one_tar_fetched_without_become"],
    ),
]


def copy_checkout(target: str) -> None:
    ignore = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache", ".hypothesis", "results", "*.egg-info", "drills")
    shutil.copytree(REPO, target, ignore=ignore, symlinks=True)


def run_mutant(copy: str, mutant: Mutant) -> "tuple[str, float]":
    path = os.path.join(copy, mutant.path)
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    count = source.count(mutant.original)
    if count != 1:
        return f"STALE (the original text occurs {count} times)", 0.0
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(source.replace(mutant.original, mutant.mutated))
    started = time.monotonic()
    try:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(copy, "module_utils"), os.path.join(copy, "lab")]))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests],
            cwd=copy,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
    seconds = time.monotonic() - started
    if done.returncode == 1:
        return "killed", seconds
    if done.returncode == 0:
        return "SURVIVED", seconds
    return f"ERROR (pytest exit {done.returncode}): {done.stdout.strip().splitlines()[-1:]}", seconds


def main(argv: List[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(word in m.name for word in argv)]
    work = tempfile.mkdtemp(prefix="pgdrill-mutants-")
    try:
        copy = os.path.join(work, "checkout")
        copy_checkout(copy)
        outcomes = []
        for mutant in chosen:
            outcome, seconds = run_mutant(copy, mutant)
            outcomes.append(outcome)
            print(f"{outcome:<10} {seconds:6.1f} s  {mutant.name}", flush=True)
        killed = outcomes.count("killed")
        print(f"\n{killed} of {len(chosen)} mutants killed")
        return 0 if killed == len(chosen) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
