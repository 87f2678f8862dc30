"""Faults: killed stages, killed downloads, concurrent writers, an unreachable tracking server, a full disk.

Each fault is injected for real (SIGKILL of the whole process group, a closed port, a 2 MiB tmpfs) and
the test then checks that nothing is lost or duplicated and that a re-run finishes the job.
"""

from __future__ import annotations

import csv
import hashlib
import http.server
import json
import os
import random
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from pipeline_copy import (
    BIN,
    REPO,
    dvc,
    dvc_queue,
    environment,
    kill_group,
    project_copy,
    run_logged,
    small_params,
    small_raw_data,
    stages_run,
)

from alexnet.data.download import DownloadError, fetch


# -- helpers ------------------------------------------------------------------------------------------
def _start(project: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """A command in its own process group, so one SIGKILL takes DVC and the stage script down together.

    Its output goes to `process.log` (a file, not a pipe: nothing can block on reading it)."""
    log = project.parent / f"{project.name}-{time.monotonic_ns()}.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            list(args), cwd=project, env=environment(env), stdin=subprocess.DEVNULL, stdout=handle,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    process.log = log
    return process


def _kill_when(process: subprocess.Popen, condition, timeout: float = 600, poll: float = 0.02):
    """SIGKILL the process group as soon as `condition()` returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            seen = condition()
            if seen:
                return seen
            if process.poll() is not None:
                raise AssertionError(f"finished before the fault was injected:\n{process.log.read_text()[-3000:]}")
            time.sleep(poll)
        raise AssertionError(f"the fault point was never reached in {timeout}s:\n{process.log.read_text()[-3000:]}")
    finally:
        kill_group(process)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tree_bytes(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _one_variant(epochs: int = 2):
    def edit(params):
        small_params(params)
        params["ablations"]["run"] = ["baseline"]
        params["train"]["epochs"] = epochs

    return edit


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the socket is: nothing listens there


# -- training killed mid-run ------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_during_training_resumes_with_every_epoch_once_and_the_same_mlflow_run(tmp_path):
    epochs = 5
    project = project_copy(tmp_path / "project", _one_variant(epochs))
    dvc(project, "repro", "preprocess")
    state_file = project / "models/baseline-s0/checkpoints/state.json"
    history_file = project / "reports/runs/baseline-s0/history.csv"
    rng = random.Random(os.getpid())
    kill_after = rng.choice([2, 3])  # a random epoch boundary, after at least two checkpoints

    training = _start(project, str(BIN / "dvc"), "repro", "train@baseline-0")
    _kill_when(
        training,
        lambda: (s := _read_json(state_file)) and s.get("epochs_done", 0) >= kill_after and s,
    )
    # What survived the kill: the last complete checkpoint (atomic) and the history written so far.
    survived = _read_json(state_file)
    assert survived["epochs_done"] >= kill_after and survived["mlflow_run_id"], survived
    with history_file.open() as handle:
        rows_at_kill = len(list(csv.DictReader(handle)))
    assert survived["epochs_done"] >= rows_at_kill - 1, "a kill loses at most the epoch in flight"
    run_id = survived["mlflow_run_id"]

    output = dvc(project, "repro")
    assert f"train: resuming baseline-s0 after epoch {survived['epochs_done']} of {epochs}" in output
    with history_file.open() as handle:
        epochs_logged = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs_logged == list(range(1, epochs + 1)), "each epoch exactly once, in order"
    assert json.loads((project / "models/baseline-s0/run.json").read_text())["mlflow_run_id"] == run_id

    with sqlite3.connect(project / "mlflow.db") as db:
        trained = db.execute(
            "select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid"
            " where t.key = 'variant' and t.value = 'baseline'"
        ).fetchall()
        assert trained == [(run_id, "FINISHED")], "the killed run is continued, not duplicated"
        tags = dict(db.execute("select key, value from tags where run_uuid = ?", (run_id,)).fetchall())
        assert tags.get("resumed") == "true"
        steps = {step for (step,) in db.execute(
            "select step from metrics where run_uuid = ? and key = 'val_top1_error'", (run_id,)
        )}  # fmt: skip
        assert steps == set(range(1, epochs + 1)), "every epoch's metrics are in the one run"
    assert dvc(project, "status").strip().endswith("Data and pipelines are up to date.")


# -- preprocess killed mid-run ---------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_during_preprocess_then_rerun_gives_identical_outputs(tmp_path):
    def bigger(params):
        params["ablations"]["run"] = ["baseline"]  # the synthetic profile's ~900 images, long enough to be hit

    clean = project_copy(tmp_path / "clean", bigger)
    dvc(clean, "repro", "preprocess")

    project = project_copy(tmp_path / "killed", bigger)
    dvc(project, "repro", "ingest")
    staging = project / "data/prepared.tmp"
    running = _start(project, str(BIN / "dvc"), "repro", "preprocess")
    _kill_when(running, lambda: staging.is_dir() and any(staging.glob("train-*.tfrecord")))
    assert not (project / "data/prepared/stats.json").exists(), "the kill hit before the output was complete"

    output = dvc(project, "repro", "preprocess")
    assert stages_run(output) == {"preprocess"}
    assert not staging.exists(), "the half-written staging folder is cleaned up"
    ours, reference = _tree_bytes(project / "data/prepared"), _tree_bytes(clean / "data/prepared")
    assert ours == reference, "shards, stats.json, mean image and classes identical to an uninterrupted run"
    assert any(name.endswith(".tfrecord") for name in ours) and "stats.json" in ours


# -- download killed mid-transfer ------------------------------------------------------------------
class _SlowRangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one payload in small, slow chunks, honouring `Range: bytes=N-`."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        data: bytes = self.server.payload
        self.server.ranges.append(self.headers.get("Range"))
        start = 0
        if requested := self.headers.get("Range"):
            start = int(requested.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        try:
            for offset in range(start, len(data), 65_536):
                self.wfile.write(data[offset : offset + 65_536])
                self.wfile.flush()
                time.sleep(self.server.delay)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def slow_server():
    payload = os.urandom(3_000_000)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowRangeHandler)
    server.payload, server.ranges, server.delay = payload, [], 0.05
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/archive.tgz", payload
    server.shutdown()
    server.server_close()


_FETCH = (
    "import sys; from pathlib import Path; from alexnet.data.download import fetch; "
    "fetch(sys.argv[1], Path(sys.argv[2]), sys.argv[3], progress=False)"
)


@pytest.mark.slow
def test_sigkill_during_download_resumes_with_range_and_verifies(tmp_path, slow_server):
    server, url, payload = slow_server
    sha256 = hashlib.sha256(payload).hexdigest()
    cache = tmp_path / "cache"
    part = cache / "archive.tgz.part"
    downloading = _start(tmp_path, str(BIN / "python"), "-c", _FETCH, url, str(cache), sha256)
    # fetch() writes in 1 MiB blocks: kill once the first block is on disk, mid-transfer.
    _kill_when(downloading, lambda: part.is_file() and part.stat().st_size >= 1 << 20)
    kept = part.stat().st_size
    assert 0 < kept < len(payload) and not (cache / "archive.tgz").exists()

    server.delay = 0.0
    target = fetch(url, cache, sha256, progress=False)
    assert server.ranges[-1] == f"bytes={kept}-", "the re-run asks only for the missing bytes"
    assert target.read_bytes() == payload and not part.exists()


def test_download_with_a_corrupted_part_file_is_refused_not_trusted(tmp_path, slow_server):
    """A resumed download whose kept bytes are wrong fails the sha256 check and names the fix."""
    server, url, payload = slow_server
    server.delay = 0.0
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "archive.tgz.part").write_bytes(b"\0" * 1000)
    with pytest.raises(DownloadError, match="sha256 mismatch.*delete .*archive.tgz and re-run"):
        fetch(url, cache, hashlib.sha256(payload).hexdigest(), progress=False)


# -- two queued experiments, one SQLite store ------------------------------------------------------
@pytest.mark.slow
def test_parallel_queue_workers_share_one_sqlite_store_without_losing_a_run(tmp_path):
    project = project_copy(tmp_path / "project", _one_variant(epochs=2))
    dvc(project, "repro")
    names = ["par-a", "par-b", "par-c"]
    for index, name in enumerate(names):
        dvc(project, "exp", "run", "--queue", "-n", name, "-S", f"model.dropout=0.{index + 1}")
    with dvc_queue(project, workers=2, timeout=1500) as wait:
        status = wait()
        logs = "".join(dvc(project, "queue", "logs", name, timeout=120) for name in names)
    assert "Failed" not in status, status + logs[-4000:]
    assert "database is locked" not in logs.lower() and "tracking: mlflow store" not in logs.lower(), logs[-4000:]
    with sqlite3.connect(project / "mlflow.db") as db:
        per_experiment = db.execute(
            "select t.value, count(distinct r.run_uuid) from runs r join tags t on t.run_uuid = r.run_uuid"
            " join tags v on v.run_uuid = r.run_uuid"
            " where t.key = 'dvc_exp_name' and v.key = 'variant' group by t.value"
        ).fetchall()
        metrics = dict(db.execute(
            "select t.value, count(*) from metrics m join tags t on t.run_uuid = m.run_uuid"
            " where t.key = 'dvc_exp_name' and m.key = 'eval_top1_error' group by t.value"
        ).fetchall())  # fmt: skip
    assert {name: 1 for name in names} | {"workspace": 1} == dict(per_experiment), "one run each, none lost"
    assert all(metrics.get(name) == 1 for name in names), metrics


# -- tracking server unreachable -------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("policy", ["warn", "fail"])
def test_unreachable_tracking_server(tmp_path, policy):
    def edit(params):
        _one_variant(epochs=1)(params)
        params["tracking"]["on_failure"] = policy

    project = project_copy(tmp_path / "project", edit)
    dvc(project, "repro", "preprocess")
    env = environment({"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_closed_port()}"})
    started = time.monotonic()
    status, output = run_logged([str(BIN / "dvc"), "repro", "train@baseline-0"], project, env, timeout=900)
    elapsed = time.monotonic() - started
    complaints = [line for line in output.splitlines() if "tracking: MLflow store" in line]
    if policy == "warn":
        assert status == 0, output[-3000:]
        assert len(complaints) == 1, output[-3000:]
        assert "cannot connect" in complaints[0] and "training continues" in complaints[0]
        assert (project / "models/baseline-s0/model.keras").stat().st_size > 0
        run = json.loads((project / "models/baseline-s0/run.json").read_text())
        assert run["mlflow_run_id"] is None and "cannot connect" in run["tracking_failure"]
        assert "Traceback" not in output
        assert dvc(project, "status", "train@baseline-0").strip().endswith("up to date.")
    else:
        assert status != 0
        assert len(complaints) == 1 and "cannot connect" in complaints[0], output[-3000:]
        assert "tracking.on_failure: warn" in complaints[0], "the message names the way out"
        assert "Traceback" not in output, output[-3000:]
        assert not (project / "models/baseline-s0/model.keras").exists(), "stopped before training"
        assert not (project / "models/baseline-s0/checkpoints/state.json").exists()
        assert elapsed < 120, f"fails fast, not after retries ({elapsed:.0f}s)"


# -- disk full during preprocess -------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_data(tmp_path_factory):
    """The tiny synthetic source ingested once: (raw params tree, config, data/raw folder)."""
    return small_raw_data(tmp_path_factory.mktemp("faults"), lambda raw: raw["preprocess"].update(shards=1, workers=1))


def test_disk_full_during_preprocess_is_one_line_and_leaves_nothing_behind(tmp_path, raw_data, monkeypatch):
    """ENOSPC from the shard writer: a one-line error naming the folder, neither output nor staging left."""
    import tensorflow as tf

    from alexnet.data.preprocess import preprocess

    _, cfg, raw_dir = raw_data
    out_dir = tmp_path / "prepared"

    class FullDisk:
        def __init__(self, path):
            self.path = path

        def write(self, record):
            raise tf.errors.ResourceExhaustedError(None, None, f"{self.path}; No space left on device")

        def close(self):
            pass

    monkeypatch.setattr(tf.io, "TFRecordWriter", FullDisk)
    with pytest.raises(OSError) as error:
        preprocess(cfg.preprocess, raw_dir, out_dir, progress=False)
    message = str(error.value)
    assert "\n" not in message and "No space left on device" in message, message
    assert f"{out_dir} not written" in message, "the error names the output folder"
    assert not out_dir.exists() and not out_dir.with_name("prepared.tmp").exists()


@pytest.mark.slow
def test_disk_full_on_a_real_tmpfs_is_one_line_and_leaves_nothing_behind(tmp_path, raw_data):
    """The stage script with data/ on a 64 KiB tmpfs: the shards cannot fit."""
    raw, _, raw_dir = raw_data
    project = tmp_path / "project"
    data = project / "data"
    data.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(data)], capture_output=True, timeout=60
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
    try:
        os.symlink(raw_dir, data / "raw")
        (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        result = subprocess.run(
            [str(BIN / "python"), str(REPO / "pipeline/preprocess.py"), "--raw", "data/raw", "--out", "data/prepared"],
            cwd=project, env=environment(),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        left = sorted(path.name for path in data.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "data/prepared not written" in errors[0] and "disk space" in errors[0], errors[0]
    assert left == ["raw"], "neither data/prepared nor its half-written staging folder is left"


# -- determinism -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_same_seed_and_deterministic_training_give_identical_metrics(tmp_path, raw_data):
    from alexnet.checkpoint import TrainingRun
    from alexnet.config import TrackingConfig
    from alexnet.data.input import load_prepared
    from alexnet.data.preprocess import preprocess
    from alexnet.tracking import Tracker
    from alexnet.training import train

    _, cfg, raw_dir = raw_data
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"deterministic": True, "epochs": 1})})
    preprocess(cfg.preprocess, raw_dir, tmp_path / "prepared", progress=False)
    data = load_prepared(tmp_path / "prepared")
    tracker = Tracker(TrackingConfig(**{**cfg.tracking.model_dump(), "enabled": False}))
    histories = []
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        folder.mkdir()
        run = TrainingRun(folder / "model.keras", folder / "history.csv", folder / "checkpoints", "f")
        _, rows = train(cfg, data, run, tracker, state=None, verbose=0)
        histories.append([{k: v for k, v in row.items() if k not in ("seconds", "images_per_second")} for row in rows])
    assert histories[0] == histories[1]
