"""Decoding, sources and the ingest stage on generated fixtures."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pipeline_copy import read_params

from alexnet.config import parse
from alexnet.data import ingest as ingest_module
from alexnet.data.decode import inspect_image, load_rgb
from alexnet.data.ingest import IngestError, ingest
from alexnet.data.synthetic import generate
from alexnet.data.tree import SourceError

RAW_PARAMS = read_params()


def data_config(tmp_path: Path, **overrides):
    raw = json.loads(json.dumps(RAW_PARAMS))
    raw["data"]["cache_dir"] = str(tmp_path / "cache")
    raw["data"].update(overrides)
    return parse(raw).data


def jpeg(seed: int, size: int = 24, mode: str = "RGB", image_format: str = "JPEG") -> bytes:
    pixels = (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if mode == "P":
        image = image.quantize(16)
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def odd_files(tmp_path) -> dict[str, Path]:
    good = jpeg(1, size=40)
    broken_png = bytearray(jpeg(2, image_format="PNG"))
    broken_png[len(broken_png) // 2] ^= 0xFF
    folder = tmp_path / "odd"
    return {
        "cmyk": write(folder / "cmyk.JPEG", jpeg(3, mode="CMYK")),
        "grey": write(folder / "grey.JPEG", jpeg(4, mode="L")),
        "palette": write(folder / "palette.JPEG", jpeg(5, mode="P", image_format="PNG")),
        "rgba": write(folder / "rgba.png", jpeg(6, mode="RGBA", image_format="PNG")),
        "png_named_jpeg": write(folder / "png.JPEG", jpeg(7, image_format="PNG")),
        "truncated": write(folder / "truncated.JPEG", good[: len(good) // 2]),
        "corrupt": write(folder / "corrupt.JPEG", bytes(broken_png)),
        "corrupt_jpeg": write(folder / "corrupt2.JPEG", good[:200] + bytes(2000)),
        "empty": write(folder / "empty.JPEG", b""),
        "text": write(folder / "notes.JPEG", b"this is not an image\n"),
        "ds_store": write(folder / ".DS_Store", b"\x00\x00\x00\x01Bud1"),
    }


def test_odd_but_valid_images_decode_to_rgb(odd_files):
    for key in ("cmyk", "grey", "palette", "rgba", "png_named_jpeg"):
        info = inspect_image(odd_files[key])
        assert info.ok and info.width == 24 and info.height == 24, key
        image = load_rgb(odd_files[key])
        assert image.mode == "RGB" and image.size == (24, 24), key
    assert load_rgb(odd_files["grey"].read_bytes()).mode == "RGB"


def test_bad_files_are_skipped_with_a_reason(odd_files):
    expected = {
        "truncated": "truncated",
        "corrupt": "corrupt",
        "corrupt_jpeg": "corrupt",
        "empty": "empty",
        "text": "not_an_image",
        "ds_store": "hidden_file",
    }
    for key, reason in expected.items():
        info = inspect_image(odd_files[key])
        assert not info.ok and info.reason == reason, key


def make_tree(root: Path, classes=("n00000001", "n00000002"), train: int = 6, val: int = 3) -> Path:
    for index, wnid in enumerate(classes):
        for split, count in (("train", train), ("val", val)):
            for number in range(count):
                write(
                    root / split / wnid / f"{wnid}_{number}.JPEG", jpeg(hash((index, split, number)) % 2**32)
                )
    return root


def read_manifest(out_dir: Path) -> list[dict]:
    with open(out_dir / "manifest.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def test_ingest_records_every_file_and_copies_kept_bytes(tmp_path, odd_files, capsys):
    source = make_tree(tmp_path / "src")
    for path in odd_files.values():
        shutil.copy(path, source / "train/n00000001" / path.name)
    cfg = data_config(tmp_path, source="folder", url=str(source), classes=2, train_per_class=None)
    summary = ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False)

    rows = read_manifest(tmp_path / "raw")
    assert list(rows[0]) == [
        "path",
        "wnid",
        "label",
        "split",
        "sha256",
        "width",
        "height",
        "status",
        "reason",
    ]
    skipped = {Path(row["path"]).name: row["reason"] for row in rows if row["status"] == "skipped"}
    assert skipped == {
        "truncated.JPEG": "truncated",
        "corrupt.JPEG": "corrupt",
        "corrupt2.JPEG": "corrupt",
        "empty.JPEG": "empty",
        "notes.JPEG": "not_an_image",
        ".DS_Store": "hidden_file",
    }
    assert all(row["path"].startswith("train/n00000001/") for row in rows if row["status"] == "skipped")
    kept = [row for row in rows if row["status"] == "kept"]
    assert (summary.kept_train, summary.kept_val) == (6 + 6 + 5, 6)
    for row in kept:
        copy = tmp_path / "raw" / row["path"]
        assert copy.is_file() and row["path"].startswith(f"images/{row['split']}/{row['wnid']}/")
        assert copy.read_bytes() == (source / row["path"].removeprefix("images/")).read_bytes()
    assert {row["label"] for row in rows if row["wnid"] == "n00000002"} == {"1"}
    assert rows == sorted(rows, key=lambda row: (row["split"], row["wnid"], row["path"]))
    classes = json.loads((tmp_path / "raw/classes.json").read_text())
    assert classes == [
        {"index": 0, "wnid": "n00000001", "name": "n00000001"},
        {"index": 1, "wnid": "n00000002", "name": "n00000002"},
    ]
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line == (
        "ingest: kept 23 (train 17, val 6), skipped 6 (corrupt: 2, empty: 1, hidden_file: 1, "
        "not_an_image: 1, truncated: 1), duplicates 0 (dropped from val: 0)"
    )


@pytest.mark.parametrize("drop_leaks", [True, False])
def test_train_val_duplicates_are_reported_and_dropped(tmp_path, drop_leaks):
    source = make_tree(tmp_path / "src")
    shutil.copy(source / "train/n00000001/n00000001_0.JPEG", source / "val/n00000001/leak.JPEG")
    cfg = data_config(tmp_path, source="folder", url=str(source), classes=2, drop_leaks=drop_leaks)
    summary = ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False)
    assert summary.duplicates == 1 and summary.dropped_from_val == (1 if drop_leaks else 0)
    leak = next(row for row in read_manifest(tmp_path / "raw") if row["path"].endswith("leak.JPEG"))
    assert leak["reason"] == "also_in_train:images/train/n00000001/n00000001_0.JPEG"
    assert leak["status"] == ("duplicate" if drop_leaks else "kept")
    assert (tmp_path / "raw/images/val/n00000001/leak.JPEG").exists() == (not drop_leaks)


def test_caps_and_class_choice_are_seeded_and_manifest_is_byte_identical(tmp_path):
    source = make_tree(tmp_path / "src", classes=[f"n0000000{i}" for i in range(5)])
    cfg = data_config(
        tmp_path, source="folder", url=str(source), classes=3, train_per_class=4, val_per_class=2
    )
    first = ingest(cfg, tmp_path / "a", tmp_path / "work", progress=False)
    second = ingest(cfg, tmp_path / "b", tmp_path / "work", progress=False)
    assert (tmp_path / "a/manifest.csv").read_bytes() == (tmp_path / "b/manifest.csv").read_bytes()
    assert first.classes == second.classes and len(first.classes) == 3
    assert (first.kept_train, first.kept_val) == (12, 6)
    other = {
        seed: ingest(cfg.model_copy(update={"seed": seed}), tmp_path / f"s{seed}", tmp_path / "w")
        for seed in (1, 2)
    }
    manifests = {(tmp_path / f"s{seed}/manifest.csv").read_bytes() for seed in other}
    assert len(manifests | {(tmp_path / "a/manifest.csv").read_bytes()}) > 1


def test_explicit_wnids_and_class_errors(tmp_path):
    source = make_tree(tmp_path / "src", classes=["n00000001", "n00000002", "n00000003"])
    cfg = data_config(tmp_path, source="folder", url=str(source), classes=["n00000003", "n00000001"])
    assert ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False).classes == [
        "n00000001",
        "n00000003",
    ]
    with pytest.raises(IngestError, match=r"unknown wnid\(s\) n09999999; available: n00000001, n00000002"):
        ingest(cfg.model_copy(update={"classes": ["n09999999"]}), tmp_path / "raw", tmp_path / "work")
    with pytest.raises(IngestError, match="data.classes: 7 classes asked, the source has 3"):
        ingest(cfg.model_copy(update={"classes": 7}), tmp_path / "raw", tmp_path / "work")


def test_empty_class_folder_and_missing_split_are_clear_errors(tmp_path):
    source = make_tree(tmp_path / "src")
    (source / "train/n00000003").mkdir()
    cfg = data_config(tmp_path, source="folder", url=str(source), classes=2)
    with pytest.raises(SourceError, match="n00000003: class folder is empty"):
        ingest(cfg, tmp_path / "raw", tmp_path / "work")
    (source / "train/n00000003").rmdir()
    shutil.rmtree(source / "val")
    with pytest.raises(SourceError, match="no val folder") as error:
        ingest(cfg, tmp_path / "raw", tmp_path / "work")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "raw").exists()


def test_class_missing_from_val_is_a_clear_error(tmp_path):
    source = make_tree(tmp_path / "src")
    shutil.rmtree(source / "val/n00000002")
    cfg = data_config(tmp_path, source="folder", url=str(source), classes=2)
    with pytest.raises(SourceError, match="n00000002 only in train/"):
        ingest(cfg, tmp_path / "raw", tmp_path / "work")


def test_folder_archive_source(tmp_path):
    source = make_tree(tmp_path / "src")
    archive = tmp_path / "subset.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="subset")
    cfg = data_config(tmp_path, source="folder", url=archive.as_uri(), classes=2)
    summary = ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False)
    assert (summary.kept_train, summary.kept_val) == (12, 6)
    assert len(list((tmp_path / "work/extracted").iterdir())) == 1


def test_ingest_is_atomic(tmp_path, monkeypatch):
    source = make_tree(tmp_path / "src")
    cfg = data_config(tmp_path, source="folder", url=str(source), classes=2)
    write(tmp_path / "raw/manifest.csv", b"previous run\n")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ingest_module.shutil, "copyfile", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False)
    assert (tmp_path / "raw/manifest.csv").read_bytes() == b"previous run\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["raw", "src"], "no staging left behind"
    monkeypatch.undo()
    ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False)
    assert read_manifest(tmp_path / "raw")[0]["status"] == "kept"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["raw", "src"]


def test_synthetic_generation_is_deterministic(tmp_path):
    cfg = data_config(tmp_path).synthetic
    generate(cfg, 3, tmp_path / "a")
    generate(cfg, 3, tmp_path / "b")
    generate(cfg, 4, tmp_path / "c")
    files = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    assert len(files) == cfg.classes * (cfg.train_per_class + cfg.val_per_class) + 1
    assert all((tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes() for name in files)
    assert any((tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes() for name in files)
    assert "n90000000 red circle" in (tmp_path / "a/classes.txt").read_text()


def test_synthetic_ingest_end_to_end(tmp_path):
    synthetic = {"classes": 4, "train_per_class": 64, "val_per_class": 16, "image_size": 72}
    cfg = data_config(tmp_path, synthetic=synthetic, classes=4, train_per_class=64, val_per_class=16)
    summary = ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False)
    assert (summary.kept_train, summary.kept_val) == (4 * 64, 4 * 16)
    assert sum(summary.skipped.values()) == 0
    names = [entry["name"] for entry in json.loads((tmp_path / "raw/classes.json").read_text())]
    assert names == ["red circle", "yellow square", "green triangle", "cyan stripes"]
    again = ingest(cfg, tmp_path / "raw2", tmp_path / "work2", progress=False)
    assert again.line() == summary.line()
    assert (tmp_path / "raw/manifest.csv").read_bytes() == (tmp_path / "raw2/manifest.csv").read_bytes()


def _ilsvrc_like(root: Path, wnids: list[str], labels: str) -> Path:
    """image-net.org layout: a tar of per-class tars, a tar of flat val files, Kaggle or devkit labels."""
    root.mkdir(parents=True)
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as outer:
        for index, wnid in enumerate(wnids):
            inner_bytes = io.BytesIO()
            with tarfile.open(fileobj=inner_bytes, mode="w") as inner:
                for number in range(3):
                    data = jpeg(100 * index + number)
                    info = tarfile.TarInfo(f"{wnid}_{number}.JPEG")
                    info.size = len(data)
                    inner.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo(f"{wnid}.tar")
            info.size = inner_bytes.tell()
            inner_bytes.seek(0)
            outer.addfile(info, inner_bytes)
    val_labels = [wnids[number % len(wnids)] for number in range(4)]
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as tar:
        for number in range(1, 5):
            data = jpeg(1000 + number)
            info = tarfile.TarInfo(f"ILSVRC2012_val_{number:08d}.JPEG")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if labels == "kaggle":
        rows = [f"ILSVRC2012_val_{n:08d},{wnid} 1 2 3 4" for n, wnid in enumerate(val_labels, start=1)]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
        (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} name of {w}, other\n" for w in wnids))
    else:
        from scipy.io import savemat

        devkit = root / "ILSVRC2012_devkit_t12/data"
        devkit.mkdir(parents=True)
        ids = {wnid: index + 1 for index, wnid in enumerate(wnids)}
        (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text(
            "".join(f"{ids[w]}\n" for w in val_labels)
        )
        synsets = np.zeros(
            len(wnids), dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
        )
        for wnid, index in ids.items():
            synsets[index - 1] = (index, wnid, f"name of {wnid}, other", 0)
        savemat(devkit / "meta.mat", {"synsets": synsets})
    return root


@pytest.mark.parametrize("labels", ["kaggle", "devkit"])
def test_ilsvrc2012_archives_and_labels(tmp_path, labels):
    wnids = ["n01440764", "n01443537"]
    location = _ilsvrc_like(tmp_path / "imagenet", wnids, labels)
    cfg = data_config(tmp_path, source="ilsvrc2012", url=str(location), classes=2)
    summary = ingest(cfg, tmp_path / "raw", tmp_path / "work", progress=False)
    assert (summary.kept_train, summary.kept_val) == (6, 4)
    rows = read_manifest(tmp_path / "raw")
    val = {row["path"]: row["wnid"] for row in rows if row["split"] == "val"}
    assert val["images/val/n01440764/ILSVRC2012_val_00000001.JPEG"] == "n01440764"
    assert val["images/val/n01443537/ILSVRC2012_val_00000002.JPEG"] == "n01443537"
    names = [entry["name"] for entry in json.loads((tmp_path / "raw/classes.json").read_text())]
    assert names == ["name of n01440764", "name of n01443537"]
    capped = cfg.model_copy(update={"train_per_class": 2})
    ingest(capped, tmp_path / "a", tmp_path / "work-a", progress=False)
    ingest(capped, tmp_path / "b", tmp_path / "work-b", progress=False)
    assert (tmp_path / "a/manifest.csv").read_bytes() == (tmp_path / "b/manifest.csv").read_bytes()
