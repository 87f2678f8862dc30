"""A quiet console: TensorFlow's start-up lines filtered out of stderr, real errors kept.

Importing TensorFlow and finding its devices prints, through absl logging (which TF_CPP_MIN_LOG_LEVEL does not
reach before absl::InitializeLog() runs, so the Makefile's setting alone does not stop them):

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... UNKNOWN ERROR (303)

The last reads like a failure, yet on a machine without an NVIDIA GPU it only says there is none.
`import_tensorflow()` imports TensorFlow and lists its devices with file descriptor 2 pointed at a temporary
file, then writes back every captured line but that noise. It hides nothing from TensorFlow itself (no
CUDA_VISIBLE_DEVICES): on a machine with an NVIDIA driver a failing cuInit is a real error and is kept; if the
import raises, every line is kept; TF_CPP_MIN_LOG_LEVEL=0 or 1 (asking for TensorFlow's chatter) keeps all.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl's prefix: severity and MMDD, time (its seconds count from the epoch before InitializeLog), thread, file:line]
INFO_LINE = re.compile(r"^I\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
NO_GPU_CUINIT = re.compile(r"^E\d{4} [\d:.]+ +\d+ cuda_\w+\.cc:\d+\] failed call to cuInit: ")


def nvidia_driver_present() -> bool:
    """An NVIDIA kernel driver or device node: then a GPU may be meant to work, and cuInit failing matters."""
    return Path("/proc/driver/nvidia").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def filtering_wanted() -> bool:
    """TF_CPP_MIN_LOG_LEVEL 2 or 3 (the project's default) asks for errors only; 0 or 1 for TensorFlow's INFO."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 2
    except ValueError:
        return True


def without_startup_noise(text: str, driver_present: bool) -> str:
    """`text` less the absl preamble, absl INFO lines and, without an NVIDIA driver, the failed cuInit."""
    kept = [
        line for line in text.splitlines(keepends=True)
        if not (line.rstrip("\n") == ABSL_PREAMBLE or INFO_LINE.match(line)
                or (not driver_present and NO_GPU_CUINIT.match(line)))
    ]  # fmt: skip
    return "".join(kept)


@contextmanager
def startup_noise_filtered() -> Iterator[None]:
    """File descriptor 2 (what C++ logging writes to) captured for the block, then written back filtered."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            if not failed and filtering_wanted():
                text = without_startup_noise(text, nvidia_driver_present())
            sys.stderr.write(text)
            sys.stderr.flush()


def import_tensorflow() -> Any:
    """Import TensorFlow and find its devices (where cuInit runs), quietly; returns the module.

    TF_CPP_MIN_LOG_LEVEL defaults to 2 here (errors only, as in the Makefile), for stage scripts run by hand too.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with startup_noise_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()
    return tf
