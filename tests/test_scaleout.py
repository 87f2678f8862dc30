"""Scale-out: a DVC remote shared by clones, a real MLflow tracking server, and tf.distribute on CPU.

Nothing here needs a GPU: the multi-worker and mirrored strategies run over 127.0.0.1 and logical CPU
devices, the same code paths a multi-GPU or multi-machine run takes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
from pipeline_copy import (
    BIN,
    dvc,
    environment,
    free_ports,
    git,
    kill_group,
    project_copy,
    small_params,
    stages_run,
    stop_group,
)


def _one_variant(params):
    small_params(params)
    params["ablations"]["run"] = ["baseline"]
    params["train"]["epochs"] = 1


# -- DVC remote ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_push_then_fresh_clone_pull_has_nothing_to_rerun(tmp_path):
    project = project_copy(tmp_path / "project", _one_variant)
    dvc(project, "repro")
    dvc(project, "remote", "add", "-d", "shared", str(tmp_path / "remote"))
    dvc(project, "push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "results")

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True, timeout=120)
    assert not (clone / "data/prepared").exists() and not (clone / "mlflow.db").exists()
    dvc(clone, "pull")
    assert (clone / "models/baseline-s0/model.keras").read_bytes() == (
        project / "models/baseline-s0/model.keras"
    ).read_bytes()
    assert dvc(clone, "status").strip().endswith("Data and pipelines are up to date.")
    assert stages_run(dvc(clone, "repro")) == set(), "nothing re-runs after a pull"


# -- MLflow tracking server ------------------------------------------------------------------------
@pytest.fixture
def mlflow_server(tmp_path):
    (port,) = free_ports()
    store = tmp_path / "server"
    store.mkdir()
    log = (store / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(BIN / "python"), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination", (store / "artifacts").as_uri(), "--workers", "1",
        ],
        cwd=store, env=environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start:\n{(store / 'server.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url, store
    finally:
        stop_group(server)
        log.close()


@pytest.mark.slow
def test_dvc_repro_logs_to_a_real_tracking_server_on_loopback(tmp_path, mlflow_server):
    url, store = mlflow_server
    project = project_copy(tmp_path / "project", _one_variant)
    output = dvc(project, "repro", env={"MLFLOW_TRACKING_URI": url})
    assert "tracking: MLflow store" not in output, output[-3000:]
    assert not (project / "mlflow.db").exists(), "MLFLOW_TRACKING_URI wins over the project store"

    import mlflow

    client = mlflow.MlflowClient(url)
    experiment = client.get_experiment_by_name("alexnet")
    runs = client.search_runs([experiment.experiment_id], "tags.variant = 'baseline'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert {"val_top1_error", "eval_top1_error"} <= set(run.data.metrics), run.data.metrics
    assert run.data.params["model.activation"] == "relu"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_top1_error")] == [1]
    logged = client.search_logged_models([experiment.experiment_id], f"source_run_id = '{run.info.run_id}'")
    assert [model.name for model in logged] == ["model"], logged
    assert any((store / "artifacts").rglob("model.keras")), "artifacts went through the server to its root"
    assert json.loads((project / "models/baseline-s0/run.json").read_text())["mlflow_run_id"] == run.info.run_id

    # The registry through the server: compare registered the study's best baseline as alexnet@champion,
    # and `alexnet predict` downloads it from the server's artifact proxy.
    champion = client.get_model_version_by_alias("alexnet", "champion")
    assert champion.run_id == run.info.run_id
    assert "tracking: registered alexnet version 1" in output
    image = next((project / "data/raw").rglob("*.JPEG"))
    predicted = subprocess.run(
        [str(BIN / "alexnet"), "predict", str(image), "--model", "models:/alexnet@champion", "--json"],
        cwd=project, env=environment({"MLFLOW_TRACKING_URI": url}), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert [p["file"] for p in json.loads(predicted.stdout)["predictions"]] == [str(image)]


# -- tf.distribute on CPU --------------------------------------------------------------------------
_STEPS = """
import json, os, sys
import numpy as np
import keras
import tensorflow as tf
from alexnet.runtime import choose_strategy

strategy = choose_strategy()
keras.utils.set_random_seed(0)
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(int(os.environ.get("DATA_SEED", "0")))
x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # own data per worker
batches = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(16).with_options(options)
history = model.fit(batches, epochs=1, steps_per_epoch=3, verbose=0)
print("RESULT " + json.dumps({
    "strategy": type(strategy).__name__,
    "replicas": strategy.num_replicas_in_sync,
    "loss": float(history.history["loss"][-1]),
    "weights": float(sum(np.abs(w).sum() for w in model.get_weights())),
}))
"""


def _result(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, output[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


_WORKER_STEPS = """
import json, os
import numpy as np
import tensorflow as tf
from alexnet.runtime import choose_strategy

strategy = choose_strategy()
rng = np.random.default_rng(int(os.environ["DATA_SEED"]))  # each worker its own data
x = tf.constant(rng.normal(size=(16, 8)).astype("float32"))
y = tf.constant(rng.normal(size=(16, 1)).astype("float32"))
with strategy.scope():
    weights = tf.Variable(tf.zeros([8, 1]))

@tf.function
def step():
    def replica():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((tf.matmul(x, weights) - y) ** 2)
        gradient = tf.distribute.get_replica_context().all_reduce("MEAN", tape.gradient(loss, weights))
        weights.assign_sub(0.1 * gradient)
        return loss
    return strategy.reduce("MEAN", strategy.run(replica), axis=None)

losses = [float(step()) for _ in range(3)]
print("RESULT " + json.dumps({
    "strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync, "loss": losses[-1],
    "weights": weights.numpy().ravel().tolist(),
}))
"""


def _two_workers(tmp_path, script: str) -> list[dict]:
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers, logs = [], [tmp_path / f"worker-{index}.log" for index in range(2)]
    try:
        for index, log in enumerate(logs):
            env = environment({
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                "DATA_SEED": str(index),
                "CUDA_VISIBLE_DEVICES": "",
            })  # fmt: skip
            with log.open("w") as handle:
                workers.append(subprocess.Popen(
                    [sys.executable, "-c", script], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=handle,
                    stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip
        deadline = time.monotonic() + 300
        for worker in workers:
            worker.wait(max(1.0, deadline - time.monotonic()))
    finally:
        for worker in workers:
            kill_group(worker)
    outputs = [log.read_text() for log in logs]
    assert all(worker.returncode == 0 for worker in workers), "\n----\n".join(o[-2000:] for o in outputs)
    return [_result(output) for output in outputs]


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_with_two_workers_on_loopback(tmp_path):
    """choose_strategy() under TF_CONFIG: two workers on 127.0.0.1 all-reduce their gradients in step."""
    results = _two_workers(tmp_path, _WORKER_STEPS)
    multi_worker = ("MultiWorkerMirroredStrategy", "CollectiveAllReduceStrategy")  # the class behind the alias
    assert all(r["strategy"] in multi_worker and r["replicas"] == 2 for r in results), results
    assert results[0]["weights"] == pytest.approx(results[1]["weights"], rel=1e-6), "same weights from different data"
    assert any(abs(w) > 0 for w in results[0]["weights"])


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="Keras 3 model.fit does not support MultiWorkerMirroredStrategy (PerReplica conversion error): "
    "keras-team/keras#20585, tensorflow/tensorflow#72388",
)
def test_keras_fit_under_multi_worker_mirrored_strategy(tmp_path):
    _two_workers(tmp_path, _STEPS)


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpu_devices(tmp_path):
    env = environment({"ALEXNET_CPU_REPLICAS": "2", "CUDA_VISIBLE_DEVICES": ""})
    env.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", _STEPS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    outcome = _result(result.stdout)
    assert outcome["strategy"] == "MirroredStrategy" and outcome["replicas"] == 2, outcome
    assert outcome["loss"] == outcome["loss"], "finite loss"


@pytest.mark.slow
def test_without_the_switch_one_cpu_keeps_the_default_strategy(tmp_path):
    env = environment({"CUDA_VISIBLE_DEVICES": ""})
    env.pop("TF_CONFIG", None)
    env.pop("ALEXNET_CPU_REPLICAS", None)
    result = subprocess.run(
        [sys.executable, "-c", _STEPS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _result(result.stdout)["replicas"] == 1
