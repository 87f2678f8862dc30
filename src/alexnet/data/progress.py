"""tqdm bars that redraw in a terminal and print one line per update in a log."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


class _OneLinePerUpdate:
    """tqdm redraws its line with '\\r'; a log file (DVC, CI) wants a fresh line each time."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    stream = sys.stderr
    terminal = stream.isatty()
    options: dict[str, Any] = {
        "disable": not enabled,
        "file": stream if terminal else _OneLinePerUpdate(stream),
        "mininterval": 0.2 if terminal else 10.0,
        "dynamic_ncols": terminal,
        "ascii": not terminal,
    }
    options.update(kwargs)
    return tqdm(iterable, **options)
