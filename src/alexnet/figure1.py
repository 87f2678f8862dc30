"""Figure 1 of the paper (Sec. 3.1): ReLU vs tanh in a four-layer convolutional net on small images.

What the paper states (Figure 1's caption): "a four-layer convolutional neural network" on CIFAR-10 (32x32
images), "no regularization of any kind", "the learning rates for each network were chosen independently to
make training as fast as possible", and the measure is the number of epochs to reach 25% training error
(ReLU: 6x fewer). It gives no layer sizes: the net in four_layer_net (three 5x5 convolutions of 32, 32 and 64
maps, each with a 3/2 max-pool, then one softmax layer) is this project's choice, in the style of
cuda-convnet's small CIFAR-10 nets, not the paper's. figure1.data picks the images: `prepared`, the ingested
subset downsampled to figure1.image_size (offline, the default), or `cifar10`, the paper's data (fetched, see
alexnet.data.cifar10).

Initialisation (figure1.inits): the paper does not give Figure 1's, so the stage measures each listed one:
`glorot` (Glorot uniform kernels, zero biases: Keras' default, which keeps tanh units out of saturation)
and `paper` (Gaussian kernels of std 0.01 and zero biases, the style of Sec. 5's init). Every init is a
separate experiment with its own learning-rate sweep and its own estimate.

Seeds: the learning-rate sweep (figure1.learning_rates, per activation and init; the rate reaching the
target first is kept) runs on figure1.tuning_seed alone, which config refuses to find among figure1.seeds,
so the estimate is never measured on the seed its rates were chosen on (one listed rate is given, not
chosen: no sweep, and figure1.json's tuning_seed is null). Every seed in figure1.seeds then
trains each activation at its chosen rate. That costs inits x 2 x (rates + seeds) trainings.
figure1.json reports, per init (`by_init`), the sweep, the chosen rates, each seed's epochs to the target
(null: not reached within figure1.epochs, i.e. censored) and their median over seeds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alexnet.config import Config, ConfigError, Figure1Config
from alexnet.data import cifar10
from alexnet.data.input import PreparedData, load_prepared, parsed_records
from alexnet.run_identity import FIGURE1_PLOT, FIGURE1_RESULTS

ACTIVATIONS = ("relu", "tanh")
PAPER_STDDEV = 0.01  # figure1 init `paper`: Gaussian kernels of this std, zero biases (as Sec. 5, biases aside)


@dataclass
class SmallImages:
    images: np.ndarray  # float32 [N, size, size, 3], centred and scaled by centred()
    labels: np.ndarray
    num_classes: int


def centred(images: np.ndarray) -> np.ndarray:
    """Scaled to about [-1, 1] around the images' channel mean."""
    images = images.astype(np.float32)
    images -= images.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    images /= 128.0
    return images


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
    return centred(np.concatenate(images)), np.concatenate(labels)


def training_set(cfg: Config, prepared: Path, progress: bool = True) -> SmallImages:
    """Figure 1's training images as figure1.data says: the prepared subset, or CIFAR-10's 50,000 train images."""
    fig = cfg.figure1
    if fig.data == "cifar10":
        if fig.image_size != cifar10.SIZE:
            raise ConfigError(
                f"figure1.image_size: {fig.image_size}, but CIFAR-10 images are 32x32; "
                "set figure1.image_size: 32 with figure1.data: cifar10"
            )
        archive = cifar10.fetch_archive(fig.url, fig.checksum, cfg.data.cache_dir, progress)
        images, labels = cifar10.read(archive, "train")
        return SmallImages(centred(images), labels, cifar10.CLASSES)
    data = load_prepared(prepared)
    images, labels = small_images(data, "train", fig.image_size)
    return SmallImages(images, labels, data.num_classes)


def four_layer_net(activation: str, num_classes: int, size: int, init: str = "glorot") -> keras.Model:
    """Three conv layers and a softmax layer, no dropout or weight decay.

    Four layers and no regularisation are the paper's (Figure 1); the kernel sizes, map counts and pooling are
    this project's choice, since the paper gives none. `init` is figure1.inits' choice: glorot or paper.
    """

    def weights():
        return "glorot_uniform" if init == "glorot" else keras.initializers.RandomNormal(0.0, PAPER_STDDEV)

    def conv(filters, name):
        return keras.layers.Conv2D(filters, 5, padding="same", activation=activation, name=name,
                                   kernel_initializer=weights(), bias_initializer="zeros")  # fmt: skip

    inputs = keras.Input((size, size, 3))
    x = conv(32, "conv1")(inputs)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = conv(32, "conv2")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    x = conv(64, "conv3")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool3")(x)
    fc4 = keras.layers.Dense(num_classes, name="fc4", kernel_initializer=weights(), bias_initializer="zeros")
    logits = fc4(keras.layers.Flatten()(x))
    return keras.Model(inputs, logits, name=f"four_layer_{activation}_{init}")


@dataclass
class Curve:
    activation: str
    learning_rate: float
    train_error: list[float]
    seconds: list[float]
    init: str = "glorot"
    seed: int | None = None

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


def train_curve(
    images, labels, num_classes: int, activation: str, learning_rate: float, cfg: Figure1Config, seed: int,
    init: str = "glorot",
) -> Curve:
    keras.utils.set_random_seed(seed)
    model = four_layer_net(activation, num_classes, images.shape[1], init)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    timer = _EpochSeconds()
    history = model.fit(images, labels, batch_size=cfg.batch_size, epochs=cfg.epochs, verbose=0, callbacks=[timer])
    errors = [1.0 - float(accuracy) for accuracy in history.history["accuracy"]]
    errors = [e if np.isfinite(e) else 1.0 for e in errors]
    return Curve(activation, learning_rate, errors, timer.seconds, init, seed)


def fastest(curves: list[Curve], target: float) -> Curve:
    """The learning rate that reaches the target first (else the lowest final error)."""
    return min(curves, key=lambda c: (c.epochs_to(target) or len(c.train_error) + 1, c.train_error[-1]))


def speedup(relu_epochs: int | None, tanh_epochs: int | None) -> float | None:
    return tanh_epochs / relu_epochs if relu_epochs and tanh_epochs else None


def median_epochs(epochs: list[int | None]) -> float | int | None:
    """The median over seeds, None (censored: not reached) counted as longer than any run.

    None when the median falls on a censored seed: more than half censored (or, with an even count, the
    upper of the two middle values censored, since their mean is then unknown).
    """
    ordered = sorted(epochs, key=lambda value: (value is None, value or 0))
    count = len(ordered)
    middle = ordered[(count - 1) // 2 : count // 2 + 1]
    if any(value is None for value in middle):
        return None
    value = sum(middle) / len(middle)
    return int(value) if value.is_integer() else value


def estimate_line(first_seconds: float, trainings: int) -> str:
    return (
        f"figure1 estimate: a training takes {first_seconds:.0f} s here; its {trainings} trainings about "
        f"{trainings * first_seconds / 60:.0f} min on this machine"
    )


def run(cfg: Figure1Config, data: PreparedData | SmallImages, out_dir: Path, progress: bool = True) -> dict:
    if isinstance(data, PreparedData):
        data = SmallImages(*small_images(data, "train", cfg.image_size), data.num_classes)
    out_dir.mkdir(parents=True, exist_ok=True)

    swept = len(cfg.learning_rates) > 1  # one rate is given, not chosen: no sweep, no tuning seed
    trainings = len(cfg.inits) * len(ACTIVATIONS) * ((len(cfg.learning_rates) if swept else 0) + len(cfg.seeds))
    started = []

    def train(init: str, activation: str, learning_rate: float, seed: int) -> Curve:
        started.append(time.perf_counter())
        curve = train_curve(data.images, data.labels, data.num_classes, activation, learning_rate, cfg, seed, init)
        if progress and len(started) == 1:
            print(estimate_line(time.perf_counter() - started[0], trainings), flush=True)
        if progress:
            reached = curve.epochs_to(cfg.target_error)
            print(f"figure1: init {init} seed {seed} {activation} lr={learning_rate}: final train error "
                  f"{curve.train_error[-1]:.3f}, {cfg.target_error:.0%} reached at epoch {reached}",
                  flush=True)  # fmt: skip
        return curve

    by_init, chosen = {}, {}
    for init in cfg.inits:
        rates = cfg.learning_rates if swept else []
        sweep = [train(init, a, rate, cfg.tuning_seed) for a in ACTIVATIONS for rate in rates]
        best = {a: fastest([c for c in sweep if c.activation == a], cfg.target_error).learning_rate if swept
                else cfg.learning_rates[0] for a in ACTIVATIONS}  # fmt: skip
        chosen[init] = [(seed, {a: train(init, a, best[a], seed) for a in ACTIVATIONS}) for seed in cfg.seeds]
        seeds = [seed_result(seed, curves, cfg) for seed, curves in chosen[init]]
        by_init[init] = {
            "best_learning_rate": best,
            "curves": [c.__dict__ for c in sweep],  # the sweep, on the tuning seed
            "seeds": seeds,
            "median_epochs_to_target": {a: median_epochs([s["epochs_to_target"][a] for s in seeds])
                                        for a in ACTIVATIONS},  # fmt: skip
        }
    first = by_init[cfg.inits[0]]
    result = {
        "data": cfg.data,
        "target_error": cfg.target_error,
        "image_size": int(data.images.shape[1]),
        "train_images": int(len(data.labels)),
        "epochs": cfg.epochs,
        "paper_speedup": 6.0,
        "learning_rates": list(cfg.learning_rates),
        "tuning_seed": cfg.tuning_seed if swept else None,
        "inits": list(cfg.inits),
        "by_init": by_init,
        # The first init's results again under the one-init keys, for readers of the older format.
        "init": cfg.inits[0],
        "best_learning_rate": first["best_learning_rate"],
        "seeds": first["seeds"],
        "median_epochs_to_target": first["median_epochs_to_target"],
        "curves": first["curves"],
    }
    (out_dir / FIGURE1_RESULTS).write_text(json.dumps(result, indent=2) + "\n")
    plot(chosen, cfg.target_error, cfg.data, out_dir / FIGURE1_PLOT)
    return result


def seed_result(seed: int, curves: dict[str, Curve], cfg: Figure1Config) -> dict:
    """One seed's epochs to the target at the chosen rates (None: not reached within cfg.epochs)."""
    epochs = {a: curves[a].epochs_to(cfg.target_error) for a in ACTIVATIONS}
    return {
        "seed": seed,
        "init": curves["relu"].init,
        "epochs_to_target": epochs,
        "epochs": cfg.epochs,
        "speedup": speedup(epochs["relu"], epochs["tanh"]),
        "learning_rate": {a: curves[a].learning_rate for a in ACTIVATIONS},
        "train_error": {a: curves[a].train_error for a in ACTIVATIONS},
    }


def plot(chosen: dict[str, list[tuple[int, dict[str, Curve]]]], target: float, data: str, path: Path) -> None:
    """One panel per init, every seed's curves at the chosen rates: ReLU solid and tanh dashed as in the paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, len(chosen), figsize=(5 * len(chosen), 4), sharey=True, squeeze=False)
    for axes, (init, seeds) in zip(panels[0], chosen.items(), strict=True):
        for index, (_, curves) in enumerate(seeds):
            for activation, style, colour in (("relu", "-", "black"), ("tanh", "--", "tab:grey")):
                curve = curves[activation]
                label = f"{activation} (lr {curve.learning_rate}), {len(seeds)} seeds" if index == 0 else None
                epochs = range(1, len(curve.train_error) + 1)
                axes.plot(epochs, curve.train_error, style, color=colour, linewidth=0.9, label=label)
        axes.axhline(target, color="grey", linewidth=0.8, linestyle=":")
        axes.set_xlabel("Epochs")
        axes.set_ylim(0, 1)
        axes.set_title(f"init {init}", fontsize=9)
        axes.legend()
    panels[0][0].set_ylabel("Training error rate")
    source = "CIFAR-10" if data == "cifar10" else "prepared subset"
    figure.suptitle(f"Figure 1 ({source}): ReLU (solid) vs tanh (dashed)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
