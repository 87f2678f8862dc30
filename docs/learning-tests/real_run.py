"""The tench-vs-parachute learning test's training, prepared once: python real_run.py PRECISION SEEDS..."""
# ruff: noqa: E402  (kept as it ran; imports after sys.path is set)

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, "/work/main/tests")
from conftest import IMAGENETTE_224_SHA256
from pipeline_copy import read_params

from alexnet.config import TrackingConfig, parse

precision, *seeds = sys.argv[1:]
root = Path("/tmp/real-two")
raw = read_params(synthetic=False)
raw["data"].update(
    source="folder",
    url="/work/shared/data/imagenette2-224.tgz",
    sha256=IMAGENETTE_224_SHA256,
    classes=["n01440764", "n03888257"],
    cache_dir=str(root / "cache"),
)
raw["preprocess"].update(size=72, shards=2)
raw["model"].update(width=0.25, fc_units=256)
raw["train"].update(crop=64, batch_size=32, epochs=12, lr_patience=2, precision=precision)
from alexnet.checkpoint import TrainingRun
from alexnet.data.ingest import ingest
from alexnet.data.input import load_prepared
from alexnet.data.preprocess import preprocess
from alexnet.tracking import Tracker
from alexnet.training import train

cfg0 = parse(raw, variant="baseline", seed=0)
if not (root / "prepared").exists():
    ingest(cfg0.data, root / "raw", root / "work", progress=False)
    preprocess(cfg0.preprocess, root / "raw", root / "prepared", progress=False)
for seed in seeds:
    cfg = parse(raw, variant="baseline", seed=int(seed))
    tracker = Tracker(TrackingConfig(**{**cfg.tracking.model_dump(), "enabled": False}))
    folder = root / f"run-{seed}-{time.time()}"
    folder.mkdir(parents=True)
    run = TrainingRun(folder / "model.keras", folder / "history.csv", folder / "ck", "real")
    t0 = time.time()
    _, rows = train(cfg, load_prepared(root / "prepared"), run, tracker, state=None, verbose=0)
    print(
        json.dumps(
            {
                "seed": int(seed),
                "precision": precision,
                "val": [round(r["val_top1_error"], 4) for r in rows],
                "train_s": round(time.time() - t0, 1),
            }
        ),
        flush=True,
    )
