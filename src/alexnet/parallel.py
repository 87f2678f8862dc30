"""Data-parallel `model.fit` under the JAX backend: keras.distribution.DataParallel over processes and hosts.

Every process runs the same train stage. Keras' own variables say where the cluster is:

    KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:1234   (the coordinator, process 0)
    KERAS_DISTRIBUTION_NUM_PROCESSES=N
    KERAS_DISTRIBUTION_PROCESS_ID=0..N-1

Each process feeds its own shard of every global batch (`auto_shard_dataset=False`); gradients are
averaged across all devices of all processes, so every process ends with the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class Cluster:
    process: int = 0
    processes: int = 1
    devices: int = 1
    name: str = "none"


def setup() -> Cluster:
    """Join the cluster (several processes) and spread batches over every device; a no-op on TensorFlow."""
    if keras.backend.backend() != "jax":
        return Cluster()
    import jax

    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 1)
    if processes > 1 and not jax.distributed.is_initialized():
        # Cross-process collectives on CPU need gloo (the default has none); GPUs use NCCL regardless.
        # Only takes effect before JAX first touches a device, hence before any other JAX call.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()
    if jax.device_count() > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(auto_shard_dataset=False))
        name = "DataParallel"
    else:
        name = "none"
    return Cluster(jax.process_index(), jax.process_count(), jax.device_count(), name)


def per_process_batch(batch_size: int, cluster: Cluster) -> int:
    """train.batch_size is the global batch (the paper's 128); each process feeds its share."""
    if batch_size % cluster.devices:
        raise ValueError(
            f"train.batch_size: {batch_size} does not split over {cluster.devices} devices "
            f"({cluster.processes} processes); use a multiple of {cluster.devices}"
        )
    return batch_size // cluster.processes


def even_batches(dataset, batch_size: int, images: int, cluster: Cluster):
    """Batches that split evenly over this process's devices: at most devices - 1 images are left out
    (validation during training only; the evaluate stage sees every image)."""
    local = cluster.devices // cluster.processes
    if local <= 1:
        return dataset
    batch_size = max(local, batch_size // local * local)
    return dataset.unbatch().take(images // local * local).batch(batch_size)
