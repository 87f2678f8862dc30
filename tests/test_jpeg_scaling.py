"""Preprocess's scaled JPEG decode (a source at least twice the target: libjpeg decodes at 1/2-1/8 scale)
against a full decode plus the same resize."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alexnet.data.preprocess import _decode, _resize_and_crop


def _photo_like(width: int, height: int) -> bytes:
    """A JPEG with smooth gradients, edges and fine texture, like a photo's mix of frequencies."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    red = 128 + 100 * np.sin(x / 23.0) * np.cos(y / 31.0)
    green = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 3) ** 2, 200.0, 60.0)
    blue = 255 * x / width + rng.normal(0, 12, (height, width))
    pixels = np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def _full_decode_then_resize(encoded: bytes, size: int) -> np.ndarray:
    """The reference: every pixel decoded, then the same area resize and centre crop as preprocess."""
    image = tf.io.decode_jpeg(encoded, channels=3)
    height, width = int(image.shape[0]), int(image.shape[1])
    scale = size / min(height, width)
    new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
    resized = tf.image.resize(image, [new_height, new_width], method="area").numpy()
    top, left = (new_height - size) // 2, (new_width - size) // 2
    return np.clip(np.round(resized[top : top + size, left : left + size]), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("width", "height", "size", "decoded_shorter"),
    [
        (300, 224, 64, 112),  # 224 >= 2 * 64: 1/2 scale (1/4 would give 56 < 64)
        (640, 512, 64, 64),  # 1/8 scale exactly fits
        (160, 120, 64, 120),  # shorter side under twice the target: decoded in full
    ],
)
def test_scaled_decode_takes_the_smallest_scale_that_still_covers_the_target(width, height, size, decoded_shorter):
    decoded = _decode(tf, tf.constant(_photo_like(width, height)), size)
    assert min(decoded.shape[0], decoded.shape[1]) == decoded_shorter


@pytest.mark.parametrize(("width", "height", "size"), [(300, 224, 64), (640, 512, 64), (448, 448, 112)])
def test_scaled_decode_matches_full_decode_plus_resize(width, height, size):
    encoded = _photo_like(width, height)
    ours = _resize_and_crop(tf, tf.constant(encoded), size).numpy()
    reference = _full_decode_then_resize(encoded, size)
    assert ours.shape == reference.shape == (size, size, 3)
    difference = np.abs(ours.astype(np.int16) - reference.astype(np.int16))
    assert difference.mean() < 2.0, f"mean |difference| {difference.mean():.2f} grey levels"
    assert np.percentile(difference, 99) <= 10, "no region decoded wrongly (orientation, crop offset, colour)"
    assert difference.max() > 0, "the scaled path ran: it is close to the full decode, not identical"
