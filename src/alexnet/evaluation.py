"""Evaluation (paper Sec. 4.1 and 6): top-k error, centre crop vs 10-crop, confusion, per class, and the
figures of Sec. 6.1 (conv1 kernels, top-5 predictions, nearest neighbours in fc7 space)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet import runs
from alexnet.model.saved import load_model, softmax  # noqa: F401  (also imported from here)
from alexnet.run_identity import CONFUSION_FILE, FIGURES_DIR, METRICS_FILE, PER_CLASS_FILE, PER_IMAGE_FILE

# Sec. 6.1, Figure 4: "the six training images that produce feature vectors in the last hidden layer
# with the smallest Euclidean distance from the feature vector for the test image".
NEIGHBOURS = 6


def top_k_error(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose true label is not among the k highest scores."""
    return float(1.0 - np.mean(_correct(probabilities, labels, k)))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1)
    return np.divide(np.diag(matrix), totals, out=np.zeros(len(totals)), where=totals > 0)


@dataclass
class Predictions:
    labels: np.ndarray
    centre: np.ndarray  # softmax of the centre crop, [n, classes]
    ten_crop: np.ndarray | None  # mean of the ten crops' softmax outputs, [n, classes]


CENTRE_CROP = 4  # alexnet.data.input.ten_crops: four corners, then the centre, then the mirrors


def predict(model, data, crop: int, batch_size: int, ten_crop: bool) -> Predictions:
    """Softmax outputs over the val split: centre crop, and the 10-crop average (Sec. 4.1)."""
    from alexnet.data.input import eval_dataset

    labels, centre, averaged = [], [], []
    if not ten_crop:
        for images, batch_labels in eval_dataset(data, crop, batch_size):
            centre.append(softmax(np.asarray(model(images, training=False), np.float64)))
            labels.append(batch_labels.numpy())
        return Predictions(np.concatenate(labels), np.concatenate(centre), None)
    for crops, batch_labels in eval_dataset(data, crop, max(1, batch_size // 10), ten_crop=True):
        count = crops.shape[0]
        flat = np.reshape(crops, (count * 10, crop, crop, 3))
        probabilities = softmax(np.asarray(model(flat, training=False), np.float64)).reshape(count, 10, -1)
        centre.append(probabilities[:, CENTRE_CROP])  # one of the ten: no second pass over the val split
        averaged.append(probabilities.mean(axis=1))
        labels.append(batch_labels.numpy())
    return Predictions(np.concatenate(labels), np.concatenate(centre), np.concatenate(averaged))


def metrics(predictions: Predictions, top_k: int) -> dict[str, float]:
    result = {
        "top1_error": top_k_error(predictions.centre, predictions.labels, 1),
        f"top{top_k}_error": top_k_error(predictions.centre, predictions.labels, top_k),
    }
    if predictions.ten_crop is not None:
        result["ten_crop_top1_error"] = top_k_error(predictions.ten_crop, predictions.labels, 1)
        result[f"ten_crop_top{top_k}_error"] = top_k_error(predictions.ten_crop, predictions.labels, top_k)
    result["val_images"] = int(len(predictions.labels))
    result["classes"] = int(predictions.centre.shape[1])
    return result


def write_confusion_csv(path: Path, labels: np.ndarray, predictions: np.ndarray, names: list[str]) -> None:
    """One row per val image, the form `dvc plots` draws as a confusion matrix."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["actual", "predicted"])
        writer.writerows((names[a], names[p]) for a, p in zip(labels, predictions, strict=True))


def write_per_image_csv(path: Path, predictions: Predictions, top_k: int) -> None:
    """Per val image (in the val split's fixed record order): whether each evaluation got it right. The
    claims module pairs two evaluations of the same model image by image (10-crop vs centre crop)."""
    columns = {"top1_correct": (predictions.centre, 1), f"top{top_k}_correct": (predictions.centre, top_k)}
    if predictions.ten_crop is not None:
        columns["ten_crop_top1_correct"] = (predictions.ten_crop, 1)
        columns[f"ten_crop_top{top_k}_correct"] = (predictions.ten_crop, top_k)
    correct = {name: _correct(scores, predictions.labels, k) for name, (scores, k) in columns.items()}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label", *correct])
        for index, label in enumerate(predictions.labels):
            writer.writerow([index, int(label), *(int(values[index]) for values in correct.values())])


def _correct(probabilities: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, : min(k, probabilities.shape[1])]
    return np.any(top == labels[:, None], axis=1)


def write_per_class_csv(path: Path, matrix: np.ndarray, names: list[str]) -> None:
    accuracy = per_class_accuracy(matrix)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "images", "accuracy"])
        writer.writerows((name, int(matrix[i].sum()), f"{accuracy[i]:.4f}") for i, name in enumerate(names))


def figure_indices(labels: np.ndarray, count: int) -> np.ndarray:
    """`count` val indices taking classes in turn (the first image of each class, then the second, ...)."""
    rank_in_class = np.zeros(len(labels), np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank_in_class[members] = np.arange(len(members))
    order = np.lexsort((labels, rank_in_class))
    return np.sort(order[:count])


def nearest(
    query_features: np.ndarray, batches: Iterable[tuple[np.ndarray, np.ndarray]], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the `count` items whose features are nearest by Euclidean distance, nearest first.

    `batches` yields (features [b, d], items [b, ...]); only the best items so far are kept, so the train
    split streams through without being held in memory. Returns (distances [q, k], items [q, k, ...]).
    """
    queries = np.asarray(query_features, np.float64)
    best_distances = np.empty((len(queries), 0))
    best_items: list[list[np.ndarray]] = [[] for _ in queries]
    for features, items in batches:
        features = np.asarray(features, np.float64)
        distances = np.linalg.norm(queries[:, None, :] - features[None, :, :], axis=-1)
        candidates = np.concatenate([best_distances, distances], axis=1)
        order = np.argsort(candidates, axis=1, kind="stable")[:, :count]
        kept = best_distances.shape[1]
        best_items = [
            [best_items[row][j] if j < kept else items[j - kept] for j in order[row]]
            for row in range(len(queries))
        ]
        best_distances = np.take_along_axis(candidates, order, axis=1)
    return best_distances, np.asarray(best_items)


def _val_crops(data, crop: int, batch_size: int, indices: np.ndarray) -> np.ndarray:
    """The mean-subtracted centre crops of the val images at `indices`."""
    from alexnet.data.input import eval_dataset

    wanted, crops, seen = set(indices.tolist()), [], 0
    for images, _ in eval_dataset(data, crop, batch_size):
        images = images.numpy()
        crops += [images[i] for i in range(len(images)) if seen + i in wanted]
        seen += len(images)
        if seen > indices.max():
            break
    return np.stack(crops)


def prediction_figures(model, cfg, data, predictions: Predictions, figure_dir: Path) -> None:
    """Fig. 4: top-5 predictions of a few val images, and their nearest train images in fc7 space."""
    import keras

    from alexnet import figures
    from alexnet.data.input import eval_dataset

    crop = cfg.train.crop
    start = (data.size - crop) // 2
    mean_crop = data.mean_image[start : start + crop, start : start + crop, :]
    indices = figure_indices(predictions.labels, cfg.evaluate.figure_images)
    queries = _val_crops(data, crop, cfg.evaluate.batch_size, indices)
    probabilities = predictions.ten_crop if predictions.ten_crop is not None else predictions.centre
    names = data.class_names()
    figures.top5_grid(
        queries + mean_crop, probabilities[indices], predictions.labels[indices], names,
        figure_dir / "top5_predictions.png",
    )  # fmt: skip

    # fc7 is a Dense layer with its activation fused, so its output is the post-ReLU activation.
    fc7 = keras.Model(model.input, model.get_layer("fc7").output)

    def train_batches():
        for images, _ in eval_dataset(data, crop, cfg.evaluate.batch_size, split="train"):
            features = np.asarray(fc7(images, training=False))
            yield features, figures.displayable(images.numpy() + mean_crop)

    query_features = np.asarray(fc7(queries, training=False))
    _, neighbours = nearest(query_features, train_batches(), NEIGHBOURS)
    figures.nearest_neighbours(queries + mean_crop, neighbours, figure_dir / "nearest_neighbours.png")


def draws_prediction_figures(cfg) -> bool:
    """Fig. 4 costs an inference pass over the train split; one seed per variant (evaluate.figure_seeds)
    draws it, every seed gets every metric."""
    return cfg.train.seed in cfg.evaluate.figure_seeds


def evaluate_run(cfg, data, model_file: Path, report_dir: Path) -> dict[str, float]:
    """Evaluate one model on the val split: metrics.json, confusion.csv, per_class.csv, per_image.csv,
    figures/."""
    from alexnet import figures

    model = load_model(model_file)
    predictions = predict(model, data, cfg.train.crop, cfg.evaluate.batch_size, cfg.evaluate.ten_crop)
    results = metrics(predictions, cfg.evaluate.top_k)
    names = data.class_names()
    predicted = predictions.centre.argmax(axis=1)
    matrix = confusion_matrix(predictions.labels, predicted, data.num_classes)
    report_dir.mkdir(parents=True, exist_ok=True)
    write_confusion_csv(report_dir / CONFUSION_FILE, predictions.labels, predicted, names)
    write_per_class_csv(report_dir / PER_CLASS_FILE, matrix, names)
    write_per_image_csv(report_dir / PER_IMAGE_FILE, predictions, cfg.evaluate.top_k)
    figure_dir = report_dir / FIGURES_DIR
    figure_dir.mkdir(exist_ok=True)
    figures.confusion(matrix, names, figure_dir / "confusion.png")
    figures.conv1_kernels(model, cfg.model.towers, figure_dir / "conv1_kernels.png")
    if draws_prediction_figures(cfg):
        prediction_figures(model, cfg, data, predictions, figure_dir)
    results["per_class_accuracy_min"] = float(per_class_accuracy(matrix).min())
    (report_dir / METRICS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    return results


def train_val_gap(history_file: Path) -> float | None:
    """history.csv's train-val gap, by its one definition (alexnet.runs.train_val_gap); None if absent."""
    return runs.train_val_gap(runs.read_history(history_file)) if history_file.is_file() else None
