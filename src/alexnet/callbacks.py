"""The callbacks model.fit runs each epoch: the learning-rate schedules (Sec. 5), the inference-mode training
error probe, and the recorder that writes history.csv, MLflow's per-epoch metrics and the checkpoint."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf

from alexnet.config import Config

if TYPE_CHECKING:  # checkpoint.py imports this module
    from alexnet.checkpoint import CheckpointWriter, TrainingRun

HISTORY_COLUMNS = (
    "epoch", "loss", "top1_error", "top5_error", "val_loss", "val_top1_error", "val_top5_error",
    "train_eval_top1_error", "train_eval_top5_error", "learning_rate", "seconds", "images_per_second",
    "val_images",
)  # fmt: skip
# top1_error/top5_error: Keras' running metric over the epoch, with dropout and augmentation on (the curves).
# train_eval_*: the same model after the epoch, in inference mode on a fixed train subset (the claims).
# val_images: the val images behind the epoch's val_* (train.validation_images; the last epoch: all of them).


def learning_rate_of(optimizer) -> float:
    """The current rate as a float, also when a MirroredStrategy holds it (float() refuses a MirroredVariable)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class PlateauSchedule(keras.callbacks.Callback):
    """Sec. 5: divide the learning rate by 10 when the validation error stops improving, at most 3 times."""

    def __init__(self, factor: float, patience: int, max_drops: int, state: dict | None = None):
        super().__init__()
        self.factor, self.patience, self.max_drops = factor, patience, max_drops
        state = state or {}
        self.best = state.get("best", float("inf"))
        self.wait = state.get("wait", 0)
        self.drops = state.get("drops", 0)

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait, "drops": self.drops}

    def on_epoch_end(self, epoch, logs=None):
        error = 1.0 - float(logs["val_top1"])
        if error < self.best - 1e-6:
            self.best, self.wait = error, 0
            return
        self.wait += 1
        if self.wait >= self.patience and self.drops < self.max_drops:
            optimizer = self.model.optimizer
            optimizer.learning_rate.assign(learning_rate_of(optimizer) * self.factor)
            self.drops += 1
            self.wait = 0


class StepSchedule(keras.callbacks.Callback):
    """The rate divided by `factor` once `fraction` of the epochs are done, for each fraction: the same
    epochs for every variant, so a paired difference does not mix the feature with its schedule."""

    def __init__(self, learning_rate: float, factor: float, fractions: list[float], epochs: int):
        super().__init__()
        self.learning_rate, self.factor = learning_rate, factor
        self.drop_after = [int(fraction * epochs + 0.5) for fraction in fractions]

    def rate(self, epoch: int) -> float:
        """The rate of 0-based `epoch`: a function of the epoch alone, so a resumed run continues it."""
        return self.learning_rate * self.factor ** sum(epoch >= done for done in self.drop_after)

    def state(self) -> dict:
        return {}

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rate(epoch))


class WholeValidationAtTheEnd(keras.callbacks.Callback):
    """train.validation_images: fit validates each epoch on a fixed val subset (the curves; a 1,000-image
    subset costs a quarter of the whole Imagenette split), and the run's last epoch here on the whole split,
    whose val_loss/val_top1/val_top5 replace the subset's in the logs before the schedule and the recorder read
    them. So the final row, the train-val gap and MLflow's last values are the whole split's. Writes the
    epoch's val_images into the logs either way."""

    def __init__(self, whole: tf.data.Dataset, last_epoch: int, per_epoch_images: int, all_images: int):
        super().__init__()
        self.whole, self.last_epoch = whole, last_epoch
        self.per_epoch_images, self.all_images = per_epoch_images, all_images

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if epoch == self.last_epoch and self.per_epoch_images < self.all_images:
            results = self.model.evaluate(self.whole, verbose=0, return_dict=True)
            logs.update({f"val_{name}": value for name, value in results.items()})
            logs["val_images"] = self.all_images
        else:
            logs["val_images"] = self.per_epoch_images


class TrainErrorProbe(keras.callbacks.Callback):
    """After each epoch: top-1/top-5 error on a fixed train subset in inference mode (no dropout, no
    augmentation, centre crop), written into the epoch's logs as train_eval_top1/top5_error."""

    def __init__(self, batches: tf.data.Dataset | None):
        super().__init__()
        self.batches = batches
        self.labels = None  # the subset is fixed: its labels are read once, not in a second pass per epoch

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.batches is not None:
            if self.labels is None:
                self.labels = dataset_labels(self.batches)
            logs.update(inference_errors(self.model, self.batches, self.labels))


def dataset_labels(batches: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([batch_labels.numpy() for _, batch_labels in batches])


def inference_errors(model, batches: tf.data.Dataset, labels: np.ndarray | None = None) -> dict[str, float]:
    """Top-1/top-5 error of `model` (training=False) over (images, labels) batches; `labels`, the batches' own
    labels in order, saves a pass over them.

    model.predict runs the compiled inference function over the same batches: twice the speed of eager
    `model(images)` calls and, in float32 on one device, the same logits bit for bit.
    """
    logits = np.asarray(model.predict(batches, verbose=0), np.float32)
    labels = dataset_labels(batches) if labels is None else labels
    top = np.argsort(-logits, axis=1, kind="stable")[:, : min(5, logits.shape[1])]
    return {
        "train_eval_top1_error": float(np.mean(top[:, 0] != labels)),
        "train_eval_top5_error": float(1.0 - np.mean(np.any(top == labels[:, None], axis=1))),
    }


def learning_rate_schedule(cfg: Config, state: dict | None) -> PlateauSchedule | StepSchedule:
    train = cfg.train
    if train.schedule == "step":
        return StepSchedule(train.learning_rate, train.lr_drop_factor, train.lr_steps, train.epochs)
    return PlateauSchedule(train.lr_drop_factor, train.lr_patience, train.lr_max_drops, state and state["schedule"])


class EpochRecorder(keras.callbacks.Callback):
    """history.csv, MLflow metrics and the resumable checkpoint, once per epoch."""

    def __init__(
        self, run: TrainingRun, images_per_epoch: int, schedule: PlateauSchedule | StepSchedule, tracker, rows: list,
        epochs: int = 0, trainings: int = 1, writer: CheckpointWriter | None = None, eval_passes: float = 1,
    ):  # fmt: skip
        super().__init__()
        self.writer = writer
        self.run, self.images_per_epoch, self.schedule, self.tracker = run, images_per_epoch, schedule, tracker
        self.rows, self.epochs, self.trainings, self.eval_passes = rows, epochs, trainings, eval_passes
        self.started = time.perf_counter()
        self.validation_seconds = 0.0
        self.estimated = False

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.learning_rate = learning_rate_of(self.model.optimizer)

    def on_test_begin(self, logs=None):
        self.validation_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self.validation_seconds = time.perf_counter() - self.validation_started

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        row = {
            "epoch": epoch + 1,
            "loss": float(logs["loss"]),
            "top1_error": 1.0 - float(logs["top1"]),
            "top5_error": 1.0 - float(logs["top5"]),
            "val_loss": float(logs["val_loss"]),
            "val_top1_error": 1.0 - float(logs["val_top1"]),
            "val_top5_error": 1.0 - float(logs["val_top5"]),
            "train_eval_top1_error": float(logs.get("train_eval_top1_error", float("nan"))),
            "train_eval_top5_error": float(logs.get("train_eval_top5_error", float("nan"))),
            "learning_rate": self.learning_rate,  # logged here: a LossScaleOptimizer hides it
            "seconds": seconds,
            "images_per_second": self.images_per_epoch / seconds,
            "val_images": float(logs.get("val_images", float("nan"))),
        }
        self.rows.append(row)
        write_history(self.run.history_file, self.rows)
        logged = {key: value for key, value in row.items() if key != "epoch" and not np.isnan(value)}
        self.tracker.log_metrics(logged, step=epoch + 1)
        model_saved = self.writer.wait() if self.writer else False
        self.run.save_checkpoint(
            self.model, epoch + 1, self.schedule.state(), self.rows, self.tracker.run_id, model_saved=model_saved
        )
        if not self.estimated and self.epochs:
            self.estimated = True
            seconds = time.perf_counter() - self.started  # the epoch with its validation and checkpoint
            line = estimate_line(
                seconds, self.epochs - epoch - 1, self.epochs, self.trainings,
                self.validation_seconds * self.eval_passes,
            )  # fmt: skip
            print(line, flush=True)


def val_passes(cfg, train_images: int, val_images: int) -> float:
    """An evaluate stage's inference work in passes over the val centre crops, averaged over the run's seeds:
    the centre crop, 10 crops (evaluate.ten_crop), and Fig. 4's pass over the train split on figure seeds.
    The estimate after the first epoch times one such pass (its validation) and multiplies. It lives here, not
    in evaluation.py, so that the train stage does not depend on the evaluation code."""
    seeds = cfg.ablations.seeds or [cfg.train.seed]
    drawing = sum(seed in cfg.evaluate.figure_seeds for seed in seeds) / len(seeds)
    return 1 + 10 * cfg.evaluate.ten_crop + drawing * train_images / max(1, val_images)


def estimate_line(
    epoch_seconds: float, epochs_left: int, epochs: int, trainings: int, evaluation_seconds: float = 0.0
) -> str:
    """Item 5 of issue 22: after the first epoch, how long the rest of this training and the whole run's
    trainings (ablations.run x ablations.seeds, each `epochs` long) and their evaluations take on this machine
    at this rate. An evaluation is timed as this epoch's validation pass times its passes over the val set
    (centre crop, and 10 more with ten_crop). Figure 1 prints its own estimate when it starts."""
    remaining = epochs_left * epoch_seconds / 60
    training = trainings * epochs * epoch_seconds / 60
    evaluation = trainings * evaluation_seconds / 60
    return (
        f"estimate: an epoch takes {epoch_seconds:.1f} s here; this training about {remaining:.0f} min more; "
        f"the {trainings} trainings of a whole `dvc repro` about {training:.0f} min and their evaluations about "
        f"{evaluation:.0f} min: about {training + evaluation:.0f} min on this machine (Figure 1 says its own)"
    )


def write_history(path: Path, rows: list[dict]) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
