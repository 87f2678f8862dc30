"""Bad input is one line and nothing is lost: decompression bombs are `too_large`; config errors speak params.yaml."""

from __future__ import annotations

import copy
import csv
import io

import numpy as np
import pytest
from PIL import Image
from pipeline_copy import read_params

from alexnet.config import ConfigError, parse
from alexnet.data.decode import PILLOW_PIXEL_LIMIT, inspect_bytes
from alexnet.data.ingest import ingest


def png(width: int, height: int, mode: str = "1") -> bytes:
    """A blank PNG: a few kB of file for any number of pixels (a decompression bomb when large)."""
    stream = io.BytesIO()
    Image.new(mode, (width, height)).save(stream, format="PNG")
    return stream.getvalue()


def test_bombs_are_too_large_by_the_limit_or_pillows_own():
    bomb = png(10_000, 10_000)
    assert len(bomb) < 100_000
    info = inspect_bytes(bomb, "bomb.png")  # Pillow's default limit: 89,478,485 pixels
    assert (info.ok, info.reason, info.width, info.height) == (False, "too_large", 10_000, 10_000)
    huge = png(14_000, 14_000)
    assert PILLOW_PIXEL_LIMIT < 14_000**2
    assert inspect_bytes(huge, "huge.png", max_pixels=PILLOW_PIXEL_LIMIT).reason == "too_large"


def test_ingest_skips_images_over_data_max_image_pixels_and_lists_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("a", "b"):
            folder = tmp_path / "src" / split / wnid
            folder.mkdir(parents=True)
            for index in range(3):
                Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    (tmp_path / "src" / "train" / "a" / "big.png").write_bytes(png(100, 80, "RGB"))
    params = read_params()
    params["data"].update(
        source="folder", url=str(tmp_path / "src"), classes=2, train_per_class=None, val_per_class=None,
        cache_dir=str(tmp_path / "cache"), max_image_pixels=8_000 - 1,
    )  # fmt: skip
    summary = ingest(parse(params).data, tmp_path / "raw", tmp_path / "work", progress=False)
    assert summary.skipped == {"too_large": 1} and summary.kept == 12
    assert "skipped 1 (too_large: 1)" in capsys.readouterr().out
    with open(tmp_path / "raw" / "manifest.csv", newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if row["status"] != "kept"]
    assert [(row["path"], row["status"], row["reason"], row["width"], row["height"]) for row in rows] == [
        ("train/a/big.png", "skipped", "too_large", "100", "80")
    ]
    params["data"]["max_image_pixels"] = 8_000
    assert ingest(parse(params).data, tmp_path / "raw", tmp_path / "work", progress=False).kept == 13


INTERNALS = ("constrained-", "literal[", "list[", "function-", "instance of", "Config", "after validation")


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("data", "classes", 1, "data.classes: Input should be greater than or equal to 2 (got 1)"),
        ("data", "classes", "ten", "data.classes: should be a valid integer or a valid list (got 'ten')"),
        ("data", "classes", ["n01440764", "bad wnid"], "data.classes.1: String should match pattern"),
        ("data", "classes", [1, 2], "data.classes.0: Input should be a valid string (got 1)"),
        ("train", "xla", "maybe", "train.xla: should be 'auto' or a valid boolean (got 'maybe')"),
        ("data", "train_per_class", 0, "data.train_per_class: Input should be greater than 0 (got 0)"),
        ("data", "synthetic", 3, "data.synthetic: Input should be a valid dictionary (got 3)"),
        ("data", "max_image_pixels", 0, "data.max_image_pixels: Input should be greater than or equal to 1"),
        ("figure1", "learning_rates", [], "figure1.learning_rates: List should have at least 1 item, not 0"),
    ],
)
def test_config_errors_name_the_key_without_library_internals(section, key, value, expected):
    params = copy.deepcopy(read_params())
    params[section][key] = value
    with pytest.raises(ConfigError) as caught:
        parse(params)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert not [word for word in INTERNALS if word in message], message
