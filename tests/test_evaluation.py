"""Evaluation on tiny synthetic data: top-k, 10-crop (paper Sec. 4.1), confusion, figures, safe loading."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from pipeline_copy import read_params

from alexnet.config import Config, parse
from alexnet.data.ingest import ingest
from alexnet.data.input import load_prepared
from alexnet.data.preprocess import preprocess
from alexnet.evaluation import (
    confusion_matrix,
    evaluate_run,
    figure_indices,
    load_model,
    nearest,
    predict,
    softmax,
    top_k_error,
)
from alexnet.model import build_model

FIGURES = ("confusion.png", "conv1_kernels.png", "top5_predictions.png", "nearest_neighbours.png")


def small_config(root: Path) -> Config:
    raw = read_params()
    raw["data"]["cache_dir"] = str(root / "cache")
    raw["data"]["synthetic"].update(classes=3, train_per_class=12, val_per_class=4, image_size=48)
    raw["data"].update(classes=3, train_per_class=12, val_per_class=4)
    raw["preprocess"].update(size=40, shards=1, workers=1)
    raw["train"].update(crop=32)
    raw["evaluate"].update(batch_size=16, figure_images=4)
    return parse(raw)


def make_prepared(root: Path) -> tuple[Config, Path]:
    """The synthetic source ingested and preprocessed into root/prepared, as the first two stages do."""
    cfg = small_config(root)
    ingest(cfg.data, root / "raw", root / "work", progress=False)
    preprocess(cfg.preprocess, root / "raw", root / "prepared", progress=False)
    return cfg, root / "prepared"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    cfg, folder = make_prepared(root)
    return cfg, load_prepared(folder), root


@pytest.fixture(scope="module")
def position_sensitive_model(prepared):
    """Flatten keeps where things are, so the ten crops (and their mirrors) give different outputs."""
    cfg, data, _ = prepared
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((cfg.train.crop, cfg.train.crop, 3)),
            keras.layers.Rescaling(1 / 64),
            keras.layers.Conv2D(4, 5, strides=3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(data.num_classes),
        ]
    )


def val_images_by_hand(data) -> tuple[np.ndarray, np.ndarray]:
    """The val split decoded straight from the shards, the mean image subtracted with numpy."""
    images, labels = [], []
    for path in data.files("val"):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            example = tf.train.Example.FromString(record)
            encoded = example.features.feature["image/encoded"].bytes_list.value[0]
            images.append(tf.io.decode_jpeg(encoded, channels=3).numpy().astype(np.float32) - data.mean_image)
            labels.append(example.features.feature["image/label"].int64_list.value[0])
    return np.stack(images), np.array(labels)


def test_top_k_error_on_a_worked_example():
    probabilities = np.array(
        [
            [0.10, 0.60, 0.20, 0.10],  # label 1: top-1 hit
            [0.50, 0.05, 0.30, 0.15],  # label 2: second best, a top-2 hit only
            [0.40, 0.30, 0.20, 0.10],  # label 3: last, missed even at top-3
        ]
    )
    labels = np.array([1, 2, 3])
    assert top_k_error(probabilities, labels, 1) == pytest.approx(2 / 3)
    assert top_k_error(probabilities, labels, 2) == pytest.approx(1 / 3)
    assert top_k_error(probabilities, labels, 3) == pytest.approx(1 / 3)
    assert top_k_error(probabilities, labels, 5) == 0.0  # k beyond the class count means every class


def test_ten_crop_is_the_mean_of_the_ten_crops_softmax(prepared, position_sensitive_model):
    cfg, data, _ = prepared
    crop, size = cfg.train.crop, data.size
    images, labels = val_images_by_hand(data)
    far, mid = size - crop, (size - crop) // 2
    corners = ((0, 0), (0, far), (far, 0), (far, far), (mid, mid))
    windows = [images[:, top : top + crop, left : left + crop] for top, left in corners]
    windows += [window[:, :, ::-1] for window in windows]  # Sec. 4.1: "and their horizontal reflections"
    per_crop = [softmax(np.asarray(position_sensitive_model(window), np.float64)) for window in windows]
    expected = np.mean(per_crop, axis=0)

    result = predict(position_sensitive_model, data, crop, batch_size=7, ten_crop=True)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_allclose(result.ten_crop, expected, atol=1e-5)
    np.testing.assert_allclose(result.centre, per_crop[4], atol=1e-5)
    centre_only = predict(position_sensitive_model, data, crop, batch_size=7, ten_crop=False)
    assert centre_only.ten_crop is None
    np.testing.assert_allclose(centre_only.centre, result.centre, atol=1e-5)
    assert np.abs(result.ten_crop - result.centre).max() > 1e-3, "the crops should not all agree"


def test_confusion_matrix_counts_every_val_image():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 0, 2])
    matrix = confusion_matrix(labels, predicted, 3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert matrix.sum() == len(labels)


def test_figure_indices_take_classes_in_turn():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    assert figure_indices(labels, 4).tolist() == [0, 1, 3, 5]
    assert len(figure_indices(labels, 20)) == len(labels)


def test_nearest_streams_batches_and_keeps_the_closest_first():
    queries = np.array([[0.0, 0.0], [10.0, 10.0]])
    points = np.array([[5.0, 5.0], [1.0, 0.0], [9.0, 9.0], [0.0, 0.5], [10.0, 10.0], [3.0, 0.0]])
    batches = [(points[i : i + 2], np.arange(i, i + 2)) for i in range(0, len(points), 2)]
    distances, items = nearest(queries, batches, 3)
    assert items.tolist() == [[3, 1, 5], [4, 2, 0]]
    np.testing.assert_allclose(distances[0], [0.5, 1.0, 3.0])


def test_evaluate_run_writes_metrics_confusion_and_figures(prepared):
    cfg, data, root = prepared
    model_file = root / "model.keras"
    build_model(cfg.model, data.num_classes, cfg.train.crop).save(model_file)
    report_dir = root / "report"
    results = evaluate_run(cfg, data, model_file, report_dir)

    val_count = data.counts["val"]
    assert results["val_images"] == val_count
    assert json.loads((report_dir / "metrics.json").read_text()) == results
    with (report_dir / "confusion.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == val_count
    with (report_dir / "per_class.csv").open() as handle:
        assert sum(int(row["images"]) for row in csv.DictReader(handle)) == val_count
    with (report_dir / "per_image.csv").open() as handle:
        per_image = list(csv.DictReader(handle))
    assert [int(row["index"]) for row in per_image] == list(range(val_count))
    top_k = cfg.evaluate.top_k
    for column, metric in (("top1_correct", "top1_error"), (f"top{top_k}_correct", f"top{top_k}_error"),
                           ("ten_crop_top1_correct", "ten_crop_top1_error")):  # fmt: skip
        assert 1.0 - np.mean([int(row[column]) for row in per_image]) == pytest.approx(results[metric]), column
    assert results["classes"] == data.num_classes
    for name in FIGURES:
        path = report_dir / "figures" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        with Image.open(path) as image:
            assert min(image.size) >= 300 and max(image.size) <= 4000, (name, image.size)
            assert np.asarray(image.convert("L")).std() > 10, f"{name} looks blank"


def test_only_the_figure_seeds_draw_fig4_and_every_seed_keeps_its_metrics(prepared):
    cfg, data, root = prepared
    model_file = root / "model.keras"
    build_model(cfg.model, data.num_classes, cfg.train.crop).save(model_file)
    other_seed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": 7})})
    assert cfg.train.seed in cfg.evaluate.figure_seeds and 7 not in cfg.evaluate.figure_seeds
    report_dir = root / "report-seed7"
    results = evaluate_run(other_seed, data, model_file, report_dir)
    assert json.loads((report_dir / "metrics.json").read_text()) == results
    assert {"top1_error", "top5_error", "val_images"} <= set(results)
    drawn = sorted(path.name for path in (report_dir / "figures").iterdir())
    assert drawn == ["confusion.png", "conv1_kernels.png"]  # cheap ones stay; no pass over the train split


def test_load_model_refuses_a_lambda_layer(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match=r"lambda\.keras: refused, it carries code \(a Lambda layer\)"):
        load_model(tmp_path / "lambda.keras")


def test_load_model_refuses_other_formats(tmp_path):
    legacy = tmp_path / "model.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(ValueError, match=r"model\.h5: not a \.keras file"):
        load_model(legacy)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "absent.keras")
