"""Multi-process data parallel `model.fit` under JAX: two processes on 127.0.0.1 train the synthetic profile.

Each process feeds its own half of every global batch; gradients are averaged over both, so both end
with the same weights, and those follow the one-process run on the same global batches.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from pipeline_copy import environment, small_raw_data

_SCRIPT = """
import hashlib, json, sys
from pathlib import Path
import alexnet.backend
import keras
import numpy as np
from alexnet import checkpoint, training
from alexnet.config import parse
from alexnet.data.input import load_prepared
from alexnet.tracking import Tracker

root, name = Path(sys.argv[1]), sys.argv[2]
cfg = parse(json.loads((root / "params.json").read_text()))
folder = root / name
folder.mkdir()
run = checkpoint.TrainingRun(folder / "model.keras", folder / "history.csv", folder / "checkpoints", "same")
model, rows = training.train(cfg, load_prepared(root / "prepared"), run, Tracker(cfg.tracking), state=None, verbose=0)
import jax
weights = [np.asarray(w, np.float32) for w in model.get_weights()]
print("RESULT " + json.dumps({
    "processes": jax.process_count(), "devices": jax.device_count(),
    "distribution": type(keras.distribution.distribution()).__name__,
    "losses": [row["loss"] for row in rows],
    "sha256": hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest(),
    "weights": np.concatenate([w.ravel() for w in weights])[::97].tolist(),
}), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def prepared_root(tmp_path_factory):
    from alexnet.data.preprocess import preprocess

    def jax_float32(raw):
        raw["train"].update(backend="jax", epochs=3, precision="float32", deterministic=True, batch_size=16)
        raw["model"]["dropout"] = 0.0  # masks are drawn over the global batch, whose order differs by process
        raw["tracking"]["enabled"] = False

    root = tmp_path_factory.mktemp("parallel")
    params, cfg, raw_dir = small_raw_data(root, jax_float32)
    preprocess(cfg.preprocess, raw_dir, root / "prepared", progress=False)
    (root / "params.json").write_text(json.dumps(params))
    (root / "params.yaml").write_text(json.dumps(params))
    (root / "script.py").write_text(textwrap.dedent(_SCRIPT))
    return root


def _start(root, name: str, extra: dict[str, str]) -> subprocess.Popen:
    env = environment({"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", **extra})
    return subprocess.Popen(
        [sys.executable, str(root / "script.py"), str(root), name], cwd=root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def _finish(processes: list[subprocess.Popen], timeout: float = 480) -> list[dict]:
    """Bounded wait for every process; kills every process group it started, whatever happens."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
    assert all(p.returncode == 0 for p in processes), "\n----\n".join(o[-3000:] for o in outputs)
    results = []
    for output in outputs:
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        assert lines, output[-3000:]
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
    return results


@pytest.fixture(scope="module")
def one_process(prepared_root):
    (result,) = _finish([_start(prepared_root, "single", {})])
    assert (result["processes"], result["devices"], result["distribution"]) == (1, 1, "NoneType")
    return result


@pytest.mark.slow
def test_two_processes_fit_to_identical_weights_like_one_process(prepared_root, one_process):
    port = _free_port()
    cluster = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    workers = [_start(prepared_root, f"p{i}", {**cluster, "KERAS_DISTRIBUTION_PROCESS_ID": str(i)}) for i in (0, 1)]
    first, second = _finish(workers)

    for result in (first, second):
        assert (result["processes"], result["devices"], result["distribution"]) == (2, 2, "DataParallel")
    assert first["sha256"] == second["sha256"], "both processes end with the same weights"
    assert first["losses"] == second["losses"]
    assert first["losses"][-1] < first["losses"][0], first["losses"]
    # The two halves make up exactly the one-process batches: same training, up to summation order.
    np.testing.assert_allclose(first["losses"], one_process["losses"], rtol=2e-3)
    np.testing.assert_allclose(first["weights"], one_process["weights"], rtol=2e-2, atol=2e-3)


@pytest.mark.slow
def test_two_host_devices_in_one_process_fit_like_one_device(prepared_root, one_process):
    (result,) = _finish([_start(prepared_root, "devices", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})])
    assert (result["processes"], result["devices"], result["distribution"]) == (1, 2, "DataParallel")
    assert result["losses"][-1] < result["losses"][0], result["losses"]
    np.testing.assert_allclose(result["losses"], one_process["losses"], rtol=2e-3)
    np.testing.assert_allclose(result["weights"], one_process["weights"], rtol=2e-2, atol=2e-3)


def test_process_shards_interleave_into_exactly_the_one_process_batches(prepared_root):
    from alexnet.config import parse
    from alexnet.data.input import load_prepared, train_dataset

    cfg = parse(json.loads((prepared_root / "params.json").read_text()))
    data = load_prepared(prepared_root / "prepared")

    def batches(shard):
        dataset = train_dataset(
            data, cfg.augment, cfg.train.crop, cfg.train.batch_size, seed=0, first_epoch=0, last_epoch=2,
            shuffle_buffer=cfg.train.shuffle_buffer, deterministic=True, shard=shard,
        )  # fmt: skip
        return [(images.numpy(), labels.numpy()) for images, labels in dataset]

    whole, halves = batches((0, 1)), [batches((0, 2)), batches((1, 2))]
    assert len(whole) == len(halves[0]) == len(halves[1]) == 2 * (3 * 32 // 16)
    for (images, labels), *parts in zip(whole, *halves, strict=True):
        for index, (part_images, part_labels) in enumerate(parts):
            assert part_images.shape[0] == cfg.train.batch_size // 2
            # Process p holds images p, p + 2, p + 4, ... of the global batch, augmented identically.
            np.testing.assert_array_equal(part_images, images[index::2])
            np.testing.assert_array_equal(part_labels, labels[index::2])
