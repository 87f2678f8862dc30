"""ILSVRC-2012 as a SourceTree, as downloaded from image-net.org (tars + devkit) or Kaggle (folders + LOC_*.csv)."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

from alexnet.data import archives
from alexnet.data.tree import SourceError, SourceTree, check_same_classes, find, list_classes, read_names, unpacked

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
KAGGLE_VAL_LABELS = "LOC_val_solution.csv"
DEVKIT_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META = "meta.mat"
DEVKIT_ARCHIVE = "ILSVRC2012_devkit_t12.tar.gz"


def read(location: Path, workdir: Path) -> SourceTree:
    """ILSVRC-2012 as downloaded from image-net.org (tars + devkit) or Kaggle (folders + LOC_*.csv).

    train: class folders, or ILSVRC2012_img_train.tar (a tar of per-class tars).
    val: class folders, or a flat folder / ILSVRC2012_img_val.tar of ILSVRC2012_val_*.JPEG labelled by
    LOC_val_solution.csv or the devkit's ground truth + meta.mat.
    """
    if location.is_file():
        location = unpacked(location, workdir)
    base = workdir / "ilsvrc2012"
    names, val_labels = _labels(location, base)
    tree = SourceTree(root=location, names=names, extracted_root=base)
    tree.files["train"] = list_classes(_split_folder(location, base, "train"))
    val_dir = _split_folder(location, base, "val")
    tree.files["val"] = _labelled_val(val_dir, val_labels)
    check_same_classes(tree)
    return tree


def _split_folder(location: Path, base: Path, split: str) -> Path:
    """The split's folder as found, else its tar (ILSVRC2012_img_<split>.tar) extracted once into base/<split>.

    The one difference between the splits: the train tar holds one tar per class, the val tar the images.
    """
    folder = find(location, split, want_dir=True)
    if folder is not None:
        return folder
    archive_name, extract = {"train": (TRAIN_TAR, _extract_tar_of_tars), "val": (VAL_TAR, archives.extract)}[split]
    archive = find(location, archive_name)
    if archive is None:
        raise SourceError(f"{location}: no {split}/ folder or {archive_name}; point data.url at ILSVRC-2012")
    target = base / split
    if not target.is_dir():
        archives.remove_stale_staging(target)
        extract(archive, target)
    return target


def _extract_tar_of_tars(outer: Path, target: Path) -> None:
    """ILSVRC2012_img_train.tar: <wnid>.tar members, each extracted into target/<wnid>/."""
    with archives.staging(target) as temp, tarfile.open(outer) as tar:
        for member in tar:
            if not member.isreg() or not member.name.endswith(".tar"):
                raise archives.ArchiveError(f"{outer}: member '{member.name}' is not a per-class .tar")
            wnid = Path(member.name).name.removesuffix(".tar")
            with tarfile.open(fileobj=tar.extractfile(member), mode="r|") as inner:
                archives.extract_tar(inner, temp / wnid, f"{outer}:{member.name}")


def _labels(location: Path, base: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(wnid -> name, val file stem -> wnid) from Kaggle's LOC_* files, else the devkit, else empty."""
    names = {}
    mapping = find(location, "LOC_synset_mapping.txt")
    if mapping is not None:
        names = read_names(mapping.parent)
    kaggle = find(location, KAGGLE_VAL_LABELS)
    if kaggle is not None:
        with open(kaggle, newline="") as stream:
            labels = {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(stream)}
        return names, labels
    truth, meta = find(location, DEVKIT_TRUTH), find(location, DEVKIT_META)
    if truth is None or meta is None:
        devkit = find(location, DEVKIT_ARCHIVE)
        if devkit is not None:
            target = base / "devkit"
            if not target.is_dir():
                archives.extract(devkit, target)
            truth, meta = find(target, DEVKIT_TRUTH), find(target, DEVKIT_META)
    if truth is None or meta is None:
        return names, {}
    id_to_wnid, devkit_names = _read_meta(meta)
    ids = [int(line) for line in truth.read_text().split()]
    labels = {f"ILSVRC2012_val_{number:08d}": id_to_wnid[label] for number, label in enumerate(ids, start=1)}
    return names or devkit_names, labels


def _read_meta(meta: Path) -> tuple[dict[int, str], dict[str, str]]:
    from scipy.io import loadmat

    synsets = loadmat(meta, squeeze_me=True)["synsets"]
    id_to_wnid, names = {}, {}
    for synset in synsets:
        if int(synset["num_children"]) == 0:
            wnid = str(synset["WNID"])
            id_to_wnid[int(synset["ILSVRC2012_ID"])] = wnid
            names[wnid] = str(synset["words"]).split(",")[0].strip()
    return id_to_wnid, names


def _labelled_val(val_dir: Path, labels: dict[str, str]) -> dict[str, list[Path]]:
    """Class folders as they are; a flat folder of ILSVRC2012_val_*.JPEG grouped by its labels."""
    if any(child.is_dir() and not child.name.startswith(".") for child in val_dir.iterdir()):
        return list_classes(val_dir)
    if not labels:
        raise SourceError(
            f"{val_dir}: flat val images but no labels; put {KAGGLE_VAL_LABELS} or the devkit "
            f"({DEVKIT_ARCHIVE}) beside them"
        )
    classes: dict[str, list[Path]] = {}
    images = sorted(path for path in val_dir.iterdir() if path.is_file() and not path.name.startswith("."))
    for path in images:
        wnid = labels.get(path.stem) or labels.get(path.name)
        if wnid is None:
            raise SourceError(f"{path}: no label for this val image; check the val labels file")
        classes.setdefault(wnid, []).append(path)
    return classes
