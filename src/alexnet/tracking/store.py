"""The MLflow store: where it is, opening it one process at a time, retrying a locked SQLite, reaching a server.

Store: `sqlite:///<root>/mlflow.db` with artifacts in `<root>/mlartifacts`, where root is DVC_ROOT (set by DVC to
the real project even for `dvc exp run --temp/--queue`), so queued experiments land in the one project store.
MLFLOW_TRACKING_URI overrides it, then `tracking.uri`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from alexnet.config import TrackingConfig, store_root

STORE_FILE = "mlflow.db"
ARTIFACT_FOLDER = "mlartifacts"


class TrackingError(OSError):
    """The tracking store could not be reached or written.

    An OSError, so every stage script's error handler (alexnet.stage.stage_main) prints it as one line and
    exits 2 under `on_failure: fail`, instead of a traceback.
    """


def store_uri(cfg: TrackingConfig | None, root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI, else `tracking.uri`, else the project's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (cfg and cfg.uri) or project_store_uri(root)


def project_store_uri(root: Path | None = None) -> str:
    """The project's own SQLite store (what `alexnet ui` serves), whatever the environment says."""
    return f"sqlite:///{(root or store_root()) / STORE_FILE}"


def artifact_location(root: Path | None = None) -> str:
    return ((root or store_root()) / ARTIFACT_FOLDER).as_uri()


def import_mlflow() -> Any:
    """mlflow, with synchronous logging (a stage's metrics are stored when it exits) and GitPython quiet."""
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    import mlflow

    return mlflow


def retry_locked(action: Callable[[], Any], attempts: int = 8) -> Any:
    """SQLite allows one writer: concurrent queued runs retry 'database is locked' with jitter."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:  # mlflow wraps sqlalchemy errors in MlflowException
            if "locked" not in str(error).lower() or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt * (1 + random.random()))
    return None


@contextmanager
def opening_lock(uri: str) -> Iterator[None]:
    """One process at a time opens a SQLite store: MLflow creates a new store's tables and runs its
    migrations unlocked, and two queued runs (`dvc queue start -j 2`) opening a fresh mlflow.db at once
    broke it ('table ... already exists', half-done alembic migrations)."""
    if not uri.startswith("sqlite:"):
        yield
        return
    name = f"alexnet-mlflow-open-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"
    with open(Path(tempfile.gettempdir()) / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_reachable(uri: str) -> None:
    """Fail in a second, not after minutes of HTTP retries, when a tracking server is down."""
    if not uri.startswith(("http://", "https://")):
        return
    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=3):
            pass
    except OSError as error:
        raise TrackingError(f"cannot connect to {parsed.hostname}:{port} ({error.strerror or error})") from None
