"""data.source: tiny_imagenet: the official archive's layout, as a zip, unpacked, nested, or served over http."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import json
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pipeline_copy import read_params

from alexnet.config import parse
from alexnet.data import sources
from alexnet.data.download import DownloadError
from alexnet.data.ingest import ingest
from alexnet.data.tree import SourceError

WNIDS = ["n01443537", "n01629819", "n01641577"]
NAMES = {"n01443537": "goldfish", "n01629819": "European fire salamander", "n01641577": "bullfrog"}
TRAIN, VAL = 4, 2


def make_tiny(parent: Path) -> Path:
    """A 3-class Tiny-ImageNet-200 in the official layout under parent/tiny-imagenet-200."""
    root = parent / "tiny-imagenet-200"
    rng = np.random.default_rng(0)

    def image(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path, format="JPEG")

    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(f"{wnid}\n" for wnid in WNIDS))
    words = {"n00001740": "entity", **{wnid: f"{name}, other name" for wnid, name in NAMES.items()}}
    (root / "words.txt").write_text("".join(f"{wnid}\t{name}\n" for wnid, name in words.items()))
    annotations = []
    for label, wnid in enumerate(WNIDS):
        for index in range(TRAIN):
            image(root / "train" / wnid / "images" / f"{wnid}_{index}.JPEG")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t15\t15\n")
        for index in range(VAL):
            name = f"val_{label * VAL + index}.JPEG"
            image(root / "val" / "images" / name)
            annotations.append(f"{name}\t{wnid}\t1\t2\t13\t14\n")
    (root / "val" / "val_annotations.txt").write_text("".join(annotations))
    image(root / "test" / "images" / "test_0.JPEG")
    return root


def make_zip(folder: Path, archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder.parent).as_posix())
    return archive


def config(tmp_path: Path, url: str | None, sha256: str | None = None):
    params = read_params()
    params["data"].update(
        source="tiny_imagenet", url=url, sha256=sha256, classes=3, train_per_class=None, val_per_class=None,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    return parse(params).data


def assert_ingested(out: Path) -> None:
    with open(out / "manifest.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert {row["status"] for row in rows} == {"kept"}
    assert sum(row["split"] == "train" for row in rows) == 3 * TRAIN
    assert sum(row["split"] == "val" for row in rows) == 3 * VAL
    assert not any("boxes" in row["path"] or "test" in row["path"] for row in rows)
    val_labels = {Path(row["path"]).name: row["wnid"] for row in rows if row["split"] == "val"}
    assert val_labels["val_0.JPEG"] == WNIDS[0] and val_labels["val_5.JPEG"] == WNIDS[2]
    classes = json.loads((out / "classes.json").read_text())
    assert [(entry["wnid"], entry["name"]) for entry in classes] == [(wnid, NAMES[wnid]) for wnid in WNIDS]


def test_archive_is_ingested_with_val_labels_and_names(tmp_path):
    archive = make_zip(make_tiny(tmp_path / "made"), tmp_path / "dl" / "tiny-imagenet-200.zip")
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    ingest(config(tmp_path, str(archive), sha256), tmp_path / "raw", tmp_path / "work", progress=False)
    assert_ingested(tmp_path / "raw")


@pytest.mark.parametrize(("parent", "url"), [("src", "src/tiny-imagenet-200"), ("src", "src"), ("src/dl", "src")])
def test_unpacked_folder_is_found_up_to_two_levels_down(tmp_path, parent, url):
    make_tiny(tmp_path / parent)
    ingest(config(tmp_path, str(tmp_path / url)), tmp_path / "raw", tmp_path / "work", progress=False)
    assert_ingested(tmp_path / "raw")


def test_a_folder_holding_the_archive_is_accepted(tmp_path):
    make_zip(make_tiny(tmp_path / "made"), tmp_path / "src" / "downloads" / "tiny-imagenet-200.zip")
    ingest(config(tmp_path, str(tmp_path / "src")), tmp_path / "raw", tmp_path / "work", progress=False)
    assert_ingested(tmp_path / "raw")


def test_three_levels_down_or_a_missing_label_is_a_clear_error(tmp_path):
    make_tiny(tmp_path / "src" / "a" / "b")
    with pytest.raises(SourceError, match="no Tiny-ImageNet-200 here"):
        sources.resolve(config(tmp_path, str(tmp_path / "src")), tmp_path / "work", progress=False)
    root = make_tiny(tmp_path / "other")
    labels = root / "val" / "val_annotations.txt"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(SourceError, match="val_0.JPEG: no line in"):
        sources.resolve(config(tmp_path, str(root)), tmp_path / "work", progress=False)


def test_default_is_the_official_archive_checked_by_its_published_md5(tmp_path, monkeypatch):
    fetched = []

    def no_network(url, cache_dir, checksum, progress):
        fetched.append((url, checksum))
        raise KeyboardInterrupt  # stop before any download

    monkeypatch.setattr(sources, "fetch", no_network)
    with pytest.raises(KeyboardInterrupt):
        sources.resolve(config(tmp_path, None), tmp_path / "work", progress=False)
    assert fetched == [("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "md5:90528d7ca1a48142e341f4ef8d21d0de")]


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "served"
    make_zip(make_tiny(tmp_path / "made"), folder / "tiny-imagenet-200.zip")
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/tiny-imagenet-200.zip", folder / "tiny-imagenet-200.zip"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_http_mirror_is_verified_by_md5(tmp_path, served, monkeypatch):
    """A mirror of the official name is checked against the published md5: our small zip fails it, and passes
    once the table holds its own md5."""
    url, archive = served
    with pytest.raises(DownloadError, match="md5 mismatch: expected 90528d7ca1a48142e341f4ef8d21d0de"):
        sources.resolve(config(tmp_path, url), tmp_path / "work", progress=False)
    shutil.rmtree(tmp_path / "cache")
    own_md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(sources, "TINY_IMAGENET", sources.KnownArchive(sources.TINY_IMAGENET.url, None, own_md5))
    ingest(config(tmp_path, url), tmp_path / "raw", tmp_path / "work", progress=False)
    assert_ingested(tmp_path / "raw")
