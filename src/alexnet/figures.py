"""Figures as PNG (matplotlib, headless): confusion matrix, conv1 kernels (paper Fig. 3), top-5
predictions and nearest neighbours in fc7 space (paper Fig. 4).

Images passed in are displayable pixels (mean image added back), any dtype; they are clipped to [0, 255].
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TRUE_LABEL_COLOUR = "tab:red"
OTHER_LABEL_COLOUR = "tab:blue"


def displayable(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(image, np.float64)), 0, 255).astype(np.uint8)


def confusion(matrix: np.ndarray, names: list[str], path: Path) -> None:
    size = max(4.0, 0.45 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    axes.set_yticks(range(len(names)), names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    if len(names) <= 20:
        dark = matrix.max() / 2
        for (row, column), count in np.ndenumerate(matrix):
            colour = "white" if count > dark else "black"
            axes.text(column, row, str(count), ha="center", va="center", fontsize=6, color=colour)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def kernel_mosaic(kernels: np.ndarray, per_row: int = 16, gap: int = 1) -> np.ndarray:
    """[h, w, 3, n] kernels, each scaled to [0, 1] on its own, tiled n/per_row rows deep on a white ground."""
    height, width, _, count = kernels.shape
    rows = int(np.ceil(count / per_row))
    columns = min(count, per_row)
    mosaic = np.ones((rows * (height + gap) - gap, columns * (width + gap) - gap, 3))
    for index in range(count):
        kernel = kernels[:, :, :, index]
        kernel = (kernel - kernel.min()) / (np.ptp(kernel) + 1e-8)
        top, left = (index // per_row) * (height + gap), (index % per_row) * (width + gap)
        mosaic[top : top + height, left : left + width] = kernel
    return mosaic


def conv1_kernels(model, towers: int, path: Path) -> None:
    """Fig. 3: the learned conv1 kernels, one row block per tower (the paper's GPU 1 above GPU 2).

    conv1 is one layer; its output channels split in halves are the two towers' kernels.
    """
    kernel = np.asarray(model.get_layer("conv1").kernel, np.float32)
    blocks = np.array_split(kernel, towers, axis=3)
    mosaics = [kernel_mosaic(block) for block in blocks]
    width = 0.06 * mosaics[0].shape[1] + 0.8
    heights = [mosaic.shape[0] for mosaic in mosaics]
    figure, axes = plt.subplots(
        len(mosaics), 1, figsize=(width, 0.06 * sum(heights) + 0.4 * len(mosaics) + 0.4),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )  # fmt: skip
    for index, (ax, mosaic) in enumerate(zip(axes[:, 0], mosaics, strict=True)):
        ax.imshow(mosaic, interpolation="nearest")
        ax.axis("off")
        if towers > 1:
            ax.set_title(f"tower {index + 1} ({blocks[index].shape[3]} kernels)", fontsize=8)
    size = "x".join(str(dim) for dim in kernel.shape[:3])
    figure.suptitle(f"conv1: {kernel.shape[3]} kernels of size {size}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def top5_grid(
    images: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, names: list[str], path: Path
) -> None:
    """Fig. 4 (left): each image with its five most probable labels; the true label is written under
    the image, and its bar is red when it is among the five."""
    count = len(images)
    columns = min(count, 4)
    rows = int(np.ceil(count / columns))
    top = min(5, probabilities.shape[1])
    figure = plt.figure(figsize=(2.6 * columns, 3.6 * rows))
    grid = figure.add_gridspec(2 * rows, columns, height_ratios=[3, 2] * rows, hspace=0.45, wspace=0.6)
    for index in range(count):
        row, column = divmod(index, columns)
        image_axes = figure.add_subplot(grid[2 * row, column])
        image_axes.imshow(displayable(images[index]), interpolation="nearest")
        image_axes.set_xticks([])
        image_axes.set_yticks([])
        image_axes.set_xlabel(names[labels[index]], fontsize=8, fontweight="bold")
        best = np.argsort(-probabilities[index], kind="stable")[:top]
        bar_axes = figure.add_subplot(grid[2 * row + 1, column])
        colours = [TRUE_LABEL_COLOUR if label == labels[index] else OTHER_LABEL_COLOUR for label in best]
        bar_axes.barh(range(top), probabilities[index][best], color=colours)
        bar_axes.set_yticks(range(top), [names[label] for label in best], fontsize=7)
        bar_axes.invert_yaxis()
        bar_axes.set_xlim(0, 1)
        bar_axes.tick_params(axis="x", labelsize=6)
    figure.suptitle(
        "top-5 predictions on val images (true label under each; red bar = true label)", fontsize=9
    )
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def nearest_neighbours(query_images: np.ndarray, neighbour_images: np.ndarray, path: Path) -> None:
    """Fig. 4 (right): a val image per row, then the train images nearest to it in fc7 space.

    query_images: [queries, h, w, 3]; neighbour_images: [queries, neighbours, h, w, 3], nearest first.
    """
    queries, neighbours = neighbour_images.shape[:2]
    figure, axes = plt.subplots(
        queries, neighbours + 1, figsize=(1.3 * (neighbours + 1), 1.3 * queries + 0.5), squeeze=False
    )
    for row in range(queries):
        axes[row, 0].imshow(displayable(query_images[row]), interpolation="nearest")
        for column in range(neighbours):
            axes[row, column + 1].imshow(displayable(neighbour_images[row, column]), interpolation="nearest")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("val image", fontsize=8)
    for column in range(neighbours):
        axes[0, column + 1].set_title(f"train #{column + 1}", fontsize=8)
    for ax in axes[:, 0]:
        for spine in ax.spines.values():
            spine.set_edgecolor(TRUE_LABEL_COLOUR)
            spine.set_linewidth(2)
    figure.suptitle("nearest train images by Euclidean distance of fc7 activations", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
