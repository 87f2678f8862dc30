"""Wall time of `dvc repro` on the offline synthetic profile (`make run-synthetic`) in a fresh temporary copy.

The shipped default (Imagenette) is timed by its own run: see the README's results section.

    python bench/repro_time.py        # prints per-stage and total seconds, writes bench/results/repro_time.json

The copy holds git-tracked files only, as a fresh clone does: no dvc.lock, reports/ or outputs of a past run
(with them, DVC skipped the stages whose outputs were already there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pipeline_copy import BIN, environment, project_copy  # noqa: E402

RESULT = REPO / "bench" / "results" / "repro_time.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=RESULT, help=f"result JSON (default: {RESULT})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = project_copy(Path(scratch) / "project", untracked=False)
        started = time.perf_counter()
        process = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=project, env=environment(),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
        stage_started, stages, current = started, {}, None
        for line in process.stdout:
            match = re.search(r"Running stage '([^']+)'", line)
            if match:
                now = time.perf_counter()
                if current:
                    stages[current] = now - stage_started
                current, stage_started = match.group(1), now
        if process.wait() != 0:
            sys.exit("error: dvc repro failed in the benchmark copy")
        total = time.perf_counter() - started
        if current:
            stages[current] = started + total - stage_started
    result = {"total_seconds": total, "stages": stages, "cpus": os.cpu_count(), "machine": platform.platform(),
              "processor": platform.processor(), "limit_seconds": 300}  # fmt: skip
    for name, seconds in stages.items():
        print(f"{name:<24}{seconds:8.1f} s")
    print(f"{'total dvc repro':<24}{total:8.1f} s  (limit 300 s, {os.cpu_count()} CPUs)")
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
