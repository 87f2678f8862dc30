"""`alexnet predict`: any image format, bad files reported one line each, JSON output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_evaluation import make_prepared

from alexnet.cli import main
from alexnet.data.input import load_prepared
from alexnet.model import build_model


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A prepared-data folder, an untrained model saved as .keras, and images of several kinds."""
    root = tmp_path_factory.mktemp("predict")
    cfg, prepared = make_prepared(root)
    data = load_prepared(prepared)
    model_file = root / "model.keras"
    build_model(cfg.model, data.num_classes, cfg.train.crop).save(model_file)
    pixels = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    images = root / "images"
    images.mkdir()
    Image.fromarray(pixels).save(images / "photo.jpg", "JPEG")
    Image.fromarray(pixels).save(images / "drawing.png", "PNG")
    Image.fromarray(pixels).convert("L").save(images / "grey.jpg", "JPEG")
    Image.fromarray(pixels).convert("CMYK").save(images / "print.jpg", "JPEG")
    (images / "notes.jpg").write_text("not a picture\n")
    return {"model": model_file, "data": prepared, "images": images, "classes": data.class_names()}


def run_predict(project, capsys, *names: str, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    paths = [str(project["images"] / name) for name in names]
    argv = ["predict", *paths, "--model", str(project["model"]), "--data", str(project["data"]), *extra]
    try:
        main(argv)
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_predicts_jpeg_png_greyscale_and_cmyk(project, capsys):
    names = ("photo.jpg", "drawing.png", "grey.jpg", "print.jpg")
    status, out, err = run_predict(project, capsys, *names, extra=("--top", "2"))
    assert status == 0, err
    assert err == ""
    for name in names:
        assert str(project["images"] / name) in out
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(lines) == 2 * len(names)
    assert all(line.split(maxsplit=1)[1] in project["classes"] for line in lines)


def test_bad_files_are_one_line_each_and_the_rest_still_predicted(project, capsys):
    status, out, err = run_predict(project, capsys, "notes.jpg", "photo.jpg", "absent.jpg", "grey.jpg")
    assert status == 1
    errors = err.strip().splitlines()
    assert len(errors) == 2, err
    assert "notes.jpg: not an image" in errors[0]
    assert "absent.jpg: no such file" in errors[1]
    assert "Traceback" not in err
    assert str(project["images"] / "photo.jpg") in out
    assert str(project["images"] / "grey.jpg") in out


def test_json_output_parses(project, capsys):
    status, out, _ = run_predict(project, capsys, "photo.jpg", "drawing.png", "absent.jpg", extra=("--json",))
    assert status == 1
    result = json.loads(out)
    assert [entry["file"] for entry in result["predictions"]] == [
        str(project["images"] / "photo.jpg"),
        str(project["images"] / "drawing.png"),
    ]
    for entry in result["predictions"]:
        top = entry["top"]
        assert len(top) == len(project["classes"])  # --top 5 capped at the 3 classes there are
        probabilities = [item["probability"] for item in top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert {item["class"] for item in top} == set(project["classes"])
    assert result["errors"][0]["file"].endswith("absent.jpg")


def test_missing_model_is_a_clear_error(project, capsys, tmp_path):
    status, _, err = run_predict(
        project, capsys, "photo.jpg", extra=("--model", str(tmp_path / "none.keras"))
    )
    assert status == 2
    assert "none.keras: model file not found" in err
