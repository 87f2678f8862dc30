"""Preprocess (paper Sec. 2): shorter side to `size`, centre square crop, TFRecord shards, train stats.

Each split's records are written in a seeded shuffled order, round-robin over the shards, so every
shard holds every class in no particular order.

Stats, on the train split only:
- the per-pixel mean image (size x size x 3) the paper subtracts, and its per-channel mean;
- the eigenvalues/eigenvectors of the 3x3 RGB covariance for PCA lighting (Sec. 4.1),
  computed on pixel values scaled to [0, 1], over a grid of every `COVARIANCE_STRIDE`-th row and
  column of every train image (9.4k Imagenette images still give 38M pixels at size 256; the full
  outer product cost as much as the decode). tests/test_preprocess.py checks the grid's result against
  numpy on the same grid, and its top eigenvalue against every pixel's within 5%.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet.config import SPLITS, PreprocessConfig
from alexnet.data.progress import progress_bar
COVARIANCE_STRIDE = 4


@dataclass(frozen=True)
class PreprocessSummary:
    written: dict[str, int]
    failed: list[str]
    out_dir: Path


def read_manifest(raw_dir: Path) -> list[dict[str, str]]:
    manifest = raw_dir / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest; run the ingest stage first (dvc repro ingest)")
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle))


def shuffled(rows: list[dict[str, str]], seed: int, split: str) -> list[dict[str, str]]:
    """Rows in an order fixed by (seed, split, path) alone. The manifest is sorted by class; shards written
    in its order would each be class-sorted, and a reader's shuffle buffer would see a few classes at a time."""
    return sorted(rows, key=lambda row: hashlib.sha256(f"{seed}|{split}|{row['path']}".encode()).hexdigest())


def shard_paths(out_dir: Path, split: str, shards: int) -> list[Path]:
    return [out_dir / f"{split}-{index:05d}-of-{shards:05d}.tfrecord" for index in range(shards)]


JPEG_SCALES = (1, 2, 4, 8)


def _decode(tf, encoded, size: int):
    """Decode to RGB; a JPEG at least twice `size` on its shorter side is decoded at 1/2, 1/4 or 1/8 scale.

    libjpeg's scaled decoding (Pillow's draft mode) drops the DCT's high frequencies instead of
    decoding every pixel and averaging them away in the antialiased resize that follows: the decode,
    most of the work when shrinking, gets 2-4x cheaper. Anything else, PNG named .JPEG included,
    goes through decode_image.
    """

    def jpeg():
        shape = tf.io.extract_jpeg_shape(encoded)
        shorter = tf.minimum(shape[0], shape[1])
        fits = [tf.cast((shorter + scale - 1) // scale >= size, tf.int32) for scale in JPEG_SCALES[1:]]
        branches = [lambda scale=scale: tf.io.decode_jpeg(encoded, channels=3, ratio=scale) for scale in JPEG_SCALES]
        return tf.switch_case(tf.add_n(fits), branches)

    def other():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    return tf.cond(tf.io.is_jpeg(encoded), jpeg, other)


def _resize_and_crop(tf, encoded, size: int):
    return _resize_decoded(tf, _decode(tf, encoded, size), size)


def _resize_decoded(tf, image, size: int):
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    scale = tf.cast(size, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
    new_height = tf.maximum(size, tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32))
    new_width = tf.maximum(size, tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32))
    new_shape = [new_height, new_width]
    resized = tf.cond(  # shrinking: area averaging, antialiased and 2x cheaper than antialiased bilinear
        scale < 1.0,
        lambda: tf.image.resize(image, new_shape, method="area"),
        lambda: tf.image.resize(image, new_shape, method="bilinear"),
    )
    top, left = (new_height - size) // 2, (new_width - size) // 2
    cropped = resized[top : top + size, left : left + size, :]
    return tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8)


def resize_and_centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """A decoded RGB image (uint8 [h, w, 3]): shorter side to `size`, centre square crop, as preprocess does.

    Preprocess itself decodes large JPEGs at reduced scale first; `prepared_square` repeats that too.
    """
    import tensorflow as tf

    return _resize_decoded(tf, tf.convert_to_tensor(image, tf.uint8), size).numpy()


def prepared_square(encoded: bytes, size: int, jpeg_quality: int) -> np.ndarray:
    """The uint8 [size, size, 3] image a shard holds for these file bytes, as evaluation decodes it:
    preprocess's decode (scaled for large JPEGs), resize and centre crop, then its JPEG round trip."""
    import tensorflow as tf

    square = _resize_and_crop(tf, tf.constant(encoded), size)
    return tf.io.decode_jpeg(tf.io.encode_jpeg(square, quality=jpeg_quality), channels=3).numpy()


BATCH = 64


def _encoded_batches(rows: list[dict[str, str]], raw_dir: Path, cfg: PreprocessConfig, with_moments: bool):
    """Yield (indices, serialized Examples, moments) per batch; a file TF cannot decode gives (index, None).

    Decoding, resizing, JPEG encoding and the stats (the batch's image sum, pixel sum and pixel outer
    product) all run inside tf.data, in parallel; Python only serialises and writes.
    """
    import tensorflow as tf

    paths = [str(raw_dir / row["path"]) for row in rows]
    labels = [int(row["label"]) for row in rows]

    def encode(path):
        image = _resize_and_crop(tf, tf.io.read_file(path), cfg.size)
        return tf.io.encode_jpeg(image, quality=cfg.jpeg_quality), image

    def moments(images):
        if not with_moments:
            return ()
        grid = tf.cast(images[:, ::COVARIANCE_STRIDE, ::COVARIANCE_STRIDE], tf.float32)
        pixels = tf.reshape(grid, [-1, 3])  # 0..255; _PixelStats.finish rescales to [0, 1]
        image_sum = tf.reduce_sum(tf.cast(images, tf.float32), axis=0)
        return image_sum, tf.reduce_sum(pixels, axis=0), tf.matmul(pixels, pixels, True), tf.shape(pixels)[0]

    def encoded(index):
        jpeg, image = encode(tf.gather(paths, index))
        return index, jpeg, image

    dataset = (
        tf.data.Dataset.range(len(rows))
        .map(encoded, num_parallel_calls=cfg.workers, deterministic=True)
        .batch(BATCH)
        .map(lambda index, jpeg, images: (index, jpeg, moments(images)), num_parallel_calls=cfg.workers)
    )
    # A file that TensorFlow cannot decode (ingest vetted them with Pillow) must not kill the run: it is
    # reported by name, and the rest of the split continues one image at a time.
    iterator = iter(dataset)
    done = 0
    while done < len(rows):
        try:
            indices, jpegs, batch_moments = next(iterator)
        except StopIteration:
            break
        except tf.errors.InvalidArgumentError:
            yield from _one_by_one(tf, encode, moments, rows, paths, labels, start=done)
            return
        indices = indices.numpy().tolist()  # iterating an EagerTensor slices it op by op: 0.4 ms per image
        done += len(indices)
        records = [
            _example(tf, jpeg, labels[i], rows[i]["path"]) for i, jpeg in zip(indices, jpegs.numpy(), strict=True)
        ]
        yield indices, records, batch_moments


def _one_by_one(tf, encode, moments, rows, paths, labels, start: int):
    for index in range(start, len(rows)):
        try:
            jpeg, image = encode(tf.constant(paths[index]))
        except tf.errors.InvalidArgumentError:
            yield [index], [None], None
            continue
        record = _example(tf, jpeg.numpy(), labels[index], rows[index]["path"])
        yield [index], [record], moments(image[tf.newaxis])


def _example(tf, jpeg: bytes, label: int, source: str) -> bytes:
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "image/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "image/source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[source.encode()])),
    }
    # deterministic=True: map fields in sorted order. Without it protobuf orders them by a per-process hash,
    # so identical data gave different shard bytes (and a new DVC hash, re-running training) on every run.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


class _PixelStats:
    def __init__(self, size: int):
        self.sum_image = np.zeros((size, size, 3), np.float64)
        self.pixel_sum = np.zeros(3, np.float64)
        self.pixel_outer = np.zeros((3, 3), np.float64)
        self.pixels = 0
        self.images = 0

    def add(self, moments, images: int) -> None:
        image_sum, pixel_sum, pixel_outer, pixels = (np.asarray(value, np.float64) for value in moments)
        self.sum_image += image_sum
        self.pixel_sum += pixel_sum
        self.pixel_outer += pixel_outer
        self.pixels += int(pixels)
        self.images += images

    def finish(self) -> tuple[np.ndarray, dict]:
        if self.images == 0:
            raise ValueError(
                "preprocess: the train split is empty; check data.classes and data.train_per_class"
            )
        mean_image = (self.sum_image / self.images).astype(np.float32)
        grid_mean = self.pixel_sum / self.pixels / 255.0
        covariance = self.pixel_outer / self.pixels / 255.0**2 - np.outer(grid_mean, grid_mean)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        stats = {
            "train_images": self.images,
            "channel_mean": mean_image.astype(np.float64).mean(axis=(0, 1)).tolist(),
            "rgb_eigenvalues": eigenvalues[order].tolist(),
            "rgb_eigenvectors": eigenvectors[:, order].tolist(),
            "pixel_scale_of_eigen": "pixel values / 255",
            "covariance_grid_stride": COVARIANCE_STRIDE,
        }
        return mean_image, stats


def preprocess(
    cfg: PreprocessConfig, raw_dir: Path, out_dir: Path, progress: bool = True
) -> PreprocessSummary:
    """Write `out_dir` atomically: TFRecord shards per split, stats.json, mean_image.npy, classes.json."""
    import tensorflow as tf

    rows = read_manifest(raw_dir)
    kept = [row for row in rows if row["status"] == "kept"]
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written, failed = _write(cfg, raw_dir, kept, staging, progress)
    except BaseException as error:
        # A failure (a full disk above all) leaves no half-written staging folder holding the space, and
        # TensorFlow's own write errors (OpError, not OSError) become one line naming the folder.
        shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(error, tf.errors.OpError):
            raise
        reason = (error.message or type(error).__name__).splitlines()[0]
        raise OSError(f"preprocess: {out_dir} not written ({reason}); fix the cause (disk space?) and re-run") from None
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return PreprocessSummary(written=written, failed=failed, out_dir=out_dir)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _write(cfg: PreprocessConfig, raw_dir: Path, kept: list[dict[str, str]], staging: Path, progress: bool):
    """Shards, stats.json, mean_image.npy and classes.json into `staging`; returns (written, failed)."""
    import tensorflow as tf

    written: dict[str, int] = {}
    failed: list[str] = []
    stats = _PixelStats(cfg.size)
    for split in SPLITS:
        split_rows = shuffled([row for row in kept if row["split"] == split], cfg.seed, split)
        if not split_rows:
            raise ValueError(f"{raw_dir / 'manifest.csv'}: no kept '{split}' images; check the data source")
        writers = [tf.io.TFRecordWriter(str(path)) for path in shard_paths(staging, split, cfg.shards)]
        count = 0
        bar = progress_bar(total=len(split_rows), desc=f"preprocess {split}", unit="img", enabled=progress)
        for indices, records, moments in _encoded_batches(split_rows, raw_dir, cfg, with_moments=split == "train"):
            bar.update(len(indices))
            written_now = [record for record in records if record is not None]
            pairs = zip(indices, records, strict=True)
            failed += [split_rows[index]["path"] for index, record in pairs if record is None]
            for record in written_now:
                writers[count % cfg.shards].write(record)
                count += 1
            if split == "train" and written_now:
                stats.add(moments, len(written_now))
        bar.close()
        for writer in writers:
            writer.close()
        written[split] = count
    failed.sort()
    mean_image, summary = stats.finish()
    np.save(staging / "mean_image.npy", mean_image, allow_pickle=False)
    summary.update(
        size=cfg.size,
        jpeg_quality=cfg.jpeg_quality,
        shards=cfg.shards,
        counts=written,
        failed=failed,
        manifest_sha256=hashlib.sha256((raw_dir / "manifest.csv").read_bytes()).hexdigest(),
    )
    (staging / "stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    shutil.copyfile(raw_dir / "classes.json", staging / "classes.json")
    _fsync_tree(staging)
    return written, failed

