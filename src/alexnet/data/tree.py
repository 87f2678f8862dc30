"""A source's images as a SourceTree, the plain image-folder layout, and the folder helpers every layout shares.

A SourceTree is a root folder, wnid -> human name, and for each split the sorted files of each class.
sources.py decides which layout a source has; tiny_imagenet.py and ilsvrc2012.py read the two others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from alexnet.config import SPLITS
from alexnet.data import archives

NAME_FILES = ("classes.txt", "LOC_synset_mapping.txt", "synset_words.txt", "words.txt")


class SourceError(ValueError):
    """A one-line, user-facing error about the data source."""


@dataclass
class SourceTree:
    root: Path
    names: dict[str, str]
    files: dict[str, dict[str, list[Path]]] = field(default_factory=dict)
    extracted_root: Path | None = None  # where archives inside the source were unpacked (ILSVRC tars)

    def name(self, wnid: str) -> str:
        return self.names.get(wnid, wnid)

    def relative(self, path: Path) -> str:
        """The path shown in the manifest and used as the seeded-sampling key: never machine-specific."""
        for root in (self.root, self.extracted_root):
            if root is not None and path.is_relative_to(root):
                return path.relative_to(root).as_posix()
        return path.as_posix()


def unpacked(location: Path, workdir: Path) -> Path:
    """A folder as is; an archive extracted once into workdir, keyed by its name, size and mtime."""
    if location.is_dir():
        return location
    if not archives.is_archive(location):
        raise SourceError(f"{location}: neither a folder nor a .tgz/.tar.gz/.tar/.zip archive; fix data.url")
    target = workdir / "extracted" / f"{_archive_stem(location)}-{_archive_key(location)}"
    if not target.is_dir():
        archives.remove_stale_staging(target)
        archives.extract(location, target, sha256=None)  # already verified by fetch
    return target


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in archives.ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _archive_key(path: Path) -> str:
    stat = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def find_split_root(folder: Path, depth: int = 3, marker: str | None = None) -> Path | None:
    """The shallowest folder at or under `folder` holding both train/ and val/ (and the file `marker`)."""
    level = [folder]
    for _ in range(depth + 1):
        for candidate in level:
            if all((candidate / split).is_dir() for split in SPLITS) and (
                marker is None or (candidate / marker).is_file()
            ):
                return candidate
        level = sorted(
            child
            for parent in level
            for child in parent.iterdir()
            if child.is_dir() and child.name not in SPLITS
        )
    return None


def image_folder(folder: Path, names: dict[str, str]) -> SourceTree:
    """<root>/{train,val}/<wnid>/<image>, the root found at or a few levels under `folder`."""
    root = find_split_root(folder)
    if root is None:
        missing = [split for split in SPLITS if not (folder / split).is_dir()]
        raise SourceError(
            f"{folder}: no {' or '.join(missing)} folder; an image folder needs "
            "<root>/train/<class>/<image> and <root>/val/<class>/<image>"
        )
    names = {**names, **read_names(root)}
    tree = SourceTree(root=root, names=names)
    for split in SPLITS:
        tree.files[split] = list_classes(root / split)
    check_same_classes(tree)
    return tree


def list_classes(split_dir: Path) -> dict[str, list[Path]]:
    """Class folder -> every file under it, sorted; hidden folders (.ipynb_checkpoints) are no class."""
    classes = {}
    for folder in sorted(child for child in split_dir.iterdir() if child.is_dir()):
        if folder.name.startswith("."):
            continue
        files = sorted(path for path in folder.rglob("*") if path.is_file())
        if not files:
            raise SourceError(f"{folder}: class folder is empty; add images or remove the folder")
        classes[folder.name] = files
    if not classes:
        raise SourceError(f"{split_dir}: no class folders; expected {split_dir}/<wnid>/<image>")
    return classes


def check_same_classes(tree: SourceTree) -> None:
    train, val = set(tree.files["train"]), set(tree.files["val"])
    if train != val:
        only = sorted(train - val) or sorted(val - train)
        where = "train" if train - val else "val"
        raise SourceError(
            f"{tree.root}: class(es) {', '.join(only[:5])} only in {where}/; "
            "every class needs both train and val images"
        )


def read_names(root: Path) -> dict[str, str]:
    """wnid -> first synonym, from 'n01440764 tench, Tinca tinca' lines in a names file at root."""
    for file_name in NAME_FILES:
        path = root / file_name
        if path.is_file():
            names = {}
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                wnid, *words = line.strip().split(None, 1) or [""]  # a space or a tab (words.txt)
                if wnid and words:
                    names[wnid] = words[0].split(",")[0].strip()
            return names
    return {}


def find(location: Path, name: str, want_dir: bool = False, depth: int = 4) -> Path | None:
    """`name` at or a few levels under `location` (Kaggle nests ILSVRC/Data/CLS-LOC/), shallowest first.

    Never descends into split or class folders: listing a million images to find a label file is slow.
    """
    level = [location]
    for _ in range(depth + 1):
        for folder in level:
            candidate = folder / name
            if candidate.is_dir() if want_dir else candidate.is_file():
                return candidate
        level = sorted(
            child
            for folder in level
            for child in folder.iterdir()
            if child.is_dir() and child.name not in (*SPLITS, "test") and not _looks_like_wnid(child.name)
        )
    return None


def _looks_like_wnid(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()
