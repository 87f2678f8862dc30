"""Training (paper Sec. 5): train() reads top to bottom to model.fit.

Beside it: runtime.py (backend, cluster, distribution strategy, XLA, precision, oneDNN: one value, set up in the
order train() needs), callbacks.py (the learning-rate schedules, the training-error probe, the per-epoch
recorder) and checkpoint.py (checkpoints and resume).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import keras
import tensorflow as tf

from alexnet import parallel
from alexnet.callbacks import (
    EpochRecorder,
    TrainErrorProbe,
    WholeValidationAtTheEnd,
    learning_rate_schedule,
    val_passes,
)
from alexnet.checkpoint import CheckpointWriter, TrainingRun, load_checkpoint
from alexnet.config import Config
from alexnet.data.input import (
    PreparedData,
    centre_subset,
    eval_dataset,
    fits_in_memory,
    steps_per_epoch,
    train_dataset,
    train_probe,
)
from alexnet.model import build_model
from alexnet.precision import PrecisionChoice
from alexnet.runtime import Runtime, compile_model, seed_everything, start_runtime


def train(cfg: Config, data: PreparedData, run: TrainingRun, tracker, state: dict | None, verbose: int = 2):
    """Train (or resume) one model; returns (model, history rows)."""
    # First, in the order its docstring gives. A resumed model keeps its policy: no precision to choose for it.
    runtime = start_runtime(cfg, num_classes=None if state else data.num_classes)
    model, runtime = prepare_model(cfg, data, run, state, runtime)
    print(runtime.line(), flush=True)
    first_epoch = state["epochs_done"] if state else 0
    steps = steps_per_epoch(data, cfg.train.batch_size)
    cluster = runtime.cluster
    parallel.per_process_batch(cfg.train.batch_size, cluster)  # a clear error before any work
    train_batches = train_dataset(
        data, cfg.augment, cfg.train.crop, cfg.train.batch_size, cfg.train.seed,
        first_epoch, cfg.train.epochs, cfg.train.shuffle_buffer, deterministic=cfg.train.deterministic,
        shard=(cluster.process, cluster.processes),
    )  # fmt: skip
    val_images = per_epoch_val_images(cfg, data)
    whole_val = validation_batches(cfg, data, cluster)
    subset = val_images < data.counts["val"]
    val_batches = validation_batches(cfg, data, cluster, val_images) if subset else whole_val
    validation = WholeValidationAtTheEnd(whole_val, cfg.train.epochs - 1, val_images, data.counts["val"])
    rows = list(state["history"]) if state else []
    schedule = learning_rate_schedule(cfg, state)
    trainings = len(cfg.ablations.run) * len(cfg.ablations.seeds)
    # JAX's saving is not thread-safe ('NoneType' object is not callable from a thread): it saves in line.
    writer = CheckpointWriter(run) if runtime.backend == "tensorflow" else None
    # the estimate times this epoch's validation: as passes over the val subset, with the last epoch's whole one
    eval_passes = (val_passes(cfg, data.counts["train"], data.counts["val"]) + subset) * data.counts["val"] / val_images
    recorder = EpochRecorder(
        run, steps * cfg.train.batch_size, schedule, tracker, rows, cfg.train.epochs, trainings, writer, eval_passes
    )
    probe = TrainErrorProbe(train_error_batches(cfg, data, cluster))
    tracker.set_tags(runtime.tags())
    measured = runtime.metrics()
    if measured:
        tracker.log_metrics(measured)
    try:
        model.fit(
            train_batches,
            epochs=cfg.train.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            validation_data=val_batches,
            callbacks=[callback for callback in (writer, validation, schedule, probe, recorder) if callback],
            verbose=verbose,
        )
    finally:
        if writer:  # an interrupted epoch's next.keras is never moved into place; its error is fit's
            with contextlib.suppress(Exception):
                writer.wait()
    model.save(run.model_file)
    return model, rows


def prepare_model(
    cfg: Config, data: PreparedData, run: TrainingRun, state: dict | None, runtime: Runtime
) -> tuple[keras.Model, Runtime]:
    """A fresh model in the runtime's policy, or the checkpoint's with its own; and the runtime with that policy."""
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    with runtime.strategy.scope():
        if state:
            model = load_checkpoint(run, state)
        else:
            model = build_model(cfg.model, data.num_classes, cfg.train.crop, seed=cfg.train.seed)
            compile_model(model, cfg, data.num_classes, runtime.jit)
    if runtime.precision is None:  # a resumed model keeps its own
        runtime = replace(runtime, precision=PrecisionChoice(model.dtype_policy.name, "checkpoint"))
    return model, runtime


def per_epoch_val_images(cfg: Config, data: PreparedData) -> int:
    """How many val images each epoch's validation scores: train.validation_images, or all (null or more)."""
    wanted = cfg.train.validation_images
    return data.counts["val"] if wanted is None else min(wanted, data.counts["val"])


def validation_batches(
    cfg: Config, data: PreparedData, cluster: parallel.Cluster, images: int | None = None
) -> tf.data.Dataset:
    """The val centre crops for each epoch's validation, decoded once and kept in memory where they fit: all
    of them, or the fixed subset of `images` (train.validation_images)."""
    batch_size = cfg.train.validation_batch_size
    if images is None:
        images = data.counts["val"]
        batches = eval_dataset(data, cfg.train.crop, batch_size, cache=fits_in_memory(images, cfg.train.crop))
    else:
        batches = centre_subset(data, "val", cfg.train.crop, images, batch_size)
    return per_epoch_pass(parallel.even_batches(batches, batch_size, images, cluster))


def per_epoch_pass(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """A dataset iterated once per epoch, with tf.data's autotuning off.

    Keras drops the last epoch's validation iterator when the next validation starts. Destroying an autotuned
    iterator joins its optimisation thread, which sleeps for a period that doubles while the iterator lives
    (up to 60 s) and in TF 2.21 often sleeps it out: the validation pass stalled 6-10 s with the cores idle in
    most epochs (py-spy: ~RootDataset::Iterator waits in ~LogicalThreadWrapper; bench/epoch_time.py).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def train_error_batches(cfg: Config, data: PreparedData, cluster: parallel.Cluster) -> tf.data.Dataset | None:
    """The fixed train subset the probe measures each epoch, or None (train.train_error_images: 0)."""
    # A multi-process run would need the probe sharded like the val pass; it records NaN there instead.
    probe_images = cfg.train.train_error_images if cluster.processes == 1 else 0
    return (
        per_epoch_pass(train_probe(data, cfg.train.crop, probe_images, cfg.train.validation_batch_size))
        if probe_images
        else None
    )
