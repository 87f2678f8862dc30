"""Shared fixtures: the repo root, the shared data folder, a (synthetic profile) params tree, quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pipeline_copy import read_params

from alexnet.cpu import ONEDNN_SWITCH, tensorflow_default_onednn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests run where TensorFlow would by itself, unless the caller chose (CI: TF_ENABLE_ONEDNN_OPTS=0). Set
# here, it reaches every stage a test starts, so `train.onednn: auto` honours it and never times anything.
os.environ.setdefault(ONEDNN_SWITCH, "1" if tensorflow_default_onednn() else "0")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IMAGENETTE_224 = SHARED_DATA / "imagenette2-224.tgz"
IMAGENETTE_224_SHA256 = "fac1387a34ce02cf7938dcc2801cd5d904542f2453b3037fdb70a502fbc47c01"


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def raw_params() -> dict:
    """params.yaml with the synthetic profile applied, as a plain tree to edit before alexnet.config.parse."""
    return read_params()


@pytest.fixture
def imagenette_archive() -> Path:
    if not IMAGENETTE_224.is_file():
        pytest.skip(f"{IMAGENETTE_224} is absent (real-data tests need ../shared/data)")
    return IMAGENETTE_224
