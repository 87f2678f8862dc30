"""Input-pipeline benchmark on the whole imagenette2-224 archive (not a test; prints ratios, writes JSON).

1. preprocess throughput (the library, tf.data parallel map) vs a naive single-process PIL loop that
   produces the same outputs (shards per split, mean image, RGB covariance), at params.yaml's size and at
   the paper's 256: the ratio of the median rates of alternating rounds, and how far the outputs differ;
2. train input-pipeline throughput (crop, flip, PCA lighting, mean subtraction) vs the model's own
   training throughput at the same crop;
3. training throughput on real data vs synthetic in-memory batches, same model.

    python bench/input_pipeline.py [--archive ../shared/data/imagenette2-224.tgz] [--size 256 --crop 224]
    python bench/input_pipeline.py --quick     # smoke test on 250 images; its JSON says "quick": true
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
ARCHIVE = REPO.parent / "shared" / "data" / "imagenette2-224.tgz"
SHA256 = "fac1387a34ce02cf7938dcc2801cd5d904542f2453b3037fdb70a502fbc47c01"


def naive_pil_preprocess(rows, raw_dir: Path, out_dir: Path, size: int, quality: int, shards: int) -> int:
    """The baseline: one process, Pillow decode/resize/crop/encode, TFRecord writers, numpy stats. The same
    outputs as the preprocess stage: shards per split (round-robin), mean_image.npy and stats.json (channel
    mean, RGB covariance and its eigen-decomposition; here over every pixel, not a grid)."""
    import tensorflow as tf

    from alexnet.data.preprocess import _example, shard_paths

    out_dir.mkdir(parents=True, exist_ok=True)
    sum_image, pixel_sum, pixel_outer, pixels, train_images = np.zeros((size, size, 3)), np.zeros(3), 0.0, 0, 0
    for split in ("train", "val"):
        writers = [tf.io.TFRecordWriter(str(path)) for path in shard_paths(out_dir, split, shards)]
        for count, row in enumerate(row for row in rows if row["split"] == split):
            image = Image.open(raw_dir / row["path"]).convert("RGB")
            scale = size / min(image.size)
            width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
            image = image.resize((width, height), Image.BILINEAR)
            left, top = (width - size) // 2, (height - size) // 2
            image = image.crop((left, top, left + size, top + size))
            if split == "train":
                array = np.asarray(image, np.float64)
                sum_image += array
                flat = array.reshape(-1, 3) / 255.0
                pixel_sum, pixel_outer = pixel_sum + flat.sum(axis=0), pixel_outer + flat.T @ flat
                pixels, train_images = pixels + len(flat), train_images + 1
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            writers[count % shards].write(_example(tf, buffer.getvalue(), int(row["label"]), row["path"]))
        for writer in writers:
            writer.close()
    mean_image = (sum_image / train_images).astype(np.float32)
    np.save(out_dir / "mean_image.npy", mean_image, allow_pickle=False)
    mean = pixel_sum / pixels
    covariance = pixel_outer / pixels - np.outer(mean, mean)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    stats = {"train_images": train_images, "channel_mean": mean_image.astype(np.float64).mean(axis=(0, 1)).tolist(),
             "rgb_covariance": covariance.tolist(), "rgb_eigenvalues": eigenvalues[order].tolist(),
             "rgb_eigenvectors": eigenvectors[:, order].tolist()}  # fmt: skip
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2))
    return len(rows)


def measure_preprocess(cfg, rows, scratch: Path, repeats: int, max_load: float) -> dict:
    """The library's preprocess vs the naive loop, alternating in `repeats` rounds (each repeated while the
    machine is busy); the ratio of the median rates, and how far the two outputs are apart."""
    from rounds import run_round

    from alexnet.data.preprocess import preprocess

    def one_round():
        started = time.perf_counter()
        preprocess(cfg, scratch / "raw", scratch / "prepared", progress=False)
        library = len(rows) / (time.perf_counter() - started)
        started = time.perf_counter()
        naive_pil_preprocess(rows, scratch / "raw", scratch / "naive", cfg.size, cfg.jpeg_quality, cfg.shards)
        return [{"library": library, "naive": len(rows) / (time.perf_counter() - started)}]

    rounds = [run_round(one_round, f"preprocess {cfg.size} round {index + 1}", max_load) for index in range(repeats)]
    library_rates = [one["rows"][0]["library"] for one in rounds]
    naive_rates = [one["rows"][0]["naive"] for one in rounds]
    library_rate, naive_rate = statistics.median(library_rates), statistics.median(naive_rates)
    return {"size": cfg.size, "library_img_s": library_rate, "naive_pil_img_s": naive_rate,
            "ratio": library_rate / naive_rate, "target": 3.0, "library_runs_img_s": library_rates,
            "naive_runs_img_s": naive_rates, "loads": [{k: v for k, v in one.items() if k != "rows"} for one in rounds],
            "mean_abs_pixel_difference": mean_abs_difference(scratch / "prepared", scratch / "naive"),
            "stats_difference": stats_difference(scratch / "prepared", scratch / "naive")}  # fmt: skip


def stats_difference(prepared: Path, naive: Path) -> dict:
    """How far the naive loop's stats are from the library's: mean image, channel mean, RGB eigenvalues."""
    ours, theirs = json.loads((prepared / "stats.json").read_text()), json.loads((naive / "stats.json").read_text())
    mean_ours, mean_theirs = np.load(prepared / "mean_image.npy"), np.load(naive / "mean_image.npy")
    return {"train_images": [ours["train_images"], theirs["train_images"]],
            "mean_image_mean_abs": float(np.abs(mean_ours - mean_theirs).mean()),
            "channel_mean_max_abs": float(np.abs(np.subtract(ours["channel_mean"], theirs["channel_mean"])).max()),
            "rgb_eigenvalues": [ours["rgb_eigenvalues"], theirs["rgb_eigenvalues"]]}  # fmt: skip


def mean_abs_difference(prepared: Path, naive: Path, images: int = 500) -> float:
    """Mean |pixel difference| between the library's and the naive loop's images of the same sources."""
    import tensorflow as tf

    def decoded(files):
        out = {}
        for record in tf.data.TFRecordDataset([str(path) for path in files]):
            example = tf.train.Example.FromString(record.numpy())
            feature = example.features.feature
            source = feature["image/source"].bytes_list.value[0].decode()
            out[source] = feature["image/encoded"].bytes_list.value[0]
        return out

    theirs = decoded(sorted(naive.glob("*.tfrecord")))
    ours = decoded(sorted(prepared.glob("*.tfrecord")))
    sources = sorted(theirs)[:images]
    differences = [
        np.abs(tf.io.decode_jpeg(ours[source]).numpy().astype(np.int16) - tf.io.decode_jpeg(theirs[source]).numpy())
        .mean()
        for source in sources
    ]
    return float(np.mean(differences))


def images_per_second(dataset, batches: int, batch_size: int) -> float:
    iterator = iter(dataset)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - started)


def training_throughput(model, dataset, steps: int, batch_size: int) -> float:
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up: tracing, allocation
    started = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--size", type=int, default=256,
                        help="preprocess.size in 2. and 3. (paper: 256); 1. uses params.yaml's and this")  # fmt: skip
    parser.add_argument("--crop", type=int, default=224, help="train.crop (paper: 224)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=float, default=1.0, help="model.width (paper: 1.0)")
    parser.add_argument("--fc-units", type=int, default=4096, help="model.fc_units (paper: 4096)")
    parser.add_argument("--train-steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="alternating preprocess rounds, median kept")
    parser.add_argument("--max-load", type=float, default=1.5, help="repeat a round when others use more")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 20+5 images per class, 1 round, small model; JSON says quick")  # fmt: skip
    parser.add_argument("--preprocess-only", action="store_true", help="measure 1. only")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "input_pipeline.json")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.train_steps, args.size, args.crop, args.fc_units = 1, 2, 72, 64, 256
        args.max_load = float("inf")  # loads are recorded, busy rounds not repeated
    if not args.archive.is_file():
        sys.exit(f"error: {args.archive} not found; pass --archive PATH to imagenette2-224.tgz")

    import keras
    import tensorflow as tf

    from alexnet.config import parse
    from alexnet.data.ingest import ingest
    from alexnet.data.input import load_prepared, train_dataset
    from alexnet.data.preprocess import read_manifest
    from alexnet.model import build_model
    from alexnet.runtime import choose_precision, compile_model

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    per_class = (20, 5) if args.quick else (None, None)
    params["data"].update(source="folder", url=str(args.archive), sha256=SHA256, classes=10,
                          train_per_class=per_class[0], val_per_class=per_class[1])  # fmt: skip
    params["preprocess"].update(size=args.size)
    params["train"].update(crop=args.crop, batch_size=args.batch)
    params["model"].update(width=args.width, fc_units=args.fc_units)
    cfg = parse(params)
    from rounds import machine

    results: dict = {"quick": args.quick, "archive": str(args.archive), "size": args.size, "crop": args.crop,
                     "cpus": os.cpu_count(), "machine": machine()}  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        ingest(cfg.data, scratch / "raw", workdir=scratch / "work")
        rows = [row for row in read_manifest(scratch / "raw") if row["status"] == "kept"]
        results["images"] = len(rows)

        shipped_size = parse(yaml.safe_load((REPO / "params.yaml").read_text())).preprocess.size
        sizes = list(dict.fromkeys([shipped_size, args.size]))  # the shipped profile's size, then the paper's
        results["preprocess_by_size"] = {}
        for size in sizes:  # the last one (args.size) stays in scratch/prepared for 2. and 3.
            measured = measure_preprocess(cfg.preprocess.model_copy(update={"size": size}), rows, scratch, args.repeats,
                                          args.max_load)  # fmt: skip
            results["preprocess_by_size"][str(size)] = measured
            print(f"preprocess at size {size}: {measured['library_img_s']:.1f} img/s, naive PIL "
                  f"{measured['naive_pil_img_s']:.1f} img/s, ratio {measured['ratio']:.2f} (target 3); "
                  f"mean |difference| {measured['mean_abs_pixel_difference']:.2f} of 255")  # fmt: skip
        results["preprocess"] = results["preprocess_by_size"][str(shipped_size)]
        if args.preprocess_only:
            return
        data = load_prepared(scratch / "prepared")
        pipeline = train_dataset(data, cfg.augment, args.crop, args.batch, seed=0, first_epoch=0, last_epoch=50,
                                 shuffle_buffer=cfg.train.shuffle_buffer, deterministic=False)  # fmt: skip
        input_rate = images_per_second(pipeline, 40, args.batch)

        choice = choose_precision(cfg, data.num_classes, jit=False)
        print(choice.line())
        keras.mixed_precision.set_global_policy(choice.policy)
        model = build_model(cfg.model, data.num_classes, args.crop)
        compile_model(model, cfg, data.num_classes, jit=False)
        images = tf.random.normal((args.batch, args.crop, args.crop, 3), stddev=60.0)
        labels = tf.random.uniform((args.batch,), maxval=data.num_classes, dtype=tf.int32)
        in_memory = tf.data.Dataset.from_tensors((images, labels)).repeat()
        synthetic_rate = training_throughput(model, in_memory, args.train_steps, args.batch)
        real_rate = training_throughput(model, pipeline, args.train_steps, args.batch)
        results["input_vs_training"] = {"input_pipeline_img_s": input_rate, "training_img_s": synthetic_rate,
                                        "ratio": input_rate / synthetic_rate, "target": 10.0}  # fmt: skip
        results["real_vs_synthetic_training"] = {"real_img_s": real_rate, "synthetic_img_s": synthetic_rate,
                                                 "ratio": real_rate / synthetic_rate, "target": 0.95}  # fmt: skip
        results["model"] = {key: str(value) for key, value in cfg.model.model_dump().items()}
        results["precision"] = keras.mixed_precision.global_policy().name

    print(f"\n{'measure':<36}{'ours':>12}{'reference':>12}{'ratio':>8}{'target':>8}")
    for name, key_ours, key_ref in (
        ("preprocess (img/s) vs naive PIL", "library_img_s", "naive_pil_img_s"),
        ("input pipeline vs training (img/s)", "input_pipeline_img_s", "training_img_s"),
        ("training: real vs synthetic (img/s)", "real_img_s", "synthetic_img_s"),
    ):
        entry = next(value for value in results.values() if isinstance(value, dict) and key_ours in value)
        print(f"{name:<36}{entry[key_ours]:>12.1f}{entry[key_ref]:>12.1f}{entry['ratio']:>8.2f}{entry['target']:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
