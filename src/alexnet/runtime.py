"""What a training process runs on, settled once: backend, cluster, XLA, distribution strategy, precision, oneDNN.

`start_runtime` returns it as one value (`Runtime`), and is the one place that sets it up in its required order.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from alexnet import parallel, precision
from alexnet.backend import ONEDNN, OneDnnChoice, require
from alexnet.config import Config
from alexnet.model import build_model
from alexnet.optimizer import make_optimizer
from alexnet.precision import PrecisionChoice


def has_gpu() -> bool:
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() == "gpu"
    return bool(tf.config.list_physical_devices("GPU"))


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


def choose_precision(cfg: Config, num_classes: int, jit: bool) -> PrecisionChoice:
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


@dataclass(frozen=True)
class Runtime:
    """Where and how one training runs. `precision` is None until a resumed run loads its checkpoint, whose
    model keeps the policy it was trained in (training.prepare_model fills it in)."""

    backend: str  # tensorflow | jax
    cluster: parallel.Cluster  # JAX processes and devices (one process, no devices to spread over on TensorFlow)
    jit: bool  # XLA
    strategy: tf.distribute.Strategy  # TensorFlow's distribution (the default one under JAX)
    precision: PrecisionChoice | None
    onednn: OneDnnChoice

    @property
    def distribution(self) -> str:
        return type(self.strategy).__name__ if self.backend == "tensorflow" else self.cluster.name

    def line(self) -> str:
        return f"{self.precision.line()}; {self.onednn.line()}"

    def tags(self) -> dict[str, str]:
        return {**self.precision.tags(), **self.onednn.record(), "backend": self.backend, "xla": str(self.jit),
                "strategy": self.distribution, "processes": str(self.cluster.processes)}  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """The measured rates, if any: each precision candidate's and oneDNN's on and off."""
        return {**self.precision.metrics(), **{f"onednn_{name}_img_s": r for name, r in self.onednn.rates.items()}}


def start_runtime(cfg: Config, num_classes: int | None) -> Runtime:
    """Set up what train() runs on, in the one order that works; train() calls it before anything else.

    The order, and why:
    1. The Keras backend, before Keras is first imported: the stage script imports alexnet.backend first, which
       sets KERAS_BACKEND (and TF_ENABLE_ONEDNN_OPTS, read once as TensorFlow loads); `require` checks it held.
    2. The JAX cluster (parallel.setup), before any other JAX call.
    3. Under JAX, the GPUs hidden from TensorFlow (tf.data only feeds batches), before TensorFlow uses one.
    4. The strategy before any TF op: logical CPU replicas (ALEXNET_CPU_REPLICAS) can only be set while
       TensorFlow is uninitialised.
    5. The precision policy, chosen (timed, for `auto`, on a model with `num_classes` outputs) and set globally
       before the model is built. num_classes None (a resumed run) skips this: its checkpoint keeps its policy.
    Then the caller builds or loads the model inside `runtime.strategy.scope()`.
    """
    backend = require(cfg.train.backend)
    cluster = parallel.setup()  # first: a JAX cluster must form before any other JAX call
    if backend == "jax":
        with contextlib.suppress(RuntimeError):
            tf.config.set_visible_devices([], "GPU")  # tf.data only feeds batches: the GPU is JAX's
    jit = choose_xla(cfg.train.xla)
    # before any TF op: logical CPU replicas (ALEXNET_CPU_REPLICAS) must be set while TF is uninitialised
    strategy = choose_strategy() if backend == "tensorflow" else tf.distribute.get_strategy()
    if cluster.processes > 1 and cfg.train.precision == "auto":
        raise ValueError(
            "params.yaml: train.precision: auto times each process on its own and they could disagree; "
            "set it explicitly for multi-process training (e.g. -S train.precision=mixed_bfloat16)"
        )
    choice = None if num_classes is None else choose_precision(cfg, num_classes, jit)  # a resumed model keeps its own
    if choice:
        keras.mixed_precision.set_global_policy(choice.policy)
    return Runtime(backend, cluster, jit, strategy, choice, ONEDNN)
