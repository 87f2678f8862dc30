"""Fetch an archive from http(s)://, file:// or a local path: resumable, cached, verified by its checksum.

A checksum is a sha256 hex digest, or 'md5:<hex>' where only an md5 is published (Tiny-ImageNet).
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from alexnet.data.progress import progress_bar

CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(OSError):
    """A one-line, user-facing error about fetching or verifying data (an OSError, so every stage reports it)."""


@dataclass(frozen=True)
class Keys:
    """The params keys the messages name, and the fix an offline user is told (data.* for ingest)."""

    url: str = "data.url"
    checksum: str = "data.sha256"
    offline: str = (
        "point data.url at a local copy (make run IMAGENETTE=<path>) or use generated images (make run-synthetic)"
    )


DATA_KEYS = Keys()


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, checksum: str | None, fix: str) -> None:
    """Raise when the file's digest is not `checksum` (sha256, or 'md5:<hex>'); `fix` tells the user what to do."""
    if checksum is None:
        return
    algorithm, _, expected = checksum.rpartition(":")
    algorithm = algorithm or "sha256"
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise DownloadError(f"{path}: {algorithm} mismatch: expected {expected}, got {actual}; {fix}")


def local_path(url_or_path: str, keys: Keys = DATA_KEYS) -> Path | None:
    """The local path a file:// URL or plain path names; None for http(s); refuses other schemes."""
    parsed = urlparse(url_or_path)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DownloadError(f"{url_or_path}: file:// takes a local path (file:///path); fix {keys.url}")
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(url_or_path).expanduser()
    raise DownloadError(
        f"{url_or_path}: unsupported scheme '{parsed.scheme}'; {keys.url} takes http(s)://, file:// or a path"
    )


def fetch(
    url_or_path: str, cache_dir: Path, checksum: str | None, progress: bool = True, keys: Keys = DATA_KEYS
) -> Path:
    """A verified local copy of the file: the path itself for local files, a cached download for http(s).

    `keys` names the params keys in the messages (data.url, data.sha256 unless told otherwise).
    """
    path = local_path(url_or_path, keys)
    if path is not None:
        if not path.exists():
            raise DownloadError(f"{path}: not found; set {keys.url} to an existing archive or folder")
        if path.is_dir():
            if checksum is not None:
                raise DownloadError(f"{path}: a folder has no sha256; clear {keys.checksum} or use an archive")
            return path
        verify(path, checksum, f"point {keys.url} at the right file, or set {keys.checksum} if this one is trusted")
        return path

    name = Path(unquote(urlparse(url_or_path).path)).name or "download"
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / name
    fix = f"delete {target} and re-run, or set {keys.checksum} to the actual value if you trust the file"
    if not target.exists():
        part = target.with_name(target.name + ".part")
        _download(url_or_path, part, progress, keys)
        part.replace(target)
    verify(target, checksum, fix)
    return target


def _download(url: str, part: Path, progress: bool, keys: Keys = DATA_KEYS) -> None:
    """Download into `part`, resuming from its size with an HTTP Range request."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "alexnet-repro"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset and _complete_size(error.headers.get("Content-Range")) == offset:
            return
        if error.code == 416:
            part.unlink()
            return _download(url, part, progress, keys)
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}; check {keys.url}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{url}: cannot connect ({reason}); offline? {keys.offline}") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        bar = progress_bar(
            enabled=progress,
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
        )
        try:
            with bar, open(part, "ab" if resumed else "wb") as stream:
                while block := response.read(CHUNK):
                    stream.write(block)
                    bar.update(len(block))
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise DownloadError(
                f"{url}: download interrupted ({error}); re-run to resume from {part.stat().st_size} bytes"
            ) from None
    if total is not None and part.stat().st_size != total:
        raise DownloadError(
            f"{url}: got {part.stat().st_size} of {total} bytes; re-run to resume from {part}"
        )


def _complete_size(content_range: str | None) -> int | None:
    """The total in 'bytes */12345'; None when absent or unknown."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None
