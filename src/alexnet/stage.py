"""What every stage script shares: its arguments (paths come from dvc.yaml's `cmd`) and error handling.

A run's folders and files (RunLayout) are alexnet.run_identity's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from alexnet.config import ConfigError

# What a user causes (params, paths, files, data, the network): one line and exit 2, never a traceback.
# ConfigError is a ValueError; TrackingError and DownloadError are OSErrors.
USER_ERRORS = (ConfigError, ValueError, OSError)


def stage_main(body: Callable[[], None]) -> None:
    """Run a stage body; a user error is one line on stderr and exit status 2 (ALEXNET_DEBUG=1: the traceback)."""
    try:
        body()
    except USER_ERRORS as error:
        if os.environ.get("ALEXNET_DEBUG"):
            raise
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)


def stage_arguments(description: str, paths: dict[str, str], matrix: bool = False) -> argparse.Namespace:
    """Parse a stage's command line: [VARIANT SEED] and one required `--name PATH` per entry of `paths`.

    The paths have no defaults on purpose: dvc.yaml's `cmd` is the one place they are written.
    """
    parser = argparse.ArgumentParser(description=description)
    if matrix:
        parser.add_argument("variant", help="a name under ablations.variants in params.yaml")
        parser.add_argument("seed", type=int, help="the replicate seed (one of ablations.seeds)")
    for name, help_text in paths.items():
        parser.add_argument(f"--{name}", type=Path, required=True, metavar="PATH", help=help_text)
    return parser.parse_args()
