"""DVC stage `ingest`: the chosen ImageNet subset and its manifest -> data/raw/."""

from pathlib import Path

from alexnet.cli import stage_main
from alexnet.config import load
from alexnet.data.ingest import ingest


def main() -> None:
    cfg = load()
    summary = ingest(cfg.data, out_dir=Path("data/raw"), workdir=Path(cfg.data.cache_dir).expanduser())
    print(f"ingest: wrote data/raw ({summary})")


if __name__ == "__main__":
    stage_main(main)
