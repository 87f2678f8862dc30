"""Figures as PNG (matplotlib, headless): confusion matrix, conv1 kernels (paper Fig. 3)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion(matrix: np.ndarray, names: list[str], path: Path) -> None:
    size = max(4.0, 0.45 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    if len(names) <= 20:
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def conv1_kernels(model, towers: int, path: Path) -> None:
    """Fig. 3: the learned conv1 kernels, one row block per tower (the paper's GPU 1 / GPU 2)."""
    kernels = [np.asarray(layer.kernel) for layer in model.layers if layer.name.startswith("conv1")]
    if not kernels:
        return
    blocks = (
        [kernel for kernel in kernels]
        if len(kernels) == towers
        else np.array_split(kernels[0], towers, axis=3)
    )
    per_row = 16
    rows = sum(int(np.ceil(block.shape[3] / per_row)) for block in blocks)
    figure, axes = plt.subplots(rows, per_row, figsize=(per_row * 0.6, rows * 0.6 + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    row = 0
    for block in blocks:
        for index in range(block.shape[3]):
            kernel = block[:, :, :, index]
            kernel = (kernel - kernel.min()) / (np.ptp(kernel) + 1e-8)
            axes[row + index // per_row, index % per_row].imshow(kernel)
        row += int(np.ceil(block.shape[3] / per_row))
    figure.suptitle("conv1 kernels" + (" (one block per tower)" if towers == 2 else ""), fontsize=9)
    figure.savefig(path, dpi=120)
    plt.close(figure)
