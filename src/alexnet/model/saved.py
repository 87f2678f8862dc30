"""A trained model on disk: the `.keras` file, opened safely, and the card train writes beside it (run.json).

The card holds what the model's outputs mean and how its inputs were made: the class list (output i is
class i), the prepared-data hash, image size and JPEG quality, the crop. Predict labels outputs from it and
refuses a model whose output count does not match it, so a model never borrows another dataset's names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alexnet.run_identity import RUN_FILE  # the card's file: run.json beside model.keras (a RunRecord holds it)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=axis, keepdims=True)


def load_model(path: Path):
    """`.keras` files only, with safe_mode=True: a file carrying a Lambda layer is refused."""
    import keras

    import alexnet.model  # noqa: F401  (registers the custom layers)
    import alexnet.optimizer  # noqa: F401

    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path}: model file not found; train it first (dvc repro train) or pass --model"
        )
    # Legacy .h5/SavedModel loading does not honour safe_mode; only the .keras format is safe to open.
    if Path(path).suffix != ".keras":
        raise ValueError(f"{path}: not a .keras file; only the .keras format is loaded (safe_mode)")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise ValueError(
                f"{path}: refused, it carries code (a Lambda layer); load only trusted .keras files"
            ) from None
        raise


def model_card(cfg, data) -> dict[str, Any]:
    """The card fields train writes into run.json: what the outputs mean and how inputs were prepared."""
    return {
        "classes": data.classes,
        "data_hash": data.data_hash,
        "prepared_size": data.size,
        "jpeg_quality": cfg.preprocess.jpeg_quality,
        "crop": cfg.train.crop,
    }


@dataclass(frozen=True)
class Classifier:
    model: Any
    classes: list[dict]
    card: dict[str, Any]
    source: str

    @property
    def class_names(self) -> list[str]:
        return [entry.get("name") or entry["wnid"] for entry in self.classes]


def load_classifier(path: Path) -> Classifier:
    """The model and its card (run.json beside it); refuses a card that does not match the model's outputs."""
    path = Path(path)
    model = load_model(path)
    card_file = path.with_name(RUN_FILE)
    try:
        card = json.loads(card_file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{card_file}: missing, so {path.name}'s outputs have no class names; "
            "keep the run.json that train wrote beside the model"
        ) from None
    except json.JSONDecodeError:
        raise ValueError(f"{card_file}: not valid JSON; restore the run.json that train wrote") from None
    classes = card.get("classes")
    if not isinstance(classes, list) or not classes:
        raise ValueError(f"{card_file}: no class list (written by an older train stage); retrain the model")
    outputs = int(model.output_shape[-1])
    if outputs != len(classes):
        raise ValueError(
            f"{path}: {outputs} outputs but {card_file} lists {len(classes)} classes; "
            "the two do not belong together, restore the pair train wrote"
        )
    return Classifier(model=model, classes=classes, card=card, source=str(path))
