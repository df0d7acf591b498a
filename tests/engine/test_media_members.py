"""A crafted media archive is refused by name (issue 18, X6): verify and restore-media say which
member and why (a '..' path, an absolute path, a device, a fifo, a hard link to something outside
the archive, a member under a symbolic link), restore-media extracts nothing, and nothing lands
outside the destination. Real backups, a real gzip pipe and GNU tar."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest


def _info(name, kind=tarfile.REGTYPE, data=b"", linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mode = kind, len(data), linkname, 0o644
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    return info, data


def crafted(outside):
    """{case: (members, the member named, words of the reason)}; ``outside`` is a path beyond the destination."""
    top = [_info("media", tarfile.DIRTYPE), _info("media/ok.txt", data=b"fine\n")]
    return {
        "traversal": (top + [_info("media/../../escape.txt", data=b"out\n")], "media/../../escape.txt", "'..'"),
        "absolute": (top + [_info(os.path.join(outside, "abs.txt"), data=b"out\n")], os.path.join(outside, "abs.txt"), "absolute path"),
        "device": (top + [_info("media/null", tarfile.CHRTYPE)], "media/null", "device"),
        "fifo": (top + [_info("media/pipe", tarfile.FIFOTYPE)], "media/pipe", "fifo"),
        "hard link outside": (top + [_info("media/passwd", tarfile.LNKTYPE, linkname="/etc/passwd")], "media/passwd", "hard link"),
        "through a link": (
            top + [_info("media/out", tarfile.SYMTYPE, linkname=outside), _info("media/out/planted.txt", data=b"out\n")],
            "media/out/planted.txt",
            "symbolic link media/out",
        ),
    }


def _tar_gz(members):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data else None)
    return gzip.compress(raw.getvalue())


def _plant(backup_env, data):
    """Put ``data`` in place of the set's media archive, its manifest rewritten to match."""
    (archive,) = [name for name in backup_env.files() if "_media_" in name]
    with open(os.path.join(backup_env.backup_dir, archive), "wb") as handle:
        handle.write(data)
    (manifest,) = [name for name in backup_env.files() if "_manifest_" in name]
    path = os.path.join(backup_env.backup_dir, manifest)
    document = json.load(open(path, encoding="utf-8"))
    for entry in document["files"]:
        if entry["name"] == archive:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle)


@pytest.mark.parametrize("case", ["traversal", "absolute", "device", "fifo", "hard link outside", "through a link"])
def test_a_crafted_media_archive_is_refused_naming_the_member_and_why(backup_env, tmp_path, case):
    media = tmp_path / "media"
    media.mkdir()
    (media / "ok.txt").write_text("fine\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    backup_env.rewrite(media_root=str(media), compression="gzip")
    backup_env.run("--media")
    members, named, why = crafted(str(outside))[case]
    _plant(backup_env, _tar_gz(members))
    done = backup_env.run("verify", check=1)
    assert f"member {named!r}" in done.stdout and why in done.stdout, done.stdout
    row = json.loads(backup_env.run("list", "--json").stdout)["results"][0]["sets"][0]
    assert row["verification"]["verdict"] == "bad", row  # bytes pgdrill never writes: the set is blamed
    target = tmp_path / "restored"
    done = backup_env.run("restore-media", "--to", str(target), check=1)
    assert f"member {named!r}" in done.stderr and why in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not target.exists() or os.listdir(target) == [], os.listdir(target)  # nothing extracted
    assert os.listdir(outside) == [] and not (tmp_path / "escape.txt").exists()


def test_what_the_producer_writes_passes_the_member_rule(tmp_path):
    """Files, directories, symbolic links (to anywhere) and hard links to earlier members: what
    pgdrill's own archives hold is never refused."""
    from pgdrill.media import count_members, tar_producer

    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "sub" / "a.txt").write_text("a")
    os.link(media / "sub" / "a.txt", media / "b.txt")
    os.symlink("/etc/hostname", media / "absolute-link")
    os.symlink("../b.txt", media / "sub" / "relative-link")
    raw = io.BytesIO()
    tar_producer(str(media))(raw)
    raw.seek(0)
    assert count_members(raw) == 6
    kinds = {info.name: info.type for info in tarfile.open(fileobj=io.BytesIO(raw.getvalue()))}
    assert tarfile.LNKTYPE in kinds.values() and tarfile.SYMTYPE in kinds.values()


@pytest.mark.parametrize(
    "members,problem",
    [
        ([("media", tarfile.DIRTYPE, ""), ("media/a", tarfile.REGTYPE, "")], None),
        ([("media/./a", tarfile.REGTYPE, "")], None),
        ([("media/a", tarfile.REGTYPE, ""), ("media/b", tarfile.LNKTYPE, "media/a")], None),
        ([("media/l", tarfile.SYMTYPE, "/anywhere"), ("media/lx", tarfile.REGTYPE, "")], None),  # a sibling, not under the link
        ([("media/b", tarfile.LNKTYPE, "media/a")], "hard link to 'media/a', which is not an earlier member"),
        ([("media/l", tarfile.SYMTYPE, "."), ("media/l/x", tarfile.REGTYPE, "")], "under the symbolic link media/l"),
        ([("media/l", tarfile.SYMTYPE, "."), ("media/./l//x", tarfile.REGTYPE, "")], "under the symbolic link media/l"),
        ([("media/b", tarfile.LNKTYPE, "../etc/passwd")], "hard link"),
        ([("", tarfile.REGTYPE, "")], "empty name"),
        ([("media/d", tarfile.BLKTYPE, "")], "device"),
        ([("media/c", tarfile.CONTTYPE, "")], None),  # contiguous: a regular file to tar and to GNU tar
        ([("media/z", b"Z", "")], "tar type"),
    ],
)
def test_the_member_rule(members, problem):
    from pgdrill.media import member_problem

    seen = {"names": set(), "links": set()}
    found = None
    for name, kind, linkname in members:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        found = member_problem(info, seen["names"], seen["links"])
        if found:
            break
    assert (found is None) if problem is None else (found is not None and problem in found), found
