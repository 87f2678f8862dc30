"""Where images come from: resolve data.source/url into local train/val file lists per class.

Every source ends as a SourceTree: a root folder, wnid -> human name, and for each split the
sorted files of each class. Archives are fetched into data.cache_dir and extracted into `workdir`,
keyed by the archive, so a re-run reuses both. The layouts are read by tree.py (image folders),
tiny_imagenet.py and ilsvrc2012.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alexnet.config import DataConfig
from alexnet.data import archives, ilsvrc2012, synthetic, tiny_imagenet
from alexnet.data.download import fetch, local_path
from alexnet.data.tree import SourceError, SourceTree, image_folder, unpacked

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
    f"http://cs231n.stanford.edu/{tiny_imagenet.ARCHIVE}", None, md5="90528d7ca1a48142e341f4ef8d21d0de"
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
        return ilsvrc2012.read(fetch(cfg.url, cache_dir, cfg.sha256, progress), workdir)
    if cfg.source == "folder":
        location = fetch(cfg.url, cache_dir, cfg.sha256, progress)
        return image_folder(unpacked(location, workdir), known_names())
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
    location = unpacked(fetch(url, cache_dir, checksum, progress), workdir)
    if cfg.source == "tiny_imagenet":
        return tiny_imagenet.read(location, workdir)
    names = IMAGENETTE_NAMES if cfg.source == "imagenette" else IMAGEWOOF_NAMES
    return image_folder(location, names)


def known_names() -> dict[str, str]:
    return {**IMAGENETTE_NAMES, **IMAGEWOOF_NAMES}


def _known_checksum(url: str, known: KnownArchive) -> str | None:
    """The table's checksum applies to a mirror of the same file name, not to another archive."""
    return known.checksum if Path(url.rstrip("/")).name == Path(known.url).name else None
