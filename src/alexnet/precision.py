"""`train.precision: auto`: time a few training steps of the actual model under each candidate policy, keep
the faster, and cache the choice per machine and model shape.

Whether bfloat16 pays cannot be read off a CPU flag: on one AVX512-BF16 Xeon (no AMX) mixed_bfloat16
trained AlexNet 1.4x slower than float32, on an AMD EPYC with the same flag 1.8x faster. Only keras APIs
are used here (policies, train_on_batch), so the calibration runs on any Keras backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from alexnet.backend import ONEDNN
from alexnet.cpu import ONEDNN_ISA_CAP, cpu_model

CPU_CANDIDATES = ("float32", "mixed_bfloat16")
GPU_CANDIDATES = ("mixed_float16", "mixed_bfloat16")
CACHE_FOLDER = "precision"
# Part of the cache key: raise it when a change makes one policy faster against the other (the bfloat16 LRN
# form made mixed_bfloat16 up to 1.4x faster on AMX CPUs; 3: the XLA optimizer update, up to 1.17x more for
# bfloat16; 4: the masked-shift float32 LRN, 1.24-1.31x faster on AVX-512), so that cached choices are timed again.
TIMING_REVISION = 4


@dataclass(frozen=True)
class PrecisionChoice:
    """The policy to train with; `rates` (images/s per candidate) are empty when the policy was forced."""

    policy: str
    source: str  # forced | measured | cached | checkpoint (a resumed run keeps its model's policy)
    rates: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        if not self.rates:
            return f"precision: {self.policy} ({self.source})"
        rates = ", ".join(f"{name} {rate:.1f} img/s" for name, rate in self.rates.items())
        return f"precision: auto chose {self.policy} ({rates}; {self.source})"

    def metrics(self) -> dict[str, float]:
        """For the MLflow run: the measured rate of each candidate."""
        return {f"precision_{name}_img_s": rate for name, rate in self.rates.items()}

    def tags(self) -> dict[str, str]:
        return {"precision": self.policy, "precision_source": self.source}


def device() -> tuple[str, bool]:
    """(name, is an accelerator): the GPU the backend trains on, else the CPU model with its core count."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU"), True
    elif backend == "jax":
        import jax

        first = jax.devices()[0]
        if first.platform != "cpu":
            return first.device_kind, True
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0), True
    return f"{cpu_model()} x{len(os.sched_getaffinity(0))}", False


def backend_version() -> str:
    backend = keras.backend.backend()
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    version = __import__(module).__version__ if module else "?"
    return f"keras {keras.__version__} {backend} {version}"


def cache_file(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / CACHE_FOLDER / f"{digest}.json"


def time_policies(
    build: Callable[[], keras.Model],
    policies: tuple[str, ...],
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    steps: int = 3,
    rounds: int = 2,
) -> dict[str, float]:
    """Images/s of `build()`'s compiled model under each policy: the median step over `rounds` interleaved
    rounds of `steps` train_on_batch calls each, after two warm-up steps (tracing, allocation).

    A policy the device cannot run rates 0. The global policy is restored afterwards.
    """
    previous = keras.mixed_precision.global_policy()
    rng = np.random.default_rng(0)
    images = rng.normal(0.0, 50.0, (batch_size, *input_shape)).astype("float32")
    labels = rng.integers(0, num_classes, batch_size).astype("int32")
    models, times = {}, {policy: [] for policy in policies}
    try:
        for policy in policies:
            keras.mixed_precision.set_global_policy(policy)
            try:
                models[policy] = build()
                for _ in range(2):
                    models[policy].train_on_batch(images, labels)
            except Exception as error:  # noqa: BLE001  (an unsupported dtype on this device is a rate of 0)
                print(f"precision: {policy} does not run here ({type(error).__name__}: {last_line(error)}); rated 0")
                models.pop(policy, None)
        for _ in range(rounds):
            for policy, model in models.items():
                for _ in range(steps):
                    started = time.perf_counter()
                    model.train_on_batch(images, labels)
                    times[policy].append(time.perf_counter() - started)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return {policy: batch_size / statistics.median(t) if t else 0.0 for policy, t in times.items()}


def last_line(error: Exception) -> str:
    """The informative line of a TensorFlow error, whose text is a stack of graph nodes."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("[[", "File ", "Detected at node"))] or ["?"]
    return lines[-1][:300]


def choose(
    setting: str,
    build: Callable[[], keras.Model],
    input_shape: tuple[int, ...],
    num_classes: int,
    batch_size: int,
    cache_dir: Path,
    shape_key: dict,
    measure: Callable[..., dict[str, float]] | None = None,
) -> PrecisionChoice:
    """An explicit `setting` forces; `auto` reuses the cached choice for this machine and model shape, or
    times `build()` under each candidate policy (`measure` is injectable for tests) and caches the faster."""
    if setting != "auto":
        return PrecisionChoice(setting, "forced")
    name, accelerator = device()
    candidates = GPU_CANDIDATES if accelerator else CPU_CANDIDATES
    key = {
        "device": name,
        "versions": backend_version(),
        "candidates": candidates,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "batch_size": batch_size,
        "model": shape_key,
        "onednn": [ONEDNN.enabled, os.environ.get(ONEDNN_ISA_CAP)],  # bfloat16 is fast only with oneDNN
        "timing_revision": TIMING_REVISION,
    }
    path = cache_file(cache_dir, key)
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == json.loads(json.dumps(key, default=str)) and cached["policy"] in candidates:
            return PrecisionChoice(cached["policy"], "cached", cached["rates"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rates = (measure or time_policies)(build, candidates, input_shape, num_classes, batch_size)
    policy = max(candidates, key=lambda name: rates.get(name, 0.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"key": key, "policy": policy, "rates": rates}, indent=2, default=str))
    os.replace(temporary, path)
    return PrecisionChoice(policy, "measured", {name: rates.get(name, 0.0) for name in candidates})
