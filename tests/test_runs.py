"""runs.py: loading a runs folder (and the workspace's split layout), its one-line errors, and export-runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from runs_folder import write_runs

from alexnet.cli import main
from alexnet.run_identity import RUN_FILES, RunRecord
from alexnet.runs import RunResult, RunsError, export_runs, load_runs, train_val_gap


def per_image(images: int = 50) -> dict[str, np.ndarray]:
    return {"index": np.arange(images), "label": np.arange(images) % 10, "top1_correct": np.ones(images, int),
            "ten_crop_top1_correct": np.ones(images, int)}  # fmt: skip


def run(variant: str, seed: int) -> RunResult:
    history = [{"epoch": 1.0, "top1_error": 0.5, "val_top1_error": 0.45, "train_eval_top1_error": 0.4}]
    metrics = {"top1_error": 0.3, "top5_error": 0.05, "classes": 10}
    return RunResult(f"{variant}-s{seed}", variant, seed, metrics, history, per_image=per_image())


RUNS = [run("baseline", 0), run("baseline", 1), run("no_lrn", 0)]


def test_a_runs_folder_and_the_workspace_layout_load_the_same(tmp_path):
    write_runs(tmp_path / "runs", RUNS)
    write_runs(tmp_path / "reports" / "runs", RUNS, models_dir=tmp_path / "models")
    flat, split = load_runs(tmp_path / "runs"), load_runs(tmp_path / "reports" / "runs", tmp_path / "models")
    assert [r.name for r in flat] == [r.name for r in split] == ["baseline-s0", "baseline-s1", "no_lrn-s0"]
    assert flat[2].variant == "no_lrn" and flat[2].seed == 0 and flat[2].metrics == RUNS[2].metrics
    assert np.array_equal(flat[0].per_image["label"], RUNS[0].per_image["label"])
    assert flat[0].train_val_gap() == pytest.approx(0.05)


def test_export_runs_copies_exactly_the_four_result_files(tmp_path):
    write_runs(tmp_path / "work" / "reports" / "runs", RUNS, models_dir=tmp_path / "work" / "models")
    (tmp_path / "work" / "models" / "baseline-s0" / "model.keras").write_text("weights")
    (tmp_path / "work" / "reports" / "runs" / "baseline-s0" / "figures").mkdir()
    (tmp_path / "work" / "models" / "no_lrn-s1").mkdir()  # trained, not yet evaluated: no metrics.json
    (tmp_path / "work" / "models" / "no_lrn-s1" / "run.json").write_text('{"variant": "no_lrn", "seed": 1}')
    with pytest.raises(RunsError, match="no_lrn-s1/metrics.json: missing"):
        export_runs(tmp_path / "work", tmp_path / "out")
    export_runs(tmp_path / "work", tmp_path / "out", variants=["baseline"])  # the others are not read
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["baseline-s0", "baseline-s1"]
    assert sorted(path.name for path in (tmp_path / "out" / "baseline-s0").iterdir()) == sorted(RUN_FILES)
    assert [r.name for r in load_runs(tmp_path / "out")] == ["baseline-s0", "baseline-s1"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda folder: (folder / "baseline-s1" / "history.csv").unlink(),
         "baseline-s1/history.csv: missing; every run folder needs"),
        (lambda folder: (folder / "baseline-s1" / "metrics.json").write_text(json.dumps({"top1_error": 0.3})),
         "baseline-s1/metrics.json: no `classes`"),
        (lambda folder: (folder / "no_lrn-s0" / "per_image.csv").write_text(
            "index,label,top1_correct\n" + "".join(f"{i},{(i + 1) % 10},1\n" for i in range(50))),
         "no_lrn-s0/per_image.csv: its images (index, label) differ from baseline-s0's"),
        (lambda folder: (folder / "no_lrn-s0" / "run.json").write_text(
            json.dumps({"variant": "no_lrn", "seed": 0, "data_hash": "other"})),
         "no_lrn-s0/run.json: data_hash other differs from baseline-s0's abc"),
        (lambda folder: (folder / "no_lrn-s0").rename(folder / "no_lrn-s7"),
         "no_lrn-s7/run.json: names run no_lrn-s0, but its folder is no_lrn-s7"),
    ],
)  # fmt: skip
def test_a_bad_runs_folder_is_one_line_naming_the_file_and_the_fix(tmp_path, capsys, damage, message):
    write_runs(tmp_path / "runs", RUNS)
    damage(tmp_path / "runs")
    with pytest.raises(RunsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_runs(tmp_path / "runs")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.startswith("error: ") and error.count("\n") == 1 and message in error


def test_an_empty_or_absent_folder_says_what_to_give(tmp_path):
    with pytest.raises(RunsError, match="no such folder of runs"):
        load_runs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunsError, match="no <variant>-s<seed>/run.json"):
        load_runs(tmp_path / "empty")


def test_train_val_gap_has_one_definition_the_inference_mode_error():
    rows = [{"epoch": 1.0, "top1_error": 0.10, "val_top1_error": 0.40, "train_eval_top1_error": 0.30}]
    assert train_val_gap(rows) == pytest.approx(0.10)  # not 0.30 from the running (dropout-on) metric
    assert train_val_gap([{"epoch": 1.0, "top1_error": 0.1, "val_top1_error": 0.4}]) is None


def test_run_json_reads_every_committed_file_and_writes_its_keys_back():
    """The typed run.json reads files from before it (params_file, no precision or oneDNN keys) unchanged."""
    committed = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*/runs/*/run.json"))
    assert committed
    for path in committed:
        data = json.loads(path.read_text())
        record = RunRecord.read(path)
        assert (record.run, record.variant, record.seed) == (path.parent.name, data["variant"], data["seed"])
        written = record.to_json()
        assert {key: written[key] for key in data} == data, path
        assert RunRecord.from_json(written) == record


def test_run_json_keeps_unknown_keys_and_names_a_file_without_its_identity(tmp_path):
    record = RunRecord.from_json({"variant": "no_lrn", "seed": "2", "from_the_future": [1]})
    assert (record.run, record.seed, record.extra) == ("no_lrn-s2", 2, {"from_the_future": [1]})
    written = record.to_json()
    assert written["from_the_future"] == [1] and "params_file" not in written and written["params_source"] is None
    path = tmp_path / "run.json"
    record.write(path)
    assert RunRecord.read(path) == record
    path.write_text(json.dumps({"seed": 0}))
    with pytest.raises(ValueError, match="run.json: no variant; re-run its train@ stage"):
        RunRecord.read(path)
