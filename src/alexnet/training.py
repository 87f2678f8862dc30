"""Training (paper Sec. 5): precision policy, schedule, checkpoints with resume, distribution strategy."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from alexnet import parallel, precision
from alexnet.backend import ONEDNN, require
from alexnet.config import OVERRIDABLE, Config, flatten
from alexnet.data.input import (
    PreparedData,
    eval_dataset,
    fits_in_memory,
    steps_per_epoch,
    train_dataset,
    train_probe,
)
from alexnet.model import build_model
from alexnet.optimizer import make_optimizer

HISTORY_COLUMNS = (
    "epoch", "loss", "top1_error", "top5_error", "val_loss", "val_top1_error", "val_top5_error",
    "train_eval_top1_error", "train_eval_top5_error", "learning_rate", "seconds", "images_per_second",
)  # fmt: skip
# top1_error/top5_error: Keras' running metric over the epoch, with dropout and augmentation on (the curves).
# train_eval_*: the same model after the epoch, in inference mode on a fixed train subset (the claims).
STATE_FILE = "state.json"
CHECKPOINT_FILE = "last.keras"
NEXT_CHECKPOINT_FILE = "next.keras"  # written during validation; moved to last.keras with its state.json


# -- environment ---------------------------------------------------------------------------------------
def has_gpu() -> bool:
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() == "gpu"
    return bool(tf.config.list_physical_devices("GPU"))


def choose_precision(cfg: Config, num_classes: int, jit: bool) -> precision.PrecisionChoice:
    """train.precision, or for `auto` the faster policy for this model, timed here (alexnet.precision)."""

    def build():
        model = build_model(cfg.model, num_classes, cfg.train.crop)
        compile_model(model, cfg, num_classes, jit)
        return model

    return precision.choose(
        cfg.train.precision, build, (cfg.train.crop, cfg.train.crop, 3), num_classes, cfg.train.batch_size,
        Path(cfg.data.cache_dir), {**cfg.model.model_dump(), "jit": jit, "optimizer": cfg.train.optimizer},
    )  # fmt: skip


def choose_xla(setting: str | bool) -> bool:
    """XLA only on GPU by default: on CPU it measured slower than plain TF here. JAX always compiles
    (without jit it runs op by op)."""
    if keras.backend.backend() == "jax":
        return True
    return has_gpu() if setting == "auto" else bool(setting)


def choose_strategy() -> tf.distribute.Strategy:
    """Several machines (TF_CONFIG): MultiWorkerMirrored; several GPUs: Mirrored; else the default.

    ALEXNET_CPU_REPLICAS=N (no GPU) splits the CPU into N logical devices and mirrors over them: the
    multi-replica code path (gradient all-reduce, per-replica batches) exercised without a GPU.
    """
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    cpu_replicas = int(os.environ.get("ALEXNET_CPU_REPLICAS") or 1)
    if cpu_replicas > 1 and not has_gpu():
        cpu = tf.config.list_physical_devices("CPU")[0]
        # Only possible before TensorFlow initialises its devices; after that, mirror over those that exist.
        with contextlib.suppress(RuntimeError):
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")][:cpu_replicas]
        if len(devices) > 1:
            return tf.distribute.MirroredStrategy(devices)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def seed_everything(seed: int, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


# -- callbacks ---------------------------------------------------------------------------------------
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


class TrainErrorProbe(keras.callbacks.Callback):
    """After each epoch: top-1/top-5 error on a fixed train subset in inference mode (no dropout, no
    augmentation, centre crop), written into the epoch's logs as train_eval_top1/top5_error."""

    def __init__(self, batches: tf.data.Dataset | None):
        super().__init__()
        self.batches = batches

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.batches is not None:
            logs.update(inference_errors(self.model, self.batches))


def inference_errors(model, batches: tf.data.Dataset) -> dict[str, float]:
    """Top-1/top-5 error of `model` (training=False) over (images, labels) batches.

    model.predict runs the compiled inference function over the same batches: twice the speed of eager
    `model(images)` calls and, in float32 on one device, the same logits bit for bit.
    """
    logits = np.asarray(model.predict(batches, verbose=0), np.float32)
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in batches])
    top = np.argsort(-logits, axis=1, kind="stable")[:, : min(5, logits.shape[1])]
    return {
        "train_eval_top1_error": float(np.mean(top[:, 0] != labels)),
        "train_eval_top5_error": float(1.0 - np.mean(np.any(top == labels[:, None], axis=1))),
    }


class CheckpointWriter(keras.callbacks.Callback):
    """Writes the epoch's `.keras` checkpoint on a thread while the validation pass and the probe run: neither
    changes a weight or the optimizer's state. The recorder waits for it, then writes state.json, which
    holds what changes after validation (the schedule, the learning rate, the history)."""

    def __init__(self, run: TrainingRun):
        super().__init__()
        self.run, self.thread, self.error = run, None, None

    def on_test_begin(self, logs=None):
        self.wait()  # at most one write at a time
        self.thread = threading.Thread(target=self._write, name="checkpoint", daemon=True)
        self.thread.start()

    def _write(self):
        try:
            self.run.write_next_model(self.model)
        except BaseException as error:  # noqa: BLE001  (re-raised on the training thread by wait())
            self.error = error

    def wait(self) -> bool:
        """Block until the last write is done (re-raising its error); whether there was one."""
        thread, self.thread = self.thread, None
        if thread is None:
            return False
        thread.join()
        error, self.error = self.error, None
        if error is not None:
            raise error
        return True


class EpochRecorder(keras.callbacks.Callback):
    """history.csv, MLflow metrics and the resumable checkpoint, once per epoch."""

    def __init__(
        self, run: TrainingRun, images_per_epoch: int, schedule: PlateauSchedule | StepSchedule, tracker, rows: list,
        epochs: int = 0, trainings: int = 1, writer: CheckpointWriter | None = None,
    ):  # fmt: skip
        super().__init__()
        self.writer = writer
        self.run, self.images_per_epoch, self.schedule, self.tracker = run, images_per_epoch, schedule, tracker
        self.rows, self.epochs, self.trainings = rows, epochs, trainings
        self.started = time.perf_counter()
        self.estimated = False

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.learning_rate = learning_rate_of(self.model.optimizer)

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
            print(estimate_line(seconds, self.epochs - epoch - 1, self.epochs, self.trainings), flush=True)


def estimate_line(epoch_seconds: float, epochs_left: int, epochs: int, trainings: int) -> str:
    """Item 5 of issue 22: after the first epoch, how long the rest of this training and the whole study's
    trainings (ablations.run x ablations.seeds, each `epochs` long) take on this machine at this rate."""
    remaining = epochs_left * epoch_seconds / 60
    study = trainings * epochs * epoch_seconds / 60
    return (
        f"estimate: an epoch takes {epoch_seconds:.1f} s here; this training about {remaining:.0f} min more; "
        f"the {trainings} trainings of a whole `dvc repro` about {study:.0f} min on this machine "
        "(evaluations and Figure 1 not counted)"
    )


def write_history(path: Path, rows: list[dict]) -> None:
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


# -- the run ------------------------------------------------------------------------------------------
@dataclass
class TrainingRun:
    """Where one (variant, seed) writes, and its resumable state."""

    model_file: Path
    history_file: Path
    checkpoint_dir: Path
    fingerprint: str

    def load_state(self) -> dict | None:
        state_file = self.checkpoint_dir / STATE_FILE
        if not state_file.is_file() or not (self.checkpoint_dir / CHECKPOINT_FILE).is_file():
            return None
        state = json.loads(state_file.read_text())
        return state if state.get("fingerprint") == self.fingerprint else None

    def write_next_model(self, model) -> None:
        """The model into next.keras; save_checkpoint moves it into place together with its state."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.checkpoint_dir / NEXT_CHECKPOINT_FILE)

    def save_checkpoint(
        self, model, epochs_done: int, schedule: dict, rows: list, run_id: str | None, model_saved: bool = False
    ) -> None:
        """The resumable state after `epochs_done` epochs; the model file too unless `model_saved` (the
        CheckpointWriter wrote it during validation, before the schedule's end-of-epoch change of the rate)."""
        if not model_saved:
            self.write_next_model(model)
        os.replace(self.checkpoint_dir / NEXT_CHECKPOINT_FILE, self.checkpoint_dir / CHECKPOINT_FILE)
        state = {
            "fingerprint": self.fingerprint,
            "epochs_done": epochs_done,
            "seed_generators": seed_generator_states(model),
            "schedule": schedule,
            "learning_rate": learning_rate_of(model.optimizer),
            "history": rows,
            "mlflow_run_id": run_id,
        }
        (self.checkpoint_dir / "state.tmp").write_text(json.dumps(state, indent=2))
        os.replace(self.checkpoint_dir / "state.tmp", self.checkpoint_dir / STATE_FILE)


def seed_generator_states(model: keras.Model) -> dict[str, list[int]]:
    """Dropout's random state by layer: a `.keras` file does not keep it, so a resume would draw new masks."""
    return {
        layer.name: np.asarray(layer.seed_generator.state.value).tolist()
        for layer in model.layers
        if getattr(layer, "seed_generator", None) is not None
    }


def restore_seed_generators(model: keras.Model, states: dict[str, list[int]]) -> None:
    for name, value in states.items():
        generator = model.get_layer(name).seed_generator
        generator.state.assign(np.asarray(value, dtype=generator.state.dtype))


def fingerprint(cfg: Config, data_hash: str) -> str:
    """What a checkpoint must match to be resumed: model, augmentation, training params and the data."""
    relevant = {
        key: value
        for key, value in flatten(cfg).items()
        if key.split(".")[0] in OVERRIDABLE
    }
    relevant["data_hash"] = data_hash
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def compile_model(model: keras.Model, cfg: Config, num_classes: int, jit: bool) -> None:
    model.compile(
        optimizer=make_optimizer(cfg.train),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, num_classes), name="top5"),
        ],
        jit_compile=jit,
    )


def resume_state(run: TrainingRun, total_epochs: int) -> dict | None:
    """The checkpoint state to continue from, or None (and a clean folder) to start fresh."""
    state = run.load_state()
    if state and 0 < state["epochs_done"] < total_epochs:
        return state
    shutil.rmtree(run.checkpoint_dir, ignore_errors=True)
    run.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    return None


def learning_rate_schedule(cfg: Config, state: dict | None) -> PlateauSchedule | StepSchedule:
    train = cfg.train
    if train.schedule == "step":
        return StepSchedule(train.learning_rate, train.lr_drop_factor, train.lr_steps, train.epochs)
    return PlateauSchedule(train.lr_drop_factor, train.lr_patience, train.lr_max_drops, state and state["schedule"])


def train(cfg: Config, data: PreparedData, run: TrainingRun, tracker, state: dict | None, verbose: int = 2):
    """Train (or resume) one model; returns (model, history rows)."""
    backend = require(cfg.train.backend)
    cluster = parallel.setup()  # first: a JAX cluster must form before any other JAX call
    if backend == "jax":
        with contextlib.suppress(RuntimeError):
            tf.config.set_visible_devices([], "GPU")  # tf.data only feeds batches: the GPU is JAX's
    jit = choose_xla(cfg.train.xla)
    # before any TF op: logical CPU replicas (ALEXNET_CPU_REPLICAS) must be set while TF is uninitialised
    strategy = choose_strategy() if backend == "tensorflow" else tf.distribute.get_strategy()
    model, choice = prepare_model(cfg, data, run, state, jit, strategy, cluster)
    print(f"{choice.line()}; {ONEDNN.line()}", flush=True)
    first_epoch = state["epochs_done"] if state else 0
    steps = steps_per_epoch(data, cfg.train.batch_size)
    parallel.per_process_batch(cfg.train.batch_size, cluster)  # a clear error before any work
    train_batches = train_dataset(
        data, cfg.augment, cfg.train.crop, cfg.train.batch_size, cfg.train.seed,
        first_epoch, cfg.train.epochs, cfg.train.shuffle_buffer, deterministic=cfg.train.deterministic,
        shard=(cluster.process, cluster.processes),
    )  # fmt: skip
    val_batches = validation_batches(cfg, data, cluster)
    rows = list(state["history"]) if state else []
    schedule = learning_rate_schedule(cfg, state)
    trainings = len(cfg.ablations.run) * len(cfg.ablations.seeds)
    # JAX's saving is not thread-safe ('NoneType' object is not callable from a thread): it saves in line.
    writer = CheckpointWriter(run) if backend == "tensorflow" else None
    recorder = EpochRecorder(
        run, steps * cfg.train.batch_size, schedule, tracker, rows, cfg.train.epochs, trainings, writer
    )
    # A multi-process run would need the probe sharded like the val pass; it records NaN there instead.
    probe_images = cfg.train.train_error_images if cluster.processes == 1 else 0
    probe = TrainErrorProbe(
        train_probe(data, cfg.train.crop, probe_images, cfg.evaluate.batch_size) if probe_images else None
    )
    distribution = type(strategy).__name__ if backend == "tensorflow" else cluster.name
    tracker.set_tags({**choice.tags(), **ONEDNN.record(), "backend": backend, "xla": str(jit),
                      "strategy": distribution, "processes": str(cluster.processes)})  # fmt: skip
    if choice.rates or ONEDNN.rates:
        tracker.log_metrics({**choice.metrics(), **{f"onednn_{name}_img_s": r for name, r in ONEDNN.rates.items()}})
    try:
        model.fit(
            train_batches,
            epochs=cfg.train.epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=steps,
            validation_data=val_batches,
            callbacks=[callback for callback in (writer, schedule, probe, recorder) if callback],
            verbose=verbose,
        )
    finally:
        if writer:  # an interrupted epoch's next.keras is never moved into place; its error is fit's
            with contextlib.suppress(Exception):
                writer.wait()
    model.save(run.model_file)
    return model, rows


def prepare_model(cfg: Config, data: PreparedData, run: TrainingRun, state, jit, strategy, cluster):
    """(model, precision choice): a fresh model in the chosen policy, or the checkpoint's with its own."""
    if cluster.processes > 1 and cfg.train.precision == "auto":
        raise ValueError(
            "params.yaml: train.precision: auto times each process on its own and they could disagree; "
            "set it explicitly for multi-process training (e.g. -S train.precision=mixed_bfloat16)"
        )
    choice = None if state else choose_precision(cfg, data.num_classes, jit)  # a resumed model keeps its own
    if choice:
        keras.mixed_precision.set_global_policy(choice.policy)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    with strategy.scope():
        if state:
            model = keras.saving.load_model(run.checkpoint_dir / CHECKPOINT_FILE, safe_mode=True)
            restore_seed_generators(model, state.get("seed_generators", {}))
            if "learning_rate" in state:  # the model file was written before a plateau drop, if one came
                model.optimizer.learning_rate.assign(state["learning_rate"])
        else:
            model = build_model(cfg.model, data.num_classes, cfg.train.crop, seed=cfg.train.seed)
            compile_model(model, cfg, data.num_classes, jit)
    return model, choice or precision.PrecisionChoice(model.dtype_policy.name, "checkpoint")


def validation_batches(cfg: Config, data: PreparedData, cluster) -> tf.data.Dataset:
    """The val centre crops for each epoch's validation, decoded once and kept in memory where they fit."""
    cache = fits_in_memory(data.counts["val"], cfg.train.crop)
    batches = eval_dataset(data, cfg.train.crop, cfg.evaluate.batch_size, cache=cache)
    return parallel.even_batches(batches, cfg.evaluate.batch_size, data.counts["val"], cluster)
