"""Figure 1 of the paper (Sec. 3.1): ReLU vs tanh in a four-layer convolutional net on small images.

The paper's protocol: a four-layer convolutional network on 32x32 images (CIFAR-10), no
regularisation, "the learning rates for each network were chosen independently to make training as
fast as possible", and the measure is the number of epochs to reach 25% training error (ReLU: 6x
fewer). Here the ingested subset is downsampled to 32x32; each activation gets a small learning-rate
sweep and its fastest rate is kept.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alexnet.config import Figure1Config
from alexnet.data.input import PreparedData, parsed_records

ACTIVATIONS = ("relu", "tanh")


def small_images(data: PreparedData, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole split resized to size x size, scaled to [-1, 1] around the split's channel mean."""

    def shrink(encoded, label):
        image = tf.image.resize(tf.io.decode_jpeg(encoded, channels=3), [size, size], antialias=True)
        return image, label

    records = parsed_records(data, split).map(shrink, num_parallel_calls=tf.data.AUTOTUNE)
    images, labels = [], []
    for batch_images, batch_labels in records.batch(512):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    images = np.concatenate(images)
    images = (images - images.mean(axis=(0, 1, 2))) / 128.0
    return images.astype(np.float32), np.concatenate(labels)


def four_layer_net(activation: str, num_classes: int, size: int) -> keras.Model:
    """Three conv layers and a softmax layer, no dropout or weight decay (Sec. 3.1, Figure 1)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(32, 5, padding="same", activation=activation, name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = keras.layers.Conv2D(32, 5, padding="same", activation=activation, name="conv2")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    x = keras.layers.Conv2D(64, 5, padding="same", activation=activation, name="conv3")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    logits = keras.layers.Dense(num_classes, name="fc4")(keras.layers.Flatten()(x))
    return keras.Model(inputs, logits, name=f"four_layer_{activation}")


@dataclass
class Curve:
    activation: str
    learning_rate: float
    train_error: list[float]
    seconds: list[float]

    def epochs_to(self, target: float) -> int | None:
        return next((epoch for epoch, error in enumerate(self.train_error, 1) if error <= target), None)


class _EpochSeconds(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def train_curve(images, labels, num_classes: int, activation: str, learning_rate: float, cfg: Figure1Config) -> Curve:
    keras.utils.set_random_seed(cfg.seeds[0])
    model = four_layer_net(activation, num_classes, images.shape[1])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    timer = _EpochSeconds()
    history = model.fit(images, labels, batch_size=cfg.batch_size, epochs=cfg.epochs, verbose=0, callbacks=[timer])
    errors = [1.0 - float(accuracy) for accuracy in history.history["accuracy"]]
    return Curve(activation, learning_rate, [e if np.isfinite(e) else 1.0 for e in errors], timer.seconds)


def fastest(curves: list[Curve], target: float) -> Curve:
    """The learning rate that reaches the target first (else the lowest final error)."""
    return min(curves, key=lambda c: (c.epochs_to(target) or len(c.train_error) + 1, c.train_error[-1]))


def run(cfg: Figure1Config, data: PreparedData, out_dir: Path, progress: bool = True) -> dict:
    images, labels = small_images(data, "train", cfg.image_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = []
    for activation in ACTIVATIONS:
        for learning_rate in cfg.learning_rates:
            curve = train_curve(images, labels, data.num_classes, activation, learning_rate, cfg)
            if progress:
                reached = curve.epochs_to(cfg.target_error)
                print(f"figure1: {activation} lr={learning_rate}: final train error {curve.train_error[-1]:.3f}, "
                      f"{cfg.target_error:.0%} reached at epoch {reached}", flush=True)  # fmt: skip
            curves.append(curve)
    best = {activation: fastest([c for c in curves if c.activation == activation], cfg.target_error)
            for activation in ACTIVATIONS}  # fmt: skip
    relu_epochs, tanh_epochs = (best[a].epochs_to(cfg.target_error) for a in ACTIVATIONS)
    result = {
        "target_error": cfg.target_error,
        "image_size": cfg.image_size,
        "train_images": int(len(labels)),
        "best_learning_rate": {a: best[a].learning_rate for a in ACTIVATIONS},
        "epochs_to_target": {"relu": relu_epochs, "tanh": tanh_epochs},
        "speedup": (tanh_epochs / relu_epochs) if relu_epochs and tanh_epochs else None,
        "paper_speedup": 6.0,
        "curves": [c.__dict__ for c in curves],
    }
    (out_dir / "figure1.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(best, cfg.target_error, out_dir / "figure1.png")
    return result


def plot(best: dict[str, Curve], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4))
    for activation, style in (("relu", "-"), ("tanh", "--")):
        curve = best[activation]
        epochs = range(1, len(curve.train_error) + 1)
        axes.plot(epochs, curve.train_error, style, color="black", label=f"{activation} (lr {curve.learning_rate})")
    axes.axhline(target, color="grey", linewidth=0.8, linestyle=":")
    axes.set_xlabel("Epochs")
    axes.set_ylabel("Training error rate")
    axes.set_ylim(0, 1)
    axes.set_title("Figure 1: ReLU (solid) vs tanh (dashed)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
