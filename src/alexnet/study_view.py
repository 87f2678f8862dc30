"""The study's view in the MLflow UI, as data: the runs table's key columns and sort order, and its charts.

Plain JSON, no mlflow: compare stores it on the experiment (alexnet.tracking.study) and `alexnet ui` prints its
address (alexnet.tracking.ui). Only the compare stage depends on this file, so editing a chart re-runs compare
alone, never training or evaluation.

The UI restores a view (columns, sort, charts) from the experiment tag `mlflow.sharedViewState.<key>` when
opened with `?viewStateShareKey=<key>`, the same mechanism as its own Share button.
"""

from __future__ import annotations

from typing import Any

STUDY_VIEW = "alexnet-study"
VIEW_TAG = f"mlflow.sharedViewState.{STUDY_VIEW}"
KEY_COLUMNS = ("val_top1_error", "eval_ten_crop_top1_error", "train_val_gap")


def _line_chart(metric: str, title: str) -> dict[str, Any]:
    return {
        "uuid": f"study-{metric}", "type": "LINE", "runsCountToCompare": 20, "metricSectionId": "study",
        "deleted": False, "isGenerated": False, "displayName": title, "metricKey": metric,
        "selectedMetricKeys": [metric], "lineSmoothness": 0, "xAxisKey": "step", "xAxisScaleType": "linear",
        "scaleType": "linear", "range": {}, "selectedXAxisMetricKey": "", "yAxisKey": "metric",
        "yAxisExpressions": [], "ignoreOutliers": False, "useGlobalXaxisKey": True, "useGlobalLineSmoothing": True,
    }  # fmt: skip


def _bar_chart(metric: str, title: str) -> dict[str, Any]:
    return {
        "uuid": f"study-{metric}", "type": "BAR", "runsCountToCompare": 20, "metricSectionId": "study",
        "deleted": False, "isGenerated": False, "displayName": title, "metricKey": metric,
    }  # fmt: skip


def study_view_state() -> dict[str, Any]:
    """The runs table with the key metric columns, best 10-crop error first; charts of the study's curves."""
    columns = [f"metrics.`{metric}`" for metric in KEY_COLUMNS]
    columns += ["tags.`variant`", "tags.`seed`", "attributes.`Dataset`", "attributes.`Models`"]
    charts = [
        _line_chart("val_top1_error", "Val top-1 error per epoch"),
        _line_chart("top1_error", "Train top-1 error per epoch"),
        _bar_chart("eval_ten_crop_top1_error", "10-crop top-1 error"),
        _bar_chart("train_val_gap", "Train-val gap"),
    ]
    section = {"uuid": "study", "name": "Study", "display": True, "isReordered": False, "deleted": False,
               "isGenerated": False}  # fmt: skip
    return {
        "orderByKey": "metrics.`eval_ten_crop_top1_error`", "orderByAsc": True, "selectedColumns": columns,
        "columnOrder": columns, "columnWidths": dict(zip(columns, (130, 190, 130), strict=False)),
        "compareRunCharts": charts, "compareRunSections": [section], "hideEmptyCharts": True,
    }  # fmt: skip


def study_view_url(base: str, experiment_id: str, mode: str = "TABLE") -> str:
    """The UI address of the study view (`mode` TABLE or CHART)."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={STUDY_VIEW}&compareRunsMode={mode}"
