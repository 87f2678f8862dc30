"""The ingest stage: choose classes and a seeded per-class subset, check every image, write data/raw/.

out_dir/images/{train,val}/<wnid>/<file>   the kept images, bytes unchanged
out_dir/manifest.csv                        one row per examined file: kept, skipped (with a reason) or
                                            duplicate (a val image whose bytes are also in train)
out_dir/classes.json                        [{index, wnid, name}], index = label

Same params, same bytes: choices come from sha256 of (seed, name), not from an RNG whose stream may
change between library versions, and rows are sorted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from alexnet.config import SPLITS, DataConfig
from alexnet.data.archives import remove_stale_staging, staging
from alexnet.data.decode import ImageInfo, inspect_bytes
from alexnet.data.progress import progress_bar
from alexnet.data.sources import resolve
from alexnet.data.tree import SourceTree

MANIFEST_COLUMNS = ("path", "wnid", "label", "split", "sha256", "width", "height", "status", "reason")
WORKERS = 2


class IngestError(ValueError):
    """A one-line, user-facing error about choosing the subset."""


@dataclass
class IngestSummary:
    kept_train: int = 0
    kept_val: int = 0
    skipped: Counter = field(default_factory=Counter)
    duplicates: int = 0
    dropped_from_val: int = 0
    classes: list[str] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.kept_train + self.kept_val

    def line(self) -> str:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped.items()))
        return (
            f"ingest: kept {self.kept} (train {self.kept_train}, val {self.kept_val}), "
            f"skipped {sum(self.skipped.values())}{f' ({reasons})' if reasons else ''}, "
            f"duplicates {self.duplicates} (dropped from val: {self.dropped_from_val})"
        )


@dataclass(frozen=True)
class Examined:
    source: Path
    split: str
    wnid: str
    sha256: str
    info: ImageInfo


def seeded_order(items: list[str], seed: int, salt: str = "") -> list[str]:
    """A shuffle fixed by (seed, salt, item) alone: stable across Python and numpy versions."""
    return sorted(items, key=lambda item: hashlib.sha256(f"{seed}|{salt}|{item}".encode()).hexdigest())


def choose_classes(available: list[str], wanted: int | list[str] | None, seed: int) -> list[str]:
    """All classes (None), N chosen by seed, or the listed wnids; sorted, so a wnid's label is its index."""
    if wanted is None:
        return sorted(available)
    if isinstance(wanted, int):
        if wanted > len(available):
            raise IngestError(
                f"data.classes: {wanted} classes asked, the source has {len(available)}; lower data.classes"
            )
        return sorted(seeded_order(sorted(available), seed, "classes")[:wanted])
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        listed = ", ".join(sorted(available)[:5]) + (", ..." if len(available) > 5 else "")
        raise IngestError(
            f"data.classes: unknown wnid(s) {', '.join(unknown[:5])}; "
            f"available: {listed} ({len(available)} in all); fix data.classes"
        )
    return sorted(set(wanted))


def _examine(source: Path, split: str, wnid: str, max_pixels: int) -> Examined:
    data = source.read_bytes()
    info = inspect_bytes(data, source.name, max_pixels)
    return Examined(source, split, wnid, hashlib.sha256(data).hexdigest(), info)


def _sample(
    pool: ThreadPoolExecutor, tree: SourceTree, split: str, wnid: str, cap: int | None, cfg: DataConfig, bar
) -> list[Examined]:
    """The first `cap` decodable files in seeded order; every file examined on the way is returned."""
    by_name = {tree.relative(path): path for path in tree.files[split][wnid]}
    order = [by_name[name] for name in seeded_order(sorted(by_name), cfg.seed, f"{split}/{wnid}")]
    cap = len(order) if cap is None else cap
    examined: list[Examined] = []
    good, start = 0, 0
    while good < cap and start < len(order):
        batch = order[start : start + cap - good]
        start += len(batch)
        for result in pool.map(lambda path: _examine(path, split, wnid, cfg.max_image_pixels), batch):
            examined.append(result)
            good += result.info.ok
            bar.update(1)
    return examined


def ingest(cfg: DataConfig, out_dir: Path, workdir: Path, progress: bool = True) -> IngestSummary:
    """Write out_dir (replaced atomically) from data.source; print and return the summary."""
    out_dir = Path(out_dir)
    tree = resolve(cfg, workdir, progress)
    chosen = choose_classes(sorted(tree.files["train"]), cfg.classes, cfg.seed)
    labels = {wnid: index for index, wnid in enumerate(chosen)}
    caps = {"train": cfg.train_per_class, "val": cfg.val_per_class}
    expected = sum(
        min(caps[split] or len(tree.files[split][wnid]), len(tree.files[split][wnid]))
        for split in SPLITS
        for wnid in chosen
    )

    examined: list[Examined] = []
    with (
        ThreadPoolExecutor(WORKERS) as pool,
        progress_bar(enabled=progress, total=expected, desc="ingest", unit="img") as bar,
    ):
        for split in SPLITS:
            for wnid in chosen:
                examined += _sample(pool, tree, split, wnid, caps[split], cfg, bar)

    remove_stale_staging(out_dir)
    summary = IngestSummary(classes=chosen)
    with staging(out_dir) as temp:
        rows = _place(examined, tree, temp, labels, cfg.drop_leaks, summary)
        _write_manifest(temp / "manifest.csv", rows)
        classes = [{"index": labels[wnid], "wnid": wnid, "name": tree.name(wnid)} for wnid in chosen]
        (temp / "classes.json").write_text(json.dumps(classes, indent=2) + "\n")
    print(summary.line(), flush=True)
    return summary


def _place(
    examined: list[Examined],
    tree: SourceTree,
    out: Path,
    labels: dict[str, int],
    drop_leaks: bool,
    summary: IngestSummary,
) -> list[dict]:
    """Copy kept images under out/images and return one manifest row per examined file."""
    train_copies = {}
    rows = []
    for item in sorted(examined, key=lambda item: (SPLITS.index(item.split), tree.relative(item.source))):
        source_name = tree.relative(item.source)
        row = {
            "path": source_name,
            "wnid": item.wnid,
            "label": labels[item.wnid],
            "split": item.split,
            "sha256": item.sha256,
            "width": item.info.width,
            "height": item.info.height,
            "status": "kept",
            "reason": "",
        }
        rows.append(row)
        if not item.info.ok:
            row.update(status="skipped", reason=item.info.reason)
            summary.skipped[item.info.reason] += 1
            continue
        destination = Path("images", item.split, item.wnid, _within_class(item.source, item.wnid))
        if item.split == "val" and item.sha256 in train_copies:
            summary.duplicates += 1
            row["reason"] = f"also_in_train:{train_copies[item.sha256]}"
            if drop_leaks:
                row["status"] = "duplicate"
                summary.dropped_from_val += 1
                continue
        (out / destination).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.source, out / destination)
        row["path"] = destination.as_posix()
        if item.split == "train":
            train_copies.setdefault(item.sha256, row["path"])
            summary.kept_train += 1
        else:
            summary.kept_val += 1
    return rows


def _within_class(source: Path, wnid: str) -> str:
    """The file's path inside its class folder; a flat ILSVRC val folder has none, so just its name."""
    class_dir = source.parent
    while class_dir.name != wnid and class_dir != class_dir.parent:
        class_dir = class_dir.parent
    return source.relative_to(class_dir).as_posix() if class_dir.name == wnid else source.name


def _write_manifest(path: Path, rows: list[dict]) -> None:
    rows = sorted(rows, key=lambda row: (row["split"], row["wnid"], row["path"]))
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
