"""A set as one tar for the drill's transfer through the controller: packed with the owner of the
directory it lies in, unpacked with the set's modes, and never a member that is a link, an absolute
path or climbs out with '..'. Real files in a temporary directory."""

import io
import os
import pwd
import stat
import subprocess
import sys
import tarfile

import pytest

from pgdrill import bundle
from pgdrill.errors import PgdrillError

NOBODY = pwd.getpwnam("nobody")


def _set(directory):
    os.makedirs(directory / "app_db_x_utc.dir")
    (directory / "app_manifest_x_utc.json").write_text("{}")
    for name, data in (("toc.dat.zst", b"toc"), ("3417.dat.zst", os.urandom(3 * bundle.CHUNK + 5))):
        (directory / "app_db_x_utc.dir" / name).write_bytes(data)
    return ["app_manifest_x_utc.json", "app_db_x_utc.dir/toc.dat.zst", "app_db_x_utc.dir/3417.dat.zst"]


def test_a_set_packs_into_a_tar_of_its_directory_owner_and_unpacks_with_the_sets_modes(tmp_path):
    paths = _set(tmp_path / "backups")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chown(private, NOBODY.pw_uid, NOBODY.pw_gid)
    archive = private / "set.tar"
    size = bundle.pack(str(tmp_path / "backups"), paths, str(archive))
    info = os.stat(archive)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), info.st_size) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o600, size)
    with pytest.raises(PgdrillError, match="cannot create"):  # never over an existing file (nor through a link planted there)
        bundle.pack(str(tmp_path / "backups"), paths, str(archive))
    target = tmp_path / "copy.partial"
    target.mkdir(mode=0o700)
    assert bundle.unpack(str(archive), str(target)) == paths
    for path in paths:
        copy = target / path
        assert copy.read_bytes() == (tmp_path / "backups" / path).read_bytes() and stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "app_db_x_utc.dir").stat().st_mode) == 0o700


def _tar_with(path, member, data=b""):
    with tarfile.open(path, "w") as tar:
        plain = tarfile.TarInfo("app_manifest_x_utc.json")
        plain.size = 2
        tar.addfile(plain, io.BytesIO(b"{}"))
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))


def _link(name, kind, target):
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member


@pytest.mark.parametrize(
    "member,why",
    [
        (tarfile.TarInfo("../escaped"), "'..' in its path"),
        (tarfile.TarInfo("app_db_x_utc.dir/../../escaped"), "'..' in its path"),
        (tarfile.TarInfo("/tmp/escaped"), "absolute path"),
        (_link("app_db_x_utc.dir", tarfile.SYMTYPE, "/tmp"), "is a link"),
        (_link("escaped", tarfile.LNKTYPE, "/etc/passwd"), "is a link"),
        (_link("fifo", tarfile.FIFOTYPE, ""), "special file"),
    ],
    ids=["dot-dot", "dot-dot inside", "absolute", "symbolic link", "hard link", "fifo"],
)
def test_a_member_that_could_write_outside_is_refused_before_anything_is_written(tmp_path, member, why):
    archive = tmp_path / "set.tar"
    _tar_with(archive, member, b"outside" if member.isfile() else b"")
    target = tmp_path / "deep" / "copy.partial"
    target.mkdir(parents=True)
    with pytest.raises(PgdrillError, match=why) as caught:
        bundle.unpack(str(archive), str(target))
    assert member.name in caught.value.problem and "nothing was unpacked" in caught.value.fix
    assert os.listdir(target) == [] and sorted(os.listdir(tmp_path)) == ["deep", "set.tar"] and os.listdir(tmp_path / "deep") == ["copy.partial"]


def test_a_set_holding_a_link_is_not_packed(tmp_path):
    paths = _set(tmp_path / "backups")
    os.symlink("/etc/passwd", tmp_path / "backups" / "app_globals_x_utc.sql")
    with pytest.raises(PgdrillError, match="is a link"):
        bundle.pack(str(tmp_path / "backups"), [*paths, "app_globals_x_utc.sql"], str(tmp_path / "set.tar"))
    assert not (tmp_path / "set.tar").exists()


def test_a_tar_cut_short_is_named(tmp_path):
    paths = _set(tmp_path / "backups")
    archive = tmp_path / "set.tar"
    bundle.pack(str(tmp_path / "backups"), paths, str(archive))
    with open(archive, "r+b") as handle:
        handle.truncate(2 * bundle.CHUNK)
    target = tmp_path / "copy.partial"
    target.mkdir()
    with pytest.raises(PgdrillError, match="cannot unpack .*set.tar: unexpected end of data"):
        bundle.unpack(str(archive), str(target))


def test_a_set_missing_a_file_is_not_packed(tmp_path):
    paths = _set(tmp_path / "backups")
    with pytest.raises(PgdrillError, match="cannot read app_globals_x_utc.sql of the set in .*No such file"):
        bundle.pack(str(tmp_path / "backups"), [*paths, "app_globals_x_utc.sql"], str(tmp_path / "set.tar"))
    assert not (tmp_path / "set.tar").exists()


def test_a_path_outside_the_set_or_through_a_link_is_never_read(tmp_path):
    paths = _set(tmp_path / "backups")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "shadow").write_text("root only")
    for bad, why in (([*paths, str(secret / "shadow")], "absolute path"), ([*paths, "../secret/shadow"], "'..'"), ([*paths, paths[0]], "given twice")):
        with pytest.raises(PgdrillError, match=why):
            bundle.pack(str(tmp_path / "backups"), bad, str(tmp_path / "set.tar"))
    # The set's directory swapped for a link to elsewhere: no file is read through it.
    os.rename(tmp_path / "backups" / "app_db_x_utc.dir", tmp_path / "moved")
    os.symlink(secret, tmp_path / "backups" / "app_db_x_utc.dir")
    (secret / "toc.dat.zst").write_text("root only")
    (secret / "3417.dat.zst").write_text("root only")
    with pytest.raises(PgdrillError, match="cannot read app_db_x_utc.dir/toc.dat.zst"):
        bundle.pack(str(tmp_path / "backups"), paths, str(tmp_path / "set.tar"))
    assert not (tmp_path / "set.tar").exists()


def test_unpacking_needs_an_empty_directory_and_a_name_given_twice_is_refused_before_anything_is_written(tmp_path):
    paths = _set(tmp_path / "backups")
    archive = tmp_path / "set.tar"
    bundle.pack(str(tmp_path / "backups"), paths, str(archive))
    target = tmp_path / "copy.partial"
    target.mkdir()
    assert bundle.members_of(str(archive), str(target)) == paths and os.listdir(target) == []  # check mode: read, nothing written
    bundle.unpack(str(archive), str(target))
    with pytest.raises(PgdrillError, match="not empty"):
        bundle.unpack(str(archive), str(target))
    twice = tmp_path / "twice.tar"
    with tarfile.open(twice, "w") as tar:
        for _ in range(2):
            member = tarfile.TarInfo("app_manifest_x_utc.json")
            member.size = 2
            tar.addfile(member, io.BytesIO(b"{}"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(PgdrillError, match="given twice"):
        bundle.unpack(str(twice), str(fresh))
    assert os.listdir(fresh) == []
    assert bundle.name_problem("a\x00b", set()) and bundle.name_problem("./", set())


def test_a_full_filesystem_for_the_tar_names_the_room_it_needs_not_the_set(tmp_path):
    paths = _set(tmp_path / "backups")
    sizes = [os.path.getsize(tmp_path / "backups" / path) for path in paths]
    bundle.pack(str(tmp_path / "backups"), paths, str(tmp_path / "whole.tar"))
    assert os.path.getsize(tmp_path / "whole.tar") <= bundle.tar_size(sizes)  # the room asked for is enough
    # A file size limit stands in for a full disk: the write fails part way.
    script = (
        "import resource, signal, sys\n"
        "from pgdrill import bundle\n"
        "from pgdrill.errors import PgdrillError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "try:\n"
        f"    bundle.pack({str(tmp_path / 'backups')!r}, {paths!r}, {str(tmp_path / 'cut.tar')!r})\n"
        "except PgdrillError as exc:\n"
        "    print(exc.problem); print(exc.fix)\n"
    )
    said = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert "cannot write" in said and f"needs {bundle.tar_size(sizes)} bytes" in said and "pgdrill_drill_source_temp_dir" in said, said
    assert not (tmp_path / "cut.tar").exists()
