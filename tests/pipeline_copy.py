"""Helpers for end-to-end tests: a throw-away git copy of the project, and DVC/MLflow runners."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def project_copy(destination: Path, edit_params=None) -> Path:
    """Copy the project's tracked and unignored files into a fresh git repo at `destination`."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    destination.mkdir(parents=True, exist_ok=True)
    for name in listed:
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if edit_params:
        params = yaml.safe_load((destination / "params.yaml").read_text())
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
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True, env={**os.environ, **env}
    ).stdout


def dvc(folder: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    result = subprocess.run(
        [str(BIN / "dvc"), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=environment(env),
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({result.returncode}):\n{output[-4000:]}")
    return output


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def small_raw_data(root: Path, edit_params=None):
    """The tiny profile ingested into `root/raw`: (params tree, validated config, raw folder)."""
    from alexnet.config import parse
    from alexnet.data.ingest import ingest

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    small_params(params)
    params["data"]["cache_dir"] = str(root / "cache")
    if edit_params:
        edit_params(params)
    cfg = parse(params)
    ingest(cfg.data, root / "raw", root / "work", progress=False)
    return params, cfg, root / "raw"


def small_params(params: dict) -> None:
    """A faster default profile for tests: two epochs, tiny data."""
    params["data"]["synthetic"].update(classes=3, train_per_class=32, val_per_class=8, image_size=48)
    params["data"].update(classes=3, train_per_class=32, val_per_class=8)
    params["preprocess"].update(size=40)
    params["train"].update(crop=32, epochs=2, batch_size=16)
    params["ablations"].update(run=["baseline", "no_lrn"], seeds=[0])
    params["figure1"].update(epochs=2, learning_rates=[0.03])
