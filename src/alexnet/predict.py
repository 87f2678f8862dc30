"""`alexnet predict IMAGE...`: top-k classes of image files, preprocessed the way evaluation crops them.

Each image: decoded to RGB whatever its mode, shorter side resized to the prepared size, centre square
crop, the train mean image subtracted (paper Sec. 2), centre crop to the model's input size.
A file that cannot be read is one line on stderr; the others are still predicted; exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_MODEL = Path("models/baseline-s0/model.keras")
DEFAULT_DATA = Path("data/prepared")


def add_predict_command(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="classify image files with a trained model")
    parser.add_argument(
        "images", nargs="+", type=Path, metavar="IMAGE", help="image files (any format Pillow reads)"
    )
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL, help=f"a .keras model (default: {DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA,
        help=f"prepared-data folder holding classes.json and mean_image.npy (default: {DEFAULT_DATA})",
    )  # fmt: skip
    parser.add_argument("--top", type=_positive, default=5, help="how many classes to show (default: 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def square_image(path: Path, size: int) -> np.ndarray:
    """RGB, shorter side resized to `size`, centre square crop: float32 [size, size, 3] in [0, 255]."""
    from PIL import Image, UnidentifiedImageError

    from alexnet.data.decode import load_rgb

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        image = load_rgb(path)
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: unreadable image ({error})") from None
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), np.float32)


def model_input(square: np.ndarray, mean_image: np.ndarray, crop: int) -> np.ndarray:
    start = (square.shape[0] - crop) // 2
    return (square - mean_image)[start : start + crop, start : start + crop, :]


def run(args: argparse.Namespace) -> None:
    from alexnet.data.input import load_prepared
    from alexnet.evaluation import load_model, softmax

    data = load_prepared(args.data)
    if str(args.model).startswith("models:/"):  # the registry, e.g. models:/alexnet@champion
        from alexnet.tracking import download_registered_model

        args.model = download_registered_model(str(args.model))
    model = load_model(args.model)
    crop = int(model.input_shape[1])
    if crop > data.size:
        raise ValueError(
            f"{args.model}: input size {crop} exceeds the prepared size {data.size} of {args.data}"
        )
    names = data.class_names()
    top = min(args.top, len(names))

    inputs, readable, failures = [], [], []
    for path in args.images:
        try:
            inputs.append(model_input(square_image(path, data.size), data.mean_image, crop))
            readable.append(path)
        except (OSError, ValueError) as error:
            failures.append({"file": str(path), "error": str(error)})
            print(f"error: {error}", file=sys.stderr)
    results = []
    if inputs:
        logits = model.predict(np.stack(inputs), batch_size=64, verbose=0)
        probabilities = softmax(np.asarray(logits, np.float64))
        for path, row in zip(readable, probabilities, strict=True):
            best = np.argsort(-row, kind="stable")[:top]
            classes = [
                {"class": names[i], "wnid": data.classes[i]["wnid"], "probability": float(row[i])}
                for i in best
            ]
            results.append({"file": str(path), "top": classes})

    if args.json:
        print(json.dumps({"predictions": results, "errors": failures}, indent=2))
    else:
        for result in results:
            print(result["file"])
            for entry in result["top"]:
                print(f"  {entry['probability']:7.2%}  {entry['class']}")
    if failures:
        sys.exit(1)
