"""Helpers for tests: the synthetic profile, a throw-away git copy of the project, DVC/MLflow runners."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# The small offline profile tests run on (params.yaml's default is the real-data Imagenette profile):
# generated images, a quarter-width net. `make run-synthetic` passes the same values as `dvc exp run -S`
# (test_config checks that the two agree). data.synthetic and everything not listed keep params.yaml's values.
SYNTHETIC_PROFILE = {
    "data": {"source": "synthetic", "url": None, "sha256": None, "classes": 6, "train_per_class": 120,
             "val_per_class": 30},
    "preprocess": {"size": 64, "jpeg_quality": 90, "shards": 2, "workers": 2},
    "model": {"width": 0.25, "fc_units": 256},
    "train": {"crop": 56, "batch_size": 32, "epochs": 8, "lr_patience": 2},
    "figure1": {"epochs": 8, "learning_rates": [0.01, 0.03]},
    "ablations": {"run": ["baseline", "no_lrn"], "seeds": [0]},
}  # fmt: skip


def synthetic_profile(params: dict) -> dict:
    """Edit a params tree in place to the synthetic profile (offline, minutes on a CPU); returns it."""
    for section, values in SYNTHETIC_PROFILE.items():
        params[section].update(copy.deepcopy(values))
    return params


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
