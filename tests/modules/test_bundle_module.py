"""The pgdrill_bundle module's check mode is honest: it says it would change, refuses what the real
run would refuse, and lists the members it would write, writing nothing (real files; the drill's
transfer through the controller runs it for real in tests/ansible/test_drill.py)."""

import os


def _set(directory):
    os.makedirs(directory / "shop_db_x_utc.dir")
    (directory / "shop_manifest_x_utc.json").write_text("{}")
    (directory / "shop_db_x_utc.dir" / "toc.dat.zst").write_bytes(b"toc")
    return ["shop_manifest_x_utc.json", "shop_db_x_utc.dir/toc.dat.zst"]


def test_check_mode_says_what_packing_and_unpacking_would_do_and_refuses_what_they_would(run_module, tmp_path):
    paths = _set(tmp_path / "backups")
    archive = str(tmp_path / "set.tar")
    packed = {"state": "packed", "directory": str(tmp_path / "backups"), "paths": paths, "archive": archive}
    result, failed, _ = run_module("pgdrill_bundle", packed, check_mode=True)
    assert not failed and result["changed"] is True and result["members"] == paths and not os.path.exists(archive), result
    result, failed, _ = run_module("pgdrill_bundle", dict(packed, paths=[*paths, "../etc/shadow"]), check_mode=True)
    assert failed and "'..'" in result["msg"], result

    result, failed, _ = run_module("pgdrill_bundle", packed)
    assert not failed and result["changed"] is True and result["size"] == os.path.getsize(archive), result
    result, failed, _ = run_module("pgdrill_bundle", packed, check_mode=True)  # the real run would find it there
    assert failed and "File exists" in result["msg"], result

    target = tmp_path / "copy.partial"
    target.mkdir()
    unpacked = {"state": "unpacked", "archive": archive, "directory": str(target)}
    result, failed, _ = run_module("pgdrill_bundle", unpacked, check_mode=True)
    assert not failed and result["changed"] is True and result["members"] == paths and os.listdir(target) == [], result
    result, failed, _ = run_module("pgdrill_bundle", unpacked)
    assert not failed and sorted(os.listdir(target)) == ["shop_db_x_utc.dir", "shop_manifest_x_utc.json"], result
    result, failed, _ = run_module("pgdrill_bundle", unpacked, check_mode=True)
    assert failed and "not empty" in result["msg"], result
