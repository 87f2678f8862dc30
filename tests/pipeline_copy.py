"""Helpers for tests: the synthetic profile, a throw-away git copy of the project, DVC/MLflow runners."""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# The small offline profile tests run on (params.yaml's default is the real-data Imagenette profile).
# It lives in one file, which `make run-synthetic` passes to `dvc exp run -S` line by line.
PROFILE_FILE = REPO / "profiles" / "synthetic.params"


def profile_overrides(path: Path = PROFILE_FILE) -> dict[str, object]:
    """{'data.source': 'synthetic', ...}: the profile file's KEY=VALUE lines, values parsed as YAML."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: yaml.safe_load(value) for key, value in pairs}


def apply_profile(params: dict, path: Path = PROFILE_FILE) -> dict:
    """Edit a params tree in place as `dvc exp run -S` would with a profile file's lines; returns it.

    Each key must already exist in params.yaml (dvc would add a misspelt one, and config would reject it).
    """
    for dotted, value in profile_overrides(path).items():
        *sections, leaf = dotted.split(".")
        node = params
        for section in sections:
            assert isinstance(node.get(section), dict), f"{path.name}: {dotted} is not a key of params.yaml"
            node = node[section]
        assert leaf in node, f"{path.name}: {dotted} is not a key of params.yaml"
        node[leaf] = copy.deepcopy(value)
    return params


def synthetic_profile(params: dict) -> dict:
    """Edit a params tree in place to the synthetic profile (offline, minutes on a CPU); returns it."""
    return apply_profile(params, PROFILE_FILE)


def read_params(synthetic: bool = True) -> dict:
    """The project's params.yaml as a plain tree, with the synthetic profile applied unless synthetic=False."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    return synthetic_profile(params) if synthetic else params


def project_copy(destination: Path, edit_params=None, synthetic: bool = True, untracked: bool = True) -> Path:
    """Copy the project's tracked (and, unless untracked=False, unignored) files into a fresh git repo.

    The copy's params.yaml gets the synthetic profile (unless synthetic=False), then `edit_params`,
    before the first commit. untracked=False is a fresh clone's view: no dvc.lock or reports/ of a past run.
    """
    listing = ["git", "ls-files", "-co", "--exclude-standard"] if untracked else ["git", "ls-files"]
    listed = subprocess.run(listing, cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    destination.mkdir(parents=True, exist_ok=True)
    for name in listed:
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if synthetic or edit_params:
        params = yaml.safe_load((destination / "params.yaml").read_text())
        if synthetic:
            synthetic_profile(params)
        if edit_params:
            edit_params(params)
        (destination / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(destination, "init", "-q")
    git(destination, "add", "-A")
    git(destination, "commit", "-qm", "test copy")
    return destination


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "MLFLOW_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.update(extra or {})
    return env


def git(folder: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True, env={**os.environ, **env},
        timeout=120,
    ).stdout


def run_logged(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run `command` to completion, at most `timeout` seconds; return (exit status, stdout + stderr).

    Output goes to a file, never a pipe: a daemon the command leaves behind (`dvc queue start`'s workers)
    inherits the descriptor, and reading a pipe to its end would wait for that daemon to exit, which
    is the hang this replaces. The command runs in its own session; on timeout its whole group is killed.
    """
    with tempfile.TemporaryFile("w+", errors="replace") as log:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            status = process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            log.seek(0)
            tail = log.read()[-4000:]
            raise AssertionError(f"{' '.join(command)} did not finish in {timeout:.0f}s:\n{tail}") from None
        log.seek(0)
        return status, log.read()


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group a `start_new_session=True` process leads, then reap the leader."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def stop_group(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the group a `start_new_session=True` process leads; SIGKILL it if it is not gone in `grace` s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    kill_group(process)  # also what the leader's children left behind


def free_ports(count: int = 1) -> list[int]:
    """`count` distinct loopback ports nothing listens on (held open together while picked, so no repeats)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


def dvc(folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """`dvc ARGS` in `folder`: its output; an AssertionError with the output tail if it fails or overruns."""
    status, output = run_logged([str(BIN / "dvc"), *args], folder, environment(env), timeout)
    if status != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({status}):\n{output[-4000:]}")
    return output


@contextlib.contextmanager
def dvc_queue(project: Path, workers: int = 1, timeout: float = 1200):
    """`dvc queue start -j WORKERS`, yielding a wait() that returns `dvc queue status` once nothing is
    queued or running (AssertionError after `timeout` s). On exit, always: `dvc queue stop --kill`, then
    SIGKILL for any process still working in the project (a queue worker that never exited)."""

    def wait() -> str:
        deadline = time.monotonic() + timeout
        while True:
            status = dvc(project, "queue", "status", timeout=120)
            if "Queued" not in status and "Running" not in status:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"the queue did not finish in {timeout:.0f}s:\n{status}")
            time.sleep(5)

    try:
        dvc(project, "queue", "start", "-j", str(workers), timeout=120)
        yield wait
    finally:
        with contextlib.suppress(AssertionError):
            dvc(project, "queue", "stop", "--kill", timeout=120)
        _kill_processes_in(project)


def _kill_processes_in(folder: Path, grace: float = 10) -> None:
    """SIGKILL every process whose working directory is inside `folder` (left over by the test that made it)."""
    folder, deadline = folder.resolve(), time.monotonic() + grace
    while True:
        left = []
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                    left.append(int(proc.name))
        if not left or time.monotonic() > deadline:
            break
        time.sleep(1)  # give `queue stop` a moment to end them itself
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def small_raw_data(root: Path, edit_params=None):
    """The tiny profile ingested into `root/raw`: (params tree, validated config, raw folder)."""
    from alexnet.config import parse
    from alexnet.data.ingest import ingest

    params = read_params()
    small_params(params)
    params["data"]["cache_dir"] = str(root / "cache")
    if edit_params:
        edit_params(params)
    cfg = parse(params)
    ingest(cfg.data, root / "raw", root / "work", progress=False)
    return params, cfg, root / "raw"


def small_params(params: dict) -> None:
    """The synthetic profile, shrunk further: two epochs, tiny data."""
    synthetic_profile(params)
    params["data"]["synthetic"].update(classes=3, train_per_class=32, val_per_class=8, image_size=48)
    params["data"].update(classes=3, train_per_class=32, val_per_class=8)
    params["preprocess"].update(size=40)
    params["train"].update(crop=32, epochs=2, batch_size=16)
    params["ablations"].update(run=["baseline", "no_lrn"], seeds=[0])
    params["figure1"].update(epochs=2, learning_rates=[0.03])


def stage_command(stage: str, variant: str | None = None, seed: int | None = None) -> list[str]:
    """A stage's `cmd` from dvc.yaml (the one place its paths are written), matrix items filled in."""
    command = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    command = command.replace("${item.variant}", str(variant)).replace("${item.seed}", str(seed))
    return shlex.split(command)
