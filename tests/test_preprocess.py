"""Preprocess stats (paper Sec. 2 mean image, Sec. 4.1 RGB PCA) equal a plain numpy computation."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf
from pipeline_copy import small_raw_data

from alexnet.data.preprocess import COVARIANCE_STRIDE, _resize_and_crop, preprocess, read_manifest


def test_mean_image_and_pca_match_numpy(tmp_path):
    _, cfg, _ = small_raw_data(tmp_path)
    summary = preprocess(cfg.preprocess, tmp_path / "raw", tmp_path / "prepared", progress=False)

    train = [row for row in read_manifest(tmp_path / "raw") if row["split"] == "train" and row["status"] == "kept"]
    images = np.stack([
        _resize_and_crop(tf, tf.io.read_file(str(tmp_path / "raw" / row["path"])), cfg.preprocess.size).numpy()
        for row in train
    ]).astype(np.float64)  # fmt: skip
    assert summary.written["train"] == len(train)
    np.testing.assert_allclose(np.load(tmp_path / "prepared" / "mean_image.npy"), images.mean(axis=0), atol=1e-3)

    stats = json.loads((tmp_path / "prepared" / "stats.json").read_text())
    grid = images[:, ::COVARIANCE_STRIDE, ::COVARIANCE_STRIDE]
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov((grid.reshape(-1, 3) / 255.0).T, bias=True))
    np.testing.assert_allclose(stats["rgb_eigenvalues"], eigenvalues[::-1], rtol=1e-4)
    for ours, expected in zip(np.asarray(stats["rgb_eigenvectors"]).T, eigenvectors[:, ::-1].T, strict=True):
        assert abs(abs(float(np.dot(ours, expected))) - 1.0) < 1e-4  # same axis, sign is arbitrary
    all_pixels = np.linalg.eigvalsh(np.cov((images.reshape(-1, 3) / 255.0).T, bias=True))
    np.testing.assert_allclose(stats["rgb_eigenvalues"][0], all_pixels[-1], rtol=0.05)  # the grid is a fair sample
    np.testing.assert_allclose(stats["channel_mean"], images.reshape(-1, 3).mean(axis=0), rtol=1e-5)
