"""`alexnet predict IMAGE...`: top-k classes of image files, each prepared exactly as evaluation sees a val image.

Each image goes through preprocess's own steps (TensorFlow decode, shorter side to the prepared size with
area averaging, centre square, JPEG at the prepared quality), then evaluation's centre crop: the train mean
image subtracted (paper Sec. 2) and the model's input size cut from the middle. A format TensorFlow cannot
decode (CMYK JPEG, TIFF, WebP) is converted to RGB by Pillow first.

Class names come from the model's card (run.json beside the .keras file, written by train) and must match
the model's output count; `--data` must hold the prepared data the model was trained on (its mean image),
checked by data hash. Nothing is labelled from a dataset the model was not trained on.
A file that cannot be read is one line on stderr; the others are still predicted; exit status 1.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

from alexnet.run_identity import BASELINE, MODEL_FILE, run_name

# The one place predict's defaults are written (here, not in alexnet.model: that imports Keras, slow for --help).
DEFAULT_MODEL = Path("models") / run_name(BASELINE, 0) / MODEL_FILE
DEFAULT_DATA = Path("data/prepared")


def add_predict_command(subparsers) -> None:
    parser = subparsers.add_parser("predict", help="classify image files with a trained model")
    parser.add_argument(
        "images", nargs="+", type=Path, metavar="IMAGE", help="image files (any format Pillow reads)"
    )
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL,
        help=f"a .keras model with the run.json train wrote beside it (default: {DEFAULT_MODEL})",
    )  # fmt: skip
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA,
        help="the prepared-data folder the model was trained on: its mean image is subtracted, and its data "
        f"hash must match the model's run.json (default: {DEFAULT_DATA})",
    )  # fmt: skip
    parser.add_argument("--top", type=_positive, default=5, help="how many classes to show (default: 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(handler=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def prepared_image(path: Path, size: int, jpeg_quality: int) -> np.ndarray:
    """uint8 [size, size, 3]: the image as the preprocess stage stores it, decoded as evaluation reads it."""
    import tensorflow as tf
    from PIL import Image, UnidentifiedImageError

    from alexnet.data.decode import load_rgb
    from alexnet.data.preprocess import prepared_square

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    encoded = path.read_bytes()
    try:
        rgb = load_rgb(encoded)  # vets the file the way ingest does, whatever its extension says
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not an image (Pillow cannot identify it)") from None
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: unreadable image ({error})") from None
    try:
        return prepared_square(encoded, size, jpeg_quality)
    except tf.errors.OpError:  # a format Pillow reads but TF does not: hand TF a lossless copy
        lossless = io.BytesIO()
        rgb.save(lossless, "PNG")
        return prepared_square(lossless.getvalue(), size, jpeg_quality)


def model_input(image: np.ndarray, mean_image: np.ndarray, crop: int) -> np.ndarray:
    """Evaluation's centre crop (alexnet.data.input.eval_dataset): mean image subtracted, middle `crop` square."""
    start = (image.shape[0] - crop) // 2
    return (image.astype(np.float32) - mean_image)[start : start + crop, start : start + crop, :]


def check_data(card: dict, data, model: Path, folder: Path) -> None:
    """The prepared data must be the model's own: its mean image was subtracted in training."""
    expected = (card.get("data_hash"), card.get("prepared_size"))
    if expected != (data.data_hash, data.size):
        raise ValueError(
            f"{folder}: prepared data {data.data_hash} at {data.size} px, but {model} was trained on "
            f"{expected[0]} at {expected[1]} px; pass --data with the prepared folder it was trained on"
        )


def run(args: argparse.Namespace) -> None:
    from alexnet.quiet import import_tensorflow

    import_tensorflow()  # before alexnet.data.input loads it: without TensorFlow's start-up noise
    from alexnet.data.input import load_prepared
    from alexnet.model.saved import load_classifier, softmax

    if str(args.model).startswith("models:/"):  # the registry, e.g. models:/alexnet@champion
        from alexnet.tracking.study import download_registered_model

        args.model = download_registered_model(str(args.model))
    classifier = load_classifier(args.model)
    data = load_prepared(args.data)
    check_data(classifier.card, data, args.model, args.data)
    crop = int(classifier.model.input_shape[1])
    quality = int(classifier.card["jpeg_quality"])
    names = classifier.class_names
    top = min(args.top, len(names))

    inputs, readable, failures = [], [], []
    for path in args.images:
        try:
            inputs.append(model_input(prepared_image(path, data.size, quality), data.mean_image, crop))
            readable.append(path)
        except (OSError, ValueError) as error:
            failures.append({"file": str(path), "error": str(error)})
            print(f"error: {error}", file=sys.stderr)
    results = []
    if inputs:
        logits = classifier.model.predict(np.stack(inputs), batch_size=64, verbose=0)
        probabilities = softmax(np.asarray(logits, np.float64))
        for path, row in zip(readable, probabilities, strict=True):
            best = np.argsort(-row, kind="stable")[:top]
            classes = [
                {"class": names[i], "wnid": classifier.classes[i]["wnid"], "probability": float(row[i])}
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
