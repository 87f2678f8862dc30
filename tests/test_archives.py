"""Safe extraction: hostile members refuse the archive and nothing lands outside the target."""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from alexnet.data.archives import ArchiveError, extract
from alexnet.data.download import DownloadError


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def make_tar(path: Path, members: list, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, data)
    return path


def make_zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def everything_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*")}


def test_tgz_tar_and_zip_extract(tmp_path):
    members = [_file("root/train/a/1.JPEG", b"one"), _file("./root/val/a/2.JPEG", b"two")]
    for archive in (
        make_tar(tmp_path / "good.tgz", members),
        make_tar(tmp_path / "good.tar", [_file("root/train/a/1.JPEG", b"one")], mode="w"),
        make_zip(tmp_path / "good.zip", {"root/train/a/1.JPEG": b"one", "root/val/": b""}),
    ):
        target = extract(archive, tmp_path / f"out-{archive.suffix}")
        assert (target / "root/train/a/1.JPEG").read_bytes() == b"one"


def test_existing_target_is_replaced_whole(tmp_path):
    target = tmp_path / "out"
    (target / "old").mkdir(parents=True)
    extract(make_tar(tmp_path / "good.tgz", [_file("new.txt")]), target)
    assert everything_under(target) == {"new.txt"}
    assert everything_under(tmp_path) == {"good.tgz", "out", "out/new.txt"}


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_file("../evil.txt"), "'..'"),
        (_file("root/../../evil.txt"), "'..'"),
        (_file("/tmp/evil.txt"), "absolute"),
        (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (_special("link", tarfile.SYMTYPE, "inside.txt"), "link"),
        (_special("hard", tarfile.LNKTYPE, "../../outside.txt"), "link"),
        (_special("dev", tarfile.CHRTYPE), "device"),
        (_special("blk", tarfile.BLKTYPE), "device"),
        (_special("pipe", tarfile.FIFOTYPE), "fifo"),
    ],
)
def test_hostile_tar_members_are_refused(tmp_path, member, why):
    archive = make_tar(tmp_path / "evil.tgz", [_file("ok.txt"), member, _file("after.txt")])
    before = everything_under(tmp_path)
    with pytest.raises(ArchiveError, match=why) as error:
        extract(archive, tmp_path / "sub" / "out")
    assert "evil.tgz" in str(error.value) and "\n" not in str(error.value)
    assert everything_under(tmp_path) - before <= {"sub"}, "nothing written, no staging left behind"
    assert not (tmp_path / "sub" / "out").exists()


@pytest.mark.parametrize(
    ("name", "why"), [("../evil.txt", "'..'"), ("/evil.txt", "absolute"), ("a\\..\\..\\e", "'..'")]
)
def test_hostile_zip_members_are_refused(tmp_path, name, why):
    archive = make_zip(tmp_path / "evil.zip", {"ok.txt": b"x", name: b"evil"})
    with pytest.raises(ArchiveError, match=why):
        extract(archive, tmp_path / "out")
    assert everything_under(tmp_path) == {"evil.zip"}


def test_zip_symlink_is_refused(tmp_path):
    archive = make_zip(tmp_path / "evil.zip", {"ok.txt": b"x"}, symlink="link")
    with pytest.raises(ArchiveError, match="link"):
        extract(archive, tmp_path / "out")
    assert everything_under(tmp_path) == {"evil.zip"}


def test_sha256_is_checked_before_extraction(tmp_path):
    archive = make_tar(tmp_path / "good.tgz", [_file("a.txt")])
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        extract(archive, tmp_path / "out", sha256="0" * 64)
    assert not (tmp_path / "out").exists()
    extract(archive, tmp_path / "out", sha256=hashlib.sha256(archive.read_bytes()).hexdigest())
    assert (tmp_path / "out/a.txt").is_file()


def test_unreadable_archive_is_a_clear_error(tmp_path):
    archive = tmp_path / "broken.tgz"
    archive.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArchiveError, match="broken.tgz: not a readable tar"):
        extract(archive, tmp_path / "out")
    assert everything_under(tmp_path) == {"broken.tgz"}
