"""`alexnet predict`: any image format, bad files reported one line each, JSON output, the same probabilities
as evaluation's centre crop, and never a class name from a dataset the model was not trained on."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from test_evaluation import make_prepared

from alexnet.cli import main
from alexnet.data.input import load_prepared
from alexnet.evaluation import predict as evaluate_predictions
from alexnet.model import build_model
from alexnet.model.saved import model_card, softmax
from alexnet.predict import model_input, prepared_image


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A prepared-data folder, an untrained model saved as .keras, and images of several kinds."""
    root = tmp_path_factory.mktemp("predict")
    cfg, prepared = make_prepared(root)
    data = load_prepared(prepared)
    model_file = root / "model.keras"
    build_model(cfg.model, data.num_classes, cfg.train.crop).save(model_file)
    (root / "run.json").write_text(json.dumps(model_card(cfg, data)))
    pixels = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    images = root / "images"
    images.mkdir()
    Image.fromarray(pixels).save(images / "photo.jpg", "JPEG")
    Image.fromarray(pixels).save(images / "drawing.png", "PNG")
    Image.fromarray(pixels).convert("L").save(images / "grey.jpg", "JPEG")
    Image.fromarray(pixels).convert("CMYK").save(images / "print.jpg", "JPEG")
    (images / "notes.jpg").write_text("not a picture\n")
    return {"model": model_file, "data": prepared, "images": images, "classes": data.class_names(),
            "cfg": cfg, "root": root}  # fmt: skip


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


def _model_copy(project, tmp_path, edit_card=None):
    """The fixture's model and card in a folder of their own, the card edited."""
    shutil.copy(project["model"], tmp_path / "model.keras")
    card = json.loads((project["root"] / "run.json").read_text())
    if edit_card:
        edit_card(card)
        (tmp_path / "run.json").write_text(json.dumps(card))
    return tmp_path / "model.keras"


def test_card_with_another_class_count_is_refused(project, capsys, tmp_path):
    """A 3-output model whose run.json lists 6 classes: no names are printed, one error line, exit 2."""
    model = _model_copy(project, tmp_path, lambda card: card.update(classes=card["classes"] * 2))
    status, out, err = run_predict(project, capsys, "photo.jpg", extra=("--model", str(model)))
    assert status == 2 and out == ""
    assert "3 outputs but" in err and "lists 6 classes" in err, err


def test_model_without_its_card_is_refused(project, capsys, tmp_path):
    model = _model_copy(project, tmp_path)
    status, out, err = run_predict(project, capsys, "photo.jpg", extra=("--model", str(model)))
    assert status == 2 and out == ""
    assert "run.json: missing" in err and "no class names" in err, err


def test_prepared_data_of_another_dataset_is_refused(project, capsys, tmp_path):
    """Same class count, other data: --data's names and mean image would be wrong, so predict stops."""
    model = _model_copy(project, tmp_path, lambda card: card.update(data_hash="0123456789ab"))
    status, out, err = run_predict(project, capsys, "photo.jpg", extra=("--model", str(model)))
    assert status == 2 and out == ""
    assert "was trained on 0123456789ab" in err and "pass --data" in err, err


def test_predict_gives_evaluation_centre_crop_probabilities_for_val_images(project):
    """From the raw val file, predict's preprocessing reaches the same model input and softmax as evaluate."""
    cfg, data = project["cfg"], load_prepared(project["data"])
    keras.utils.set_random_seed(3)
    model = keras.Sequential([  # position and pixel sensitive: a one-step difference in any pixel shows
        keras.Input((cfg.train.crop, cfg.train.crop, 3)), keras.layers.Rescaling(1 / 16),
        keras.layers.Flatten(), keras.layers.Dense(data.num_classes),
    ])  # fmt: skip
    evaluated = evaluate_predictions(model, data, cfg.train.crop, batch_size=8, ten_crop=False).centre
    sources = [
        tf.io.parse_single_example(record, {"image/source": tf.io.FixedLenFeature([], tf.string)})["image/source"]
        for record in tf.data.TFRecordDataset(data.files("val"))
    ]
    raw = project["root"] / "raw"
    inputs = [
        model_input(prepared_image(raw / source.numpy().decode(), data.size, cfg.preprocess.jpeg_quality),
                    data.mean_image, cfg.train.crop)
        for source in sources
    ]  # fmt: skip
    predicted = softmax(np.asarray(model.predict(np.stack(inputs), verbose=0), np.float64))
    assert predicted.shape == evaluated.shape == (len(sources), data.num_classes)
    assert np.ptp(evaluated, axis=1).min() > 0.05, "a model whose outputs barely move would prove nothing"
    np.testing.assert_allclose(predicted, evaluated, atol=1e-5)
