"""Safe extraction of .tgz/.tar.gz/.tar/.zip: regular files and folders only, never outside the target.

Every member is checked before it is written: absolute paths, '..', links of any kind, devices and
fifos refuse the whole archive. Extraction goes to a temporary folder beside the target, renamed
into place only when complete, so a crash never leaves a half-extracted target.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from alexnet.data.download import verify

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class ArchiveError(ValueError):
    """A one-line, user-facing error about an archive."""


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract(archive: Path, target: Path, sha256: str | None = None) -> Path:
    """Extract `archive` into the folder `target` (replaced if present); verify its sha256 first if given."""
    archive, target = Path(archive), Path(target)
    verify(archive, sha256, "point data.url at the right archive, or set data.sha256 if this one is trusted")
    with staging(target) as temp:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, temp)
        else:
            try:
                with tarfile.open(archive, "r:*") as tar:
                    extract_tar(tar, temp, str(archive))
            except (tarfile.TarError, EOFError, OSError) as error:
                message = f"{archive}: not a readable tar archive ({error}); fetch it again"
                raise ArchiveError(message) from None
    return target


def extract_tar(tar: tarfile.TarFile, destination: Path, label: str) -> None:
    """Write the tar's members under `destination`, refusing anything that is not a plain file or folder."""
    for member in tar:
        relative = _safe_relative(member.name, label)
        if member.isdir():
            if relative is not None:
                (destination / relative).mkdir(parents=True, exist_ok=True)
            continue
        if not member.isreg():
            kind = "a link" if member.issym() or member.islnk() else "a device, fifo or special file"
            raise ArchiveError(f"{label}: member '{member.name}' is {kind}; refusing to extract this archive")
        if relative is None:
            raise ArchiveError(f"{label}: member '{member.name}' has no file name; refusing to extract")
        source = tar.extractfile(member)
        if source is None:
            raise ArchiveError(f"{label}: member '{member.name}' cannot be read; re-download the archive")
        _write(source, destination, relative)


def _extract_zip(archive: Path, destination: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zip_file:
            for info in zip_file.infolist():
                relative = _safe_relative(info.filename.replace("\\", "/"), str(archive))
                mode = info.external_attr >> 16
                # Zips made on Windows, or by writestr(), carry permission bits but no file type.
                if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    kind = "a link" if stat.S_ISLNK(mode) else "a device, fifo or special file"
                    raise ArchiveError(f"{archive}: member '{info.filename}' is {kind}; refusing to extract")
                if info.is_dir():
                    if relative is not None:
                        (destination / relative).mkdir(parents=True, exist_ok=True)
                    continue
                if relative is None:
                    raise ArchiveError(f"{archive}: member '{info.filename}' has no name; refusing it")
                with zip_file.open(info) as source:
                    _write(source, destination, relative)
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{archive}: not a readable zip archive ({error}); re-download it") from None


def _safe_relative(name: str, label: str) -> PurePosixPath | None:
    """The member's path relative to the target; None for the archive's root ('.', './')."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{label}: member '{name}' has an absolute path; refusing to extract this archive")
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{label}: member '{name}' climbs out with '..'; refusing to extract this archive")
    return PurePosixPath(*parts) if parts else None


def _write(source: IO[bytes], destination: Path, relative: PurePosixPath) -> None:
    path = destination.joinpath(*relative.parts)
    if not path.resolve().is_relative_to(destination.resolve()):
        raise ArchiveError(f"member '{relative}' would land outside {destination}; refusing to extract")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as stream:
        shutil.copyfileobj(source, stream, 1 << 20)


@contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target`, renamed onto it on success and removed on failure."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    replace_folder(temp, target)


def replace_folder(source: Path, target: Path) -> None:
    """Move `source` onto `target`; an existing target is moved aside first and removed last."""
    old = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent)) / "old"
        target.rename(old)
    source.rename(target)
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)


def remove_stale_staging(target: Path) -> None:
    """Leftovers of a killed run (never trusted, never renamed into place)."""
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)
