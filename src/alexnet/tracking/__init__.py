"""Everything MLflow, split by caller; the only package that imports mlflow (ruff's banned-api rule says so).

- store: where the store is (URI, artifact folder); opening it one process at a time; retrying a locked SQLite.
- run: `Tracker`, the one MLflow run of a variant and seed that train and evaluate write.
- study: compare's study run, its child runs, the shared runs-table view, the champion in the registry.
- ui: `alexnet ui` and the study view's address.

Here: what train and evaluate use, so `from alexnet.tracking import Tracker` works. compare imports
alexnet.tracking.study and the CLI alexnet.tracking.ui; neither is among train's or evaluate's DVC deps.
"""

from alexnet.tracking.run import Tracker, tracked_run
from alexnet.tracking.store import TrackingError, store_uri

__all__ = ["Tracker", "TrackingError", "store_uri", "tracked_run"]
