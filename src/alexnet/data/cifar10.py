"""CIFAR-10, the data of the paper's Figure 1 (Sec. 3.1): the official binary archive, fetched, verified and read.

The binary version (https://www.cs.toronto.edu/~kriz/cifar.html), not the pickled one: the archive holds
cifar-10-batches-bin/data_batch_1.bin .. data_batch_5.bin (train, 10,000 records each) and test_batch.bin.
A record is 1 label byte (0-9) and 3072 pixel bytes: the 1024 red values of a 32x32 image in row-major
order, then the green, then the blue. The archive is read in place; nothing is extracted to disk.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from alexnet.data.download import Keys, fetch, local_path

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # published on the page above (no sha256 is)
FOLDER = "cifar-10-batches-bin"
FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
SIZE, CLASSES = 32, 10
RECORD = 1 + 3 * SIZE * SIZE
KEYS = Keys(
    url="figure1.url",
    checksum="figure1.checksum",
    offline="point figure1.url at a local copy of cifar-10-binary.tar.gz (dvc exp run -S figure1.url=<path>) "
    "or set figure1.data: prepared",
)


class CifarError(ValueError):
    """A one-line, user-facing error about the CIFAR-10 archive."""


def fetch_archive(url: str | None, checksum: str | None, cache_dir: Path, progress: bool = True) -> Path:
    """The verified archive (or an unpacked folder): the official one, or figure1.url with figure1.checksum."""
    url = url or URL
    if checksum is None and Path(url.rstrip("/")).name == Path(URL).name:
        checksum = f"md5:{MD5}"  # a mirror or local copy of the official file
    if checksum is None:
        path = local_path(url, KEYS)
        if path is None or not path.is_dir():
            raise CifarError(
                f"figure1.url: {url} is not the official {Path(URL).name}; "
                "set figure1.checksum to its sha256 (or md5:<hex>)"
            )
    return fetch(url, Path(cache_dir).expanduser(), checksum, progress, KEYS)


def read(location: Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3] RGB, labels int32 [N]) of `split` from the archive or an unpacked folder."""
    location = Path(location)
    names = FILES[split]
    blobs = _folder_files(location, names) if location.is_dir() else _archive_files(location, names)
    images, labels = zip(*(decode(blobs[name], f"{location}: {FOLDER}/{name}") for name in names), strict=True)
    return np.concatenate(images), np.concatenate(labels)


def decode(raw: bytes, label: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file's records as (images [N, 32, 32, 3], labels [N])."""
    if not raw or len(raw) % RECORD:
        raise CifarError(f"{label}: {len(raw)} bytes is not a whole number of {RECORD}-byte records; fetch it again")
    records = np.frombuffer(raw, np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int32)
    if labels.max() >= CLASSES:
        raise CifarError(f"{label}: label {labels.max()} is not a CIFAR-10 class (0-9); is this CIFAR-100?")
    images = records[:, 1:].reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1)  # planes R, G, B -> HWC
    return np.ascontiguousarray(images), labels


def _folder_files(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    root = folder / FOLDER if (folder / FOLDER).is_dir() else folder
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise CifarError(f"{root}: no {missing[0]}; figure1.url takes cifar-10-binary.tar.gz or its unpacked folder")
    return {name: (root / name).read_bytes() for name in names}


def _archive_files(archive: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    wanted = {f"{FOLDER}/{name}": name for name in names}
    blobs, seen_python = {}, False
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                path = "/".join(part for part in PurePosixPath(member.name).parts if part != ".")
                seen_python |= path.startswith("cifar-10-batches-py")
                if path in wanted and member.isreg():
                    blobs[wanted[path]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise CifarError(f"{archive}: not a readable tar archive ({error}); fetch it again") from None
    missing = [path for path, name in wanted.items() if name not in blobs]
    if missing:
        hint = "this is the pickled (python) version; " if seen_python else ""
        raise CifarError(f"{archive}: no {missing[0]}; {hint}figure1.url takes the binary {Path(URL).name}")
    return blobs
