"""tf.data input pipelines over the prepared TFRecord shards (paper Sec. 2 and 4.1).

Mean subtraction uses the per-pixel mean image of the train split (Sec. 2: "subtracting the
mean activity over the training set from each pixel"), cropped at the same window as the image,
so a crop sees the mean of exactly its own pixels.

Randomness is stateless: the draws (crop offsets, flip, lighting) of each batch of an epoch come from keys
folded from (seed, epoch, batch, purpose), one row per image of the batch, so no two images or purposes share
random bits, a batch's draws are the same however many processes share it, and reruns and resumed runs see
identical batches. Preprocess writes records in a seeded shuffled order; training
reads the shards interleaved, their order reshuffled every epoch, so a batch mixes the classes even
when the shuffle buffer holds a small fraction of the split (ILSVRC-2012: 2,048 of 1.28M).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from alexnet.config import AugmentConfig

CROP, FLIP, LIGHTING = 1, 2, 3  # the purposes a key is folded with
PROBE_SEED = 0  # the train subset scored in inference mode each epoch: the same for every run of a dataset
INTERLEAVE_CYCLE = 16  # shards read at once; records are already shuffled within each
IN_MEMORY_LIMIT_BYTES = 1 << 30  # decoded uint8 validation crops kept in memory up to this size

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
    jpeg_quality: int  # of the shards' images: alexnet.data.preprocess.prepared_square repeats them

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
    if "jpeg_quality" not in stats:
        raise ValueError(f"{stats_file}: written by an older preprocess; run it again (dvc repro preprocess)")
    return PreparedData(
        folder=folder,
        mean_image=np.load(folder / "mean_image.npy", allow_pickle=False),
        eigenvalues=np.asarray(stats["rgb_eigenvalues"], np.float32),
        eigenvectors=np.asarray(stats["rgb_eigenvectors"], np.float32),
        counts=stats["counts"],
        classes=json.loads((folder / "classes.json").read_text()),
        data_hash=stats["manifest_sha256"][:12],
        jpeg_quality=int(stats["jpeg_quality"]),
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
    in_memory: bool | None = None,
) -> tf.data.Dataset:
    """Batches for epochs [first_epoch, last_epoch), drop_remainder, identical for the same seed.

    shard=(index, count): this process's batch_size // count images of every batch (data parallel);
    the count processes together see exactly the single-process batches.

    in_memory (None: where the decoded split fits, fits_in_memory): decode every train image once, keep it as
    uint8 and crop whole batches from memory, instead of decoding each image's crop from its JPEG record every
    epoch (2 s of CPU per epoch of the default profile: a third of its steps' time on 2 cores). Both read the
    same records in the same order with the same draws. Their pixels differ only in the window's outermost rows
    and columns, where libjpeg's cropped decode upsamples chroma differently from the whole image's decode (0.2%
    of values in the default profile); the in-memory crop is the whole decode's, as evaluation's crops are.
    """
    files = data.files("train")
    in_memory = fits_in_memory(data.counts["train"], data.size) if in_memory is None else in_memory
    interleaving = dict(
        cycle_length=min(len(files), INTERLEAVE_CYCLE), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if in_memory:
        images, labels, shard_sizes = decoded_split(data, "train")
        split_images, split_labels = tf.constant(images), tf.constant(labels)
        ends = np.cumsum(shard_sizes).tolist()
        positions = {path: (end - count, end) for path, count, end in zip(files, shard_sizes, ends, strict=True)}

        def shard_elements(ordered):  # each shard's positions in the decoded split, in place of its records
            bounds = tf.constant([positions[path] for path in ordered], tf.int64)
            return tf.data.Dataset.from_tensor_slices(bounds).interleave(
                lambda bound: tf.data.Dataset.range(bound[0], bound[1]), **interleaving
            )
    else:

        def shard_elements(ordered):
            return tf.data.Dataset.from_tensor_slices(ordered).interleave(tf.data.TFRecordDataset, **interleaving)

    def epoch_batches(epoch):
        elements = shard_elements(epoch_file_order(files, seed, epoch))
        elements = elements.shuffle(shuffle_buffer, seed=seed * 1_000_003 + epoch, reshuffle_each_iteration=False)
        elements = elements.take(steps * batch_size).enumerate().shard(shard_count, shard_index)
        if in_memory:  # the epoch rides with each batch: one map for all epochs captures the split once
            batches = elements.batch(batch_size // shard_count, drop_remainder=True)
            return batches.map(lambda indices, positions: (tf.constant(epoch, tf.int64), indices, positions))
        decoded = elements.map(lambda index, record: draws.decode_one(record, *draws.of_image(seed, epoch, index)),
                               **parallel)  # fmt: skip
        return decoded.batch(batch_size // shard_count, drop_remainder=True)

    shard_index, shard_count = shard
    steps = steps_per_epoch(data, batch_size)
    parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    draws = ImageDraws(data, augment, crop, batch_size)
    epochs = [epoch_batches(epoch) for epoch in range(first_epoch, last_epoch)]  # no batch spans two epochs
    batches = functools.reduce(tf.data.Dataset.concatenate, epochs)
    if in_memory:
        batches = batches.map(lambda epoch, indices, positions: draws.crop_batch(
            split_images, split_labels, positions, *draws.of_batch(seed, epoch, indices)), **parallel)  # fmt: skip
    return batches.prefetch(tf.data.AUTOTUNE)


class ImageDraws:
    """Sec. 4.1's augmentation of train images: one image decoded from its record, or a batch cropped from the
    decoded split in memory; the same draws, and the same float operations in the same order.

    The draws are made a whole batch at a time (batch_draws), since per-image random ops cost more CPU in
    tf.data than the crops themselves (0.6 s per epoch of the default profile on 2 cores)."""

    def __init__(self, data: PreparedData, augment: AugmentConfig, crop: int, batch_size: int):
        self.size, self.crop, self.augment, self.batch_size = data.size, crop, augment, batch_size
        self.mean_image = tf.constant(data.mean_image)
        self.eigenvalues, self.eigenvectors = tf.constant(data.eigenvalues), tf.constant(data.eigenvectors)

    def of_batch(self, seed: int, epoch, indices):
        """(crop offsets [n, 2], flips [n], the lighting's RGB offsets [n, 3]) of the images at `indices` (their
        positions in the epoch) of one global batch."""
        batch = indices[0] // self.batch_size
        offsets, flips, alphas = batch_draws(batch_key(seed, epoch, batch), self.batch_size, self.size, self.crop,
                                             self.augment)  # fmt: skip
        rows = indices % self.batch_size
        return tf.gather(offsets, rows), tf.gather(flips, rows), self.lighting(tf.gather(alphas, rows))

    def of_image(self, seed: int, epoch, index):
        """of_batch for one image: its row of its batch's draws."""
        offsets, flips, lightings = self.of_batch(seed, epoch, index[None])
        return offsets[0], flips[0], lightings[0]

    def lighting(self, alphas):
        if self.augment.pca_lighting > 0:
            return pca_lighting(tf.zeros_like(alphas), self.eigenvalues, self.eigenvectors, alphas)
        return tf.zeros_like(alphas)

    def decode_one(self, record, offsets, flip, lighting):
        encoded, label = _parse(record)
        crop = self.crop
        window = tf.stack([offsets[0], offsets[1], crop, crop])
        image = tf.cast(tf.io.decode_and_crop_jpeg(encoded, window, channels=3), tf.float32)
        image -= self.mean_image[offsets[0] : offsets[0] + crop, offsets[1] : offsets[1] + crop, :]
        if self.augment.flip:
            image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        if self.augment.pca_lighting > 0:
            image = image + lighting
        return image, label

    def crop_batch(self, images, labels, positions, offsets, flips, lightings):
        """A batch's crops gathered from the decoded split (uint8 [N, size, size, 3]): the columns run
        backwards in a flipped image, so its mean crop flips with it."""
        steps = tf.range(self.crop, dtype=tf.int32)
        rows = offsets[:, :1] + steps
        columns = offsets[:, 1:] + steps
        if self.augment.flip:
            columns = tf.where(flips[:, None], offsets[:, 1:] + self.crop - 1 - steps, columns)
        batch = tf.cast(tf.gather(images, positions), tf.float32) - self.mean_image
        batch = tf.gather(batch, rows, axis=1, batch_dims=1)  # whole rows: contiguous copies
        batch = tf.gather(tf.transpose(batch, [0, 2, 1, 3]), columns, axis=1, batch_dims=1)  # columns as rows
        batch = tf.transpose(batch, [0, 2, 1, 3])
        if self.augment.pca_lighting > 0:
            batch += lightings[:, None, None, :]
        return batch, tf.gather(labels, positions)


def decoded_split(data: PreparedData, split: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Every image of a split decoded (uint8, [N, size, size, 3]), its labels (int32), in shard order, and
    the number of records in each shard (data.files order)."""
    images, labels, shard_sizes = [], [], []
    for path in data.files(split):
        decoded = (
            tf.data.TFRecordDataset(path)
            .map(lambda record: _decoded(*_parse(record)), num_parallel_calls=tf.data.AUTOTUNE)
            .batch(1024)
        )
        count = 0
        for batch_images, batch_labels in decoded.as_numpy_iterator():
            images.append(batch_images)
            labels.append(batch_labels)
            count += len(batch_labels)
        shard_sizes.append(count)
    if not images:
        return np.zeros((0, data.size, data.size, 3), np.uint8), np.zeros(0, np.int32), shard_sizes
    return np.concatenate(images), np.concatenate(labels), shard_sizes


def _decoded(encoded, label):
    return tf.io.decode_jpeg(encoded, channels=3), label


def epoch_file_order(files: list[str], seed: int, epoch: int) -> list[str]:
    """The shards in an order fixed by (seed, epoch, shard name) alone: a new order every epoch."""
    return sorted(files, key=lambda path: hashlib.sha256(f"{seed}|{epoch}|{Path(path).name}".encode()).hexdigest())


def batch_key(seed: int, epoch, batch):
    """The stateless key of one batch of one epoch of one run: seed, then epoch, then batch folded in."""
    key = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), tf.cast(epoch, tf.int64))
    return tf.random.experimental.stateless_fold_in(key, tf.cast(batch, tf.int64))


def draw_keys(key):
    """The keys of a batch's crop, flip and lighting draws: distinct for every (batch, purpose)."""
    return [tf.random.experimental.stateless_fold_in(key, purpose) for purpose in (CROP, FLIP, LIGHTING)]


def batch_draws(key, batch_size: int, size: int, crop: int, augment: AugmentConfig):
    """(crop offsets [b, 2], flips [b], lighting alphas [b, 3]) of the b = batch_size images of the batch whose key
    is `key` (batch_key), a row per image, each purpose from its own key.

    Sec. 4.1: a random crop of the `size` square, a horizontal flip half of the time, and alpha ~ N(0, std).
    """
    crop_key, flip_key, lighting_key = draw_keys(key)
    if augment.random_crop:
        offsets = tf.random.stateless_uniform([batch_size, 2], seed=crop_key, maxval=size - crop + 1, dtype=tf.int32)
    else:
        offsets = tf.fill([batch_size, 2], (size - crop) // 2)
    flips = tf.random.stateless_uniform([batch_size], seed=flip_key) < 0.5
    alphas = tf.random.stateless_normal([batch_size, 3], seed=lighting_key, stddev=augment.pca_lighting)
    return offsets, flips, alphas


def steps_per_epoch(data: PreparedData, batch_size: int) -> int:
    return max(1, data.counts["train"] // batch_size)


def eval_dataset(
    data: PreparedData, crop: int, batch_size: int, split: str = "val", ten_crop: bool = False, cache: bool = False
):
    """(images, labels): a centre crop, or the ten crops of Sec. 4.1 stacked as [batch, 10, crop, crop, 3].

    cache=True (centre crops only) keeps the decoded crops in memory as uint8 after the first pass, so a
    per-epoch validation decodes each JPEG once per run; the batches are the same values either way.
    """
    mean_image = tf.constant(data.mean_image)
    size = data.size
    start = (size - crop) // 2
    mean_crop = mean_image[start : start + crop, start : start + crop, :]

    def centre_crop(encoded, label):
        return tf.io.decode_jpeg(encoded, channels=3)[start : start + crop, start : start + crop, :], label

    def ten_cropped(encoded, label):
        return ten_crops(tf.cast(tf.io.decode_jpeg(encoded, channels=3), tf.float32) - mean_image, crop), label

    records = parsed_records(data, split)
    if ten_crop:
        images = records.map(ten_cropped, num_parallel_calls=tf.data.AUTOTUNE)
        return images.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    crops = records.map(centre_crop, num_parallel_calls=tf.data.AUTOTUNE)
    crops = crops.cache() if cache else crops
    return centred_batches(crops, mean_crop, batch_size).prefetch(tf.data.AUTOTUNE)


def centred_batches(crops: tf.data.Dataset, mean_crop, batch_size: int) -> tf.data.Dataset:
    """uint8 (crop, label) elements as float32 batches less the mean crop: one op per batch, not a call per image."""
    return crops.batch(batch_size).map(lambda images, labels: (tf.cast(images, tf.float32) - mean_crop, labels))


def fits_in_memory(images: int, crop: int, limit_bytes: int = IN_MEMORY_LIMIT_BYTES) -> bool:
    """Whether `images` uint8 crops of crop x crop x 3 stay under the in-memory cache limit."""
    return images * crop * crop * 3 <= limit_bytes


def probe_indices(count_in_split: int, count: int) -> np.ndarray:
    """The sorted record indices (in shard order) of a fixed subset of a split: seeded, the same for every run.
    The train subset is the probe's; the val subset, train.validation_images, the per-epoch validation's."""
    return np.sort(np.random.default_rng(PROBE_SEED).choice(count_in_split, min(count, count_in_split), replace=False))


def train_probe(data: PreparedData, crop: int, count: int, batch_size: int) -> tf.data.Dataset:
    """(images, labels) batches of `count` train images as evaluation sees val ones: centre crop, mean
    subtracted, no augmentation. The decoded crops are cached (uint8) after the first pass."""
    return centre_subset(data, "train", crop, count, batch_size)


def centre_subset(data: PreparedData, split: str, crop: int, count: int, batch_size: int) -> tf.data.Dataset:
    """(images, labels) batches of a fixed subset of `count` images of `split` (probe_indices), centre-cropped
    and mean-subtracted as eval_dataset's; the decoded crops are cached (uint8) after the first pass."""
    chosen = np.zeros(data.counts[split], bool)
    chosen[probe_indices(data.counts[split], count)] = True
    chosen = tf.constant(chosen)
    start = (data.size - crop) // 2
    mean_crop = tf.constant(data.mean_image[start : start + crop, start : start + crop, :])

    def centre(encoded, label):
        window = tf.stack([start, start, crop, crop])
        return tf.io.decode_and_crop_jpeg(encoded, window, channels=3), label

    records = parsed_records(data, split).enumerate().filter(lambda index, _: tf.gather(chosen, index))
    crops = records.map(lambda _, parsed: centre(*parsed), num_parallel_calls=tf.data.AUTOTUNE).cache()
    return centred_batches(crops, mean_crop, batch_size)


def ten_crops(image, crop: int):
    """Four corners and the centre, then their horizontal mirrors (Sec. 4.1, test time)."""
    size = tf.shape(image)[0]
    far, mid = size - crop, (size - crop) // 2
    corners = [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]
    patches = [image[top : top + crop, left : left + crop, :] for top, left in corners]
    patches += [tf.reverse(patch, axis=[1]) for patch in patches]
    return tf.stack(patches)
