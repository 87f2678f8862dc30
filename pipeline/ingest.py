"""DVC stage `ingest`: the chosen ImageNet subset and its manifest -> data/raw/."""

from pathlib import Path

from alexnet.cli import stage_main
from alexnet.config import load
from alexnet.data.ingest import ingest


def main() -> None:
    cfg = load()
    ingest(cfg.data, out_dir=Path("data/raw"), workdir=Path(cfg.data.cache_dir).expanduser())
    print("ingest: wrote data/raw (images/, manifest.csv, classes.json)")


if __name__ == "__main__":
    stage_main(main)
