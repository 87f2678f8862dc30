"""Tiny-ImageNet-200 (CS231n) as a SourceTree: its classes, train images and labelled val images."""

from __future__ import annotations

from pathlib import Path

from alexnet.data.tree import SourceError, SourceTree, check_same_classes, find, find_split_root, read_names, unpacked

ARCHIVE = "tiny-imagenet-200.zip"  # the official archive's name (sources.TINY_IMAGENET, its URL and md5)
WNIDS_FILE = "wnids.txt"
VAL_LABELS = "val_annotations.txt"


def read(folder: Path, workdir: Path) -> SourceTree:
    """Tiny-ImageNet-200 (CS231n): the unpacked folder, or a folder holding it (or its zip) up to two levels down.

    train/<wnid>/images/*.JPEG (the <wnid>_boxes.txt beside images/ is no image); val/images/*.JPEG labelled by
    val/val_annotations.txt; classes from wnids.txt, names from words.txt; test/ is unlabelled and ignored.
    """
    root = find_split_root(folder, depth=2, marker=WNIDS_FILE)
    if root is None:
        archive = find(folder, ARCHIVE, depth=2)
        root = archive and find_split_root(unpacked(archive, workdir), depth=2, marker=WNIDS_FILE)
    if root is None:
        raise SourceError(
            f"{folder}: no Tiny-ImageNet-200 here ({WNIDS_FILE}, train/, val/ up to two levels down, "
            f"or {ARCHIVE}); point data.url at the archive or its unpacked folder"
        )
    wnids = (root / WNIDS_FILE).read_text().split()
    tree = SourceTree(root=root, names=read_names(root))
    tree.files["train"] = {}
    for wnid in sorted(wnids):
        images = root / "train" / wnid / "images"
        files = sorted(path for path in images.iterdir() if path.is_file()) if images.is_dir() else []
        if not files:
            raise SourceError(f"{images}: no images for class {wnid} of {WNIDS_FILE}; unpack the archive again")
        tree.files["train"][wnid] = files
    tree.files["val"] = _val(root / "val", set(wnids))
    check_same_classes(tree)
    return tree


def _val(val_dir: Path, wnids: set[str]) -> dict[str, list[Path]]:
    """val/images/<file> grouped by 'val_0.JPEG<TAB>n03444034<TAB>box' lines of val_annotations.txt."""
    labels_file = val_dir / VAL_LABELS
    if not labels_file.is_file():
        raise SourceError(f"{labels_file}: missing; Tiny-ImageNet's val images are labelled by it")
    labels = {}
    for line in labels_file.read_text().splitlines():
        name, wnid, *_ = line.split("\t") + [""]
        if name:
            if wnid not in wnids:
                raise SourceError(f"{labels_file}: '{name}' has class '{wnid}', not in {WNIDS_FILE}")
            labels[name] = wnid
    classes: dict[str, list[Path]] = {}
    images = sorted(path for path in (val_dir / "images").iterdir() if path.is_file() and not path.name.startswith("."))
    for path in images:
        if path.name not in labels:
            raise SourceError(f"{path}: no line in {labels_file}; check the val labels file")
        classes.setdefault(labels[path.name], []).append(path)
    return dict(sorted(classes.items()))
