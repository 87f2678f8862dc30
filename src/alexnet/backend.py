"""`train.backend`: the Keras backend (tensorflow | jax) of the train, evaluate and figure1 stages.

Keras reads KERAS_BACKEND once, when it is first imported, so the stage scripts import this module
before anything that imports Keras: importing it sets KERAS_BACKEND from ./params.yaml.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from alexnet.quiet import import_tensorflow

BACKENDS = ("tensorflow", "jax")


def configured_backend(params_file: Path = Path("params.yaml")) -> str | None:
    """params.yaml's train.backend, or None if it cannot be read (config.load then reports why, by key)."""
    try:
        value = yaml.safe_load(params_file.read_text())["train"]["backend"]
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return None
    return value if value in BACKENDS else None


def select(backend: str | None) -> None:
    """Set KERAS_BACKEND, unless Keras is already loaded (then `require` names the mismatch)."""
    if backend and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend


def require(backend: str) -> str:
    """Fail with one line if Keras runs on another backend than params.yaml asks for; returns it."""
    import keras

    running = keras.backend.backend()
    if running != backend:
        raise ValueError(
            f"train.backend: params.yaml asks for '{backend}' but Keras was loaded with '{running}'; set "
            "train.backend in params.yaml's train section (not in a variant) and import alexnet.backend first"
        )
    return running


select(configured_backend())
import_tensorflow()  # last, once every variable TensorFlow reads as it loads is set: without its start-up noise
