"""Where images come from: resolve data.source/url into local train/val file lists per class.

Every source ends as a SourceTree: a root folder, wnid -> human name, and for each split the
sorted files of each class. Archives are fetched into data.cache_dir and extracted into `workdir`,
keyed by the archive, so a re-run reuses both.
"""

from __future__ import annotations

import csv
import hashlib
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from alexnet.config import SPLITS, DataConfig
from alexnet.data import archives, synthetic
from alexnet.data.download import fetch, local_path

FASTAI_BUCKET = "https://s3.amazonaws.com/fast-ai-imageclas"


@dataclass(frozen=True)
class KnownArchive:
    url: str
    sha256: str | None
    md5: str | None = None  # where only an md5 is published

    @property
    def checksum(self) -> str | None:
        return self.sha256 or (self.md5 and f"md5:{self.md5}")


# imagenette: the fast.ai bucket's values (also in ../shared/data/README.md). imagewoof: as published
# by FastAI.jl's dataset registry (older registries list earlier cuts of imagewoof2-160/-320 with other
# hashes); a mismatch error says how to override with data.sha256.
ARCHIVE_SHA256 = {
    "imagenette2-160": "64d0c4859f35a461889e0147755a999a48b49bf38a7e0f9bd27003f10db02fe5",
    "imagenette2-320": "569b4497c98db6dd29f335d1f109cf315fe127053cedf69010d047f0188e158c",
    "imagenette2": "6cbfac238434d89fe99e651496f0812ebc7a10fa62bd42d6874042bf01de4efd",
    "imagewoof2-160": "b5ffa16037e07f60882434f55b7814a3d44483f2a484129f251604bc0d0f8172",
    "imagewoof2-320": "7db6120fdb9ae079e26346f89e7b00d7f184f8137791609b97fd0405d3f92305",
    "imagewoof2": "de3f58c4ea3e042cf3f8365fbc699288cfe1d8c151059040d181c221bd5a55b8",
}
KNOWN_ARCHIVES = {
    (source, size): KnownArchive(f"{FASTAI_BUCKET}/{stem}.tgz", ARCHIVE_SHA256[stem])
    for source in ("imagenette", "imagewoof")
    for size, stem in (("160", f"{source}2-160"), ("320", f"{source}2-320"), ("full", f"{source}2"))
}

# Stanford CS231n's archive; the md5 is the one published with it (no sha256 is).
TINY_IMAGENET = KnownArchive(
    "http://cs231n.stanford.edu/tiny-imagenet-200.zip", None, md5="90528d7ca1a48142e341f4ef8d21d0de"
)

IMAGENETTE_NAMES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
IMAGEWOOF_NAMES = {
    "n02086240": "Shih-Tzu",
    "n02087394": "Rhodesian ridgeback",
    "n02088364": "beagle",
    "n02089973": "English foxhound",
    "n02093754": "Border terrier",
    "n02096294": "Australian terrier",
    "n02099601": "golden retriever",
    "n02105641": "Old English sheepdog",
    "n02111889": "Samoyed",
    "n02115641": "dingo",
}
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


def resolve(cfg: DataConfig, workdir: Path, progress: bool = True) -> SourceTree:
    """The local images of data.source: fetched, extracted and listed as needed."""
    workdir = Path(workdir)
    cache_dir = Path(cfg.cache_dir).expanduser()
    if cfg.source == "synthetic":
        target = workdir / f"synthetic-seed{cfg.seed}"
        with archives.staging(target) as temp:
            synthetic.generate(cfg.synthetic, cfg.seed, temp)
        return image_folder(target, known_names())
    if cfg.source == "ilsvrc2012":
        return ilsvrc2012(fetch(cfg.url, cache_dir, cfg.sha256, progress), workdir)
    if cfg.source == "folder":
        location = fetch(cfg.url, cache_dir, cfg.sha256, progress)
        return image_folder(_unpacked(location, workdir), known_names())
    known = TINY_IMAGENET if cfg.source == "tiny_imagenet" else KNOWN_ARCHIVES[(cfg.source, cfg.size)]
    url = cfg.url or known.url
    checksum = cfg.sha256 or _known_checksum(url, known)
    if checksum is None:
        path = local_path(url)
        if path is None or not path.is_dir():
            raise SourceError(
                f"data.url: {url} is not the known {cfg.source} archive ({Path(known.url).name}); "
                "set data.sha256 to its checksum, or use data.source: folder"
            )
    location = _unpacked(fetch(url, cache_dir, checksum, progress), workdir)
    if cfg.source == "tiny_imagenet":
        return tiny_imagenet(location, workdir)
    names = IMAGENETTE_NAMES if cfg.source == "imagenette" else IMAGEWOOF_NAMES
    return image_folder(location, names)


def known_names() -> dict[str, str]:
    return {**IMAGENETTE_NAMES, **IMAGEWOOF_NAMES}


def _known_checksum(url: str, known: KnownArchive) -> str | None:
    """The table's checksum applies to a mirror of the same file name, not to another archive."""
    return known.checksum if Path(url.rstrip("/")).name == Path(known.url).name else None


def _unpacked(location: Path, workdir: Path) -> Path:
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


def _find_split_root(folder: Path, depth: int = 3, marker: str | None = None) -> Path | None:
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
    root = _find_split_root(folder)
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
    _check_same_classes(tree)
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


def _check_same_classes(tree: SourceTree) -> None:
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


# --- Tiny-ImageNet-200 --------------------------------------------------------------------------------

TINY_ARCHIVE = Path(TINY_IMAGENET.url).name
TINY_WNIDS = "wnids.txt"
TINY_VAL_LABELS = "val_annotations.txt"


def tiny_imagenet(folder: Path, workdir: Path) -> SourceTree:
    """Tiny-ImageNet-200 (CS231n): the unpacked folder, or a folder holding it (or its zip) up to two levels down.

    train/<wnid>/images/*.JPEG (the <wnid>_boxes.txt beside images/ is no image); val/images/*.JPEG labelled by
    val/val_annotations.txt; classes from wnids.txt, names from words.txt; test/ is unlabelled and ignored.
    """
    root = _find_split_root(folder, depth=2, marker=TINY_WNIDS)
    if root is None:
        archive = _find(folder, TINY_ARCHIVE, depth=2)
        root = archive and _find_split_root(_unpacked(archive, workdir), depth=2, marker=TINY_WNIDS)
    if root is None:
        raise SourceError(
            f"{folder}: no Tiny-ImageNet-200 here ({TINY_WNIDS}, train/, val/ up to two levels down, "
            f"or {TINY_ARCHIVE}); point data.url at the archive or its unpacked folder"
        )
    wnids = (root / TINY_WNIDS).read_text().split()
    tree = SourceTree(root=root, names=read_names(root))
    tree.files["train"] = {}
    for wnid in sorted(wnids):
        images = root / "train" / wnid / "images"
        files = sorted(path for path in images.iterdir() if path.is_file()) if images.is_dir() else []
        if not files:
            raise SourceError(f"{images}: no images for class {wnid} of {TINY_WNIDS}; unpack the archive again")
        tree.files["train"][wnid] = files
    tree.files["val"] = _tiny_val(root / "val", set(wnids))
    _check_same_classes(tree)
    return tree


def _tiny_val(val_dir: Path, wnids: set[str]) -> dict[str, list[Path]]:
    """val/images/<file> grouped by 'val_0.JPEG<TAB>n03444034<TAB>box' lines of val_annotations.txt."""
    labels_file = val_dir / TINY_VAL_LABELS
    if not labels_file.is_file():
        raise SourceError(f"{labels_file}: missing; Tiny-ImageNet's val images are labelled by it")
    labels = {}
    for line in labels_file.read_text().splitlines():
        name, wnid, *_ = line.split("\t") + [""]
        if name:
            if wnid not in wnids:
                raise SourceError(f"{labels_file}: '{name}' has class '{wnid}', not in {TINY_WNIDS}")
            labels[name] = wnid
    classes: dict[str, list[Path]] = {}
    images = sorted(path for path in (val_dir / "images").iterdir() if path.is_file() and not path.name.startswith("."))
    for path in images:
        if path.name not in labels:
            raise SourceError(f"{path}: no line in {labels_file}; check the val labels file")
        classes.setdefault(labels[path.name], []).append(path)
    return dict(sorted(classes.items()))


# --- ILSVRC-2012 -------------------------------------------------------------------------------------

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
KAGGLE_VAL_LABELS = "LOC_val_solution.csv"
DEVKIT_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META = "meta.mat"
DEVKIT_ARCHIVE = "ILSVRC2012_devkit_t12.tar.gz"


def ilsvrc2012(location: Path, workdir: Path) -> SourceTree:
    """ILSVRC-2012 as downloaded from image-net.org (tars + devkit) or Kaggle (folders + LOC_*.csv).

    train: class folders, or ILSVRC2012_img_train.tar (a tar of per-class tars).
    val: class folders, or a flat folder / ILSVRC2012_img_val.tar of ILSVRC2012_val_*.JPEG labelled by
    LOC_val_solution.csv or the devkit's ground truth + meta.mat.
    """
    if location.is_file():
        location = _unpacked(location, workdir)
    base = workdir / "ilsvrc2012"
    names, val_labels = _ilsvrc_labels(location, base)
    tree = SourceTree(root=location, names=names, extracted_root=base)
    tree.files["train"] = list_classes(_ilsvrc_split(location, base, "train"))
    val_dir = _ilsvrc_split(location, base, "val")
    tree.files["val"] = _labelled_val(val_dir, val_labels)
    _check_same_classes(tree)
    return tree


def _find(location: Path, name: str, want_dir: bool = False, depth: int = 4) -> Path | None:
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


def _ilsvrc_split(location: Path, base: Path, split: str) -> Path:
    """The split's folder as found, else its tar (ILSVRC2012_img_<split>.tar) extracted once into base/<split>.

    The one difference between the splits: the train tar holds one tar per class, the val tar the images.
    """
    folder = _find(location, split, want_dir=True)
    if folder is not None:
        return folder
    archive_name, extract = {"train": (TRAIN_TAR, _extract_tar_of_tars), "val": (VAL_TAR, archives.extract)}[split]
    archive = _find(location, archive_name)
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


def _ilsvrc_labels(location: Path, base: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(wnid -> name, val file stem -> wnid) from Kaggle's LOC_* files, else the devkit, else empty."""
    names = {}
    mapping = _find(location, "LOC_synset_mapping.txt")
    if mapping is not None:
        names = read_names(mapping.parent)
    kaggle = _find(location, KAGGLE_VAL_LABELS)
    if kaggle is not None:
        with open(kaggle, newline="") as stream:
            labels = {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(stream)}
        return names, labels
    truth, meta = _find(location, DEVKIT_TRUTH), _find(location, DEVKIT_META)
    if truth is None or meta is None:
        devkit = _find(location, DEVKIT_ARCHIVE)
        if devkit is not None:
            target = base / "devkit"
            if not target.is_dir():
                archives.extract(devkit, target)
            truth, meta = _find(target, DEVKIT_TRUTH), _find(target, DEVKIT_META)
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
