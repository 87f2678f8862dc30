"""tf.data input pipelines over the prepared TFRecord shards (paper Sec. 2 and 4.1).

Mean subtraction uses the per-pixel mean image of the train split (Sec. 2: "subtracting the
mean activity over the training set from each pixel"), cropped at the same window as the image,
so a crop sees the mean of exactly its own pixels. Randomness is stateless, keyed by
(seed, epoch, image index): reruns and resumed runs see identical batches.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from alexnet.config import AugmentConfig

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/label": tf.io.FixedLenFeature([], tf.int64),
}


@dataclass(frozen=True)
class PreparedData:
    folder: Path
    mean_image: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    counts: dict[str, int]
    classes: list[dict]
    data_hash: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def size(self) -> int:
        return int(self.mean_image.shape[0])

    def files(self, split: str) -> list[str]:
        return sorted(str(path) for path in self.folder.glob(f"{split}-*.tfrecord"))

    def class_names(self) -> list[str]:
        return [entry.get("name") or entry["wnid"] for entry in self.classes]


def load_prepared(folder: Path) -> PreparedData:
    stats_file = folder / "stats.json"
    if not stats_file.is_file():
        raise FileNotFoundError(
            f"{stats_file}: missing; run the preprocess stage first (dvc repro preprocess)"
        )
    stats = json.loads(stats_file.read_text())
    return PreparedData(
        folder=folder,
        mean_image=np.load(folder / "mean_image.npy", allow_pickle=False),
        eigenvalues=np.asarray(stats["rgb_eigenvalues"], np.float32),
        eigenvectors=np.asarray(stats["rgb_eigenvectors"], np.float32),
        counts=stats["counts"],
        classes=json.loads((folder / "classes.json").read_text()),
        data_hash=stats["manifest_sha256"][:12],
    )


def _parse(record):
    parsed = tf.io.parse_single_example(record, FEATURES)
    return parsed["image/encoded"], tf.cast(parsed["image/label"], tf.int32)


def parsed_records(data: PreparedData, split: str) -> tf.data.Dataset:
    """(JPEG bytes, label) of every record of a split, in shard order."""
    return tf.data.TFRecordDataset(data.files(split)).map(_parse)


def pca_lighting(image, eigenvalues, eigenvectors, alpha):
    """Sec. 4.1: add sum_i p_i * alpha_i * lambda_i to every RGB pixel (eigen on [0, 1] pixels)."""
    offset = tf.linalg.matvec(eigenvectors, alpha * eigenvalues) * 255.0
    return image + offset


def train_dataset(
    data: PreparedData,
    augment: AugmentConfig,
    crop: int,
    batch_size: int,
    seed: int,
    first_epoch: int,
    last_epoch: int,
    shuffle_buffer: int,
    deterministic: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Batches for epochs [first_epoch, last_epoch), drop_remainder, identical for the same seed.

    shard=(index, count): this process's batch_size // count images of every batch (data parallel);
    the count processes together see exactly the single-process batches.
    """
    mean_image = tf.constant(data.mean_image)
    eigenvalues, eigenvectors = tf.constant(data.eigenvalues), tf.constant(data.eigenvectors)
    size = data.size
    files = data.files("train")

    def augment_one(key, encoded, label):
        if augment.random_crop:
            offsets = tf.random.stateless_uniform([2], seed=key, maxval=size - crop + 1, dtype=tf.int32)
        else:
            offsets = tf.fill([2], (size - crop) // 2)
        window = tf.stack([offsets[0], offsets[1], crop, crop])
        image = tf.cast(tf.io.decode_and_crop_jpeg(encoded, window, channels=3), tf.float32)
        image -= mean_image[offsets[0] : offsets[0] + crop, offsets[1] : offsets[1] + crop, :]
        if augment.flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=key + tf.constant([0, 1], tf.int64))
        if augment.pca_lighting > 0:
            alpha = tf.random.stateless_normal(
                [3], seed=key + tf.constant([0, 2], tf.int64), stddev=augment.pca_lighting
            )
            image = pca_lighting(image, eigenvalues, eigenvectors, alpha)
        return image, label

    def epoch_dataset(epoch):
        records = tf.data.TFRecordDataset(files)
        records = records.shuffle(
            shuffle_buffer, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False
        )
        records = records.map(_parse).take(steps * batch_size).enumerate().shard(count, index)
        return records.map(
            lambda index, parsed: (tf.stack([tf.constant(seed, tf.int64), epoch * 10**9 + index]), parsed)
        )

    index, count = shard
    steps = steps_per_epoch(data, batch_size)
    dataset = functools.reduce(
        tf.data.Dataset.concatenate, [epoch_dataset(epoch) for epoch in range(first_epoch, last_epoch)]
    )
    dataset = dataset.map(
        lambda key, parsed: augment_one(key, *parsed),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    return dataset.batch(batch_size // count, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(data: PreparedData, batch_size: int) -> int:
    return max(1, data.counts["train"] // batch_size)


def eval_dataset(data: PreparedData, crop: int, batch_size: int, split: str = "val", ten_crop: bool = False):
    """(images, labels): a centre crop, or the ten crops of Sec. 4.1 stacked as [batch, 10, crop, crop, 3]."""
    mean_image = tf.constant(data.mean_image)
    size = data.size

    def centred(encoded, label):
        image = tf.cast(tf.io.decode_jpeg(encoded, channels=3), tf.float32) - mean_image
        if not ten_crop:
            start = (size - crop) // 2
            return image[start : start + crop, start : start + crop, :], label
        return ten_crops(image, crop), label

    records = parsed_records(data, split)
    return (
        records.map(centred, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    )


def ten_crops(image, crop: int):
    """Four corners and the centre, then their horizontal mirrors (Sec. 4.1, test time)."""
    size = tf.shape(image)[0]
    far, mid = size - crop, (size - crop) // 2
    corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
    patches = [image[top : top + crop, left : left + crop, :] for top, left in corners]
    patches += [tf.reverse(patch, axis=[1]) for patch in patches]
    return tf.stack(patches)
