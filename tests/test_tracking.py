"""MLflow 3 against a real SQLite store: signature, metrics linked to the model, datasets, the champion alias.

The stage scripts' calls are made in order (train: dataset + model; evaluate: metrics; compare: registry),
on an untrained AlexNet, so the test takes seconds and needs no DVC.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image
from test_evaluation import make_prepared

from alexnet.cli import main
from alexnet.data.input import load_prepared
from alexnet.evaluation import train_val_gap
from alexnet.model import build_model
from alexnet.model.saved import model_card
from alexnet.reports import RunResult
from alexnet.run_identity import RUN_FILE
from alexnet.study_view import VIEW_TAG, study_view_state, study_view_url
from alexnet.tracking import Tracker, tracked_run
from alexnet.tracking.study import CHAMPION, StudyTracker, best_baseline
from alexnet.tracking.ui import study_view_link

NAME = "alexnet-test"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    cfg, prepared = make_prepared(root)
    tracking = cfg.tracking.model_copy(update={"uri": f"sqlite:///{root / 'mlflow.db'}", "registered_model": NAME})
    data = load_prepared(prepared)
    history = root / "history.csv"
    history.write_text("epoch,top1_error,val_top1_error,train_eval_top1_error\n1,0.6,0.7,0.65\n2,0.4,0.625,0.5\n")
    return {"root": root, "cfg": cfg, "tracking": tracking, "data": data, "history": history}


def train_and_evaluate(world, name: str, variant: str, ten_crop_error: float) -> RunResult:
    """What train.py then evaluate.py do with the tracker: one run, resumed by evaluation."""
    cfg, data = world["cfg"], world["data"]
    tracker = Tracker(world["tracking"], world["root"]).connect()
    with tracked_run(tracker, name, {"variant": variant, "seed": "0"}, None, system_metrics=True):
        tracker.log_dataset(data, "training")
        model = build_model(cfg.model, data.num_classes, cfg.train.crop)
        tracker.log_keras_model(model, beside={RUN_FILE: model_card(cfg, data)})
    evaluation = Tracker(world["tracking"], world["root"]).connect()
    results = {"top1_error": ten_crop_error + 0.01, "ten_crop_top1_error": ten_crop_error}
    with tracked_run(evaluation, name, {}, tracker.run_id):
        evaluation.log_evaluation(results, data, train_val_gap(world["history"]))
    return RunResult(name, variant, 0, results, [], tracker.run_id)


def study(world, errors: dict[str, float]) -> tuple[list[RunResult], int | None]:
    runs = [train_and_evaluate(world, name, name.rpartition("-")[0], error) for name, error in errors.items()]
    champion = best_baseline(runs)
    tracker = StudyTracker(world["tracking"], world["root"]).connect()
    return runs, tracker.register_champion(champion.mlflow_run_id, champion.name)


@pytest.fixture(scope="module")
def first_study(world):
    # no_lrn has the lowest error but the champion is a baseline: the best baseline seed.
    return study(world, {"baseline-a": 0.40, "baseline-b": 0.30, "no_lrn-a": 0.20})


def client(world) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(world["tracking"].uri)


def model_of(world, run: RunResult):
    experiment = client(world).get_experiment_by_name(world["tracking"].experiment)
    (model,) = client(world).search_logged_models(
        [experiment.experiment_id], filter_string=f"source_run_id = '{run.mlflow_run_id}'"
    )
    return model


def test_logged_model_has_an_image_signature_and_example(world, first_study):
    runs, _ = first_study
    info = mlflow.models.get_model_info(f"models:/{model_of(world, runs[0]).model_id}")
    crop, classes = world["cfg"].train.crop, world["data"].num_classes
    (images,) = info.signature.inputs.inputs
    (logits,) = info.signature.outputs.inputs
    assert (images.type, images.shape) == (np.dtype("float32"), (-1, crop, crop, 3))
    assert (logits.type, logits.shape) == (np.dtype("float32"), (-1, classes))
    assert info.saved_input_example_info is not None, "an input example is stored"


def test_evaluation_metrics_carry_the_model_id_and_the_dataset(world, first_study):
    runs, _ = first_study
    model = model_of(world, runs[1])
    metrics = {metric.key: metric for metric in client(world).get_logged_model(model.model_id).metrics}
    assert metrics["eval_ten_crop_top1_error"].value == pytest.approx(0.30)
    assert metrics["eval_ten_crop_top1_error"].model_id == model.model_id
    assert metrics["eval_ten_crop_top1_error"].dataset_digest == world["data"].data_hash
    assert metrics["train_val_gap"].value == pytest.approx(0.125), "val minus inference-mode train error"


def test_the_prepared_data_is_a_dataset_input_of_training_and_evaluation(world, first_study):
    runs, _ = first_study
    inputs = client(world).get_run(runs[0].mlflow_run_id).inputs.dataset_inputs
    contexts = {i.dataset.name: next(t.value for t in i.tags if t.key == "mlflow.data.context") for i in inputs}
    assert contexts == {"prepared-train": "training", "prepared-val": "eval"}
    data = world["data"]
    for dataset_input in inputs:
        dataset = dataset_input.dataset
        assert dataset.digest == data.data_hash
        assert str(data.folder.resolve()) in dataset.source
        profile = json.loads(dataset.profile)
        assert profile["train_images"] == data.counts["train"] and profile["val_images"] == data.counts["val"]


def test_champion_alias_resolves_to_the_best_baseline_and_predict_loads_it(world, first_study, monkeypatch, capsys):
    runs, version = first_study
    resolved = client(world).get_model_version_by_alias(NAME, CHAMPION)
    assert int(resolved.version) == version
    assert resolved.run_id == runs[1].mlflow_run_id, "baseline-b: the lowest 10-crop error among baselines"

    image = world["root"] / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((50, 60, 3)) * 255).astype(np.uint8)).save(image)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["tracking"].uri)
    main(["predict", str(image), "--model", f"models:/{NAME}@{CHAMPION}", "--data", str(world["data"].folder),
          "--json"])  # fmt: skip
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert [p["file"] for p in predictions] == [str(image)]
    assert sum(entry["probability"] for entry in predictions[0]["top"]) == pytest.approx(1.0, abs=1e-4)


def test_a_missing_alias_is_one_clear_error(world, first_study, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world["tracking"].uri)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "x.png", "--model", f"models:/{NAME}@nobody", "--data", str(world["data"].folder)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"models:/{NAME}@nobody" in err, err


def test_a_second_study_moves_the_alias_and_rerunning_reuses_the_version(world, first_study):
    _, first_version = first_study
    runs, second_version = study(world, {"baseline-c": 0.10, "tanh-c": 0.05})
    assert second_version == first_version + 1
    assert client(world).get_model_version_by_alias(NAME, CHAMPION).run_id == runs[0].mlflow_run_id
    again = StudyTracker(world["tracking"], world["root"]).connect().register_champion(runs[0].mlflow_run_id, "again")
    assert again == second_version, "compare re-run on the same model does not add a version"


def test_tracking_off_or_unreachable_skips_registration_in_one_line(world, first_study, capsys, monkeypatch):
    runs, _ = first_study
    off = StudyTracker(world["tracking"].model_copy(update={"enabled": False}), world["root"]).connect()
    assert off.register_champion(runs[1].mlflow_run_id, "x") is None
    assert capsys.readouterr().out.strip() == f"tracking: registry skipped, {NAME}@champion not moved " \
        "(tracking.enabled: false)"  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # a shared server that is down
    tracker = StudyTracker(world["tracking"].model_copy(update={"on_failure": "warn"}), world["root"]).connect()
    capsys.readouterr()
    assert tracker.register_champion(runs[1].mlflow_run_id, "x") is None
    out = capsys.readouterr().out.strip()
    assert out.startswith("tracking: registry skipped") and "127.0.0.1:9" in out and "\n" not in out, out


def test_the_study_view_is_stored_on_the_experiment_and_ui_names_its_address(world, first_study, tmp_path,
                                                                            monkeypatch):
    """compare stores the view as an experiment tag; `alexnet ui` finds it through MlflowClient, not SQL."""
    (tmp_path / "params.yaml").write_text(Path(__file__).resolve().parents[1].joinpath("params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(world["root"]))
    experiment = client(world).get_experiment_by_name(world["tracking"].experiment)
    assert VIEW_TAG not in experiment.tags
    assert study_view_link("http://ui") is None, "no view before compare stored one"

    StudyTracker(world["tracking"], world["root"]).connect().share_study_view()
    experiment = client(world).get_experiment_by_name(world["tracking"].experiment)
    assert json.loads(experiment.tags[VIEW_TAG]) == study_view_state()
    assert study_view_link("http://ui") == study_view_url("http://ui", experiment.experiment_id)


def test_no_store_no_link_and_no_store_created(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(Path(__file__).resolve().parents[1].joinpath("params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert study_view_link("http://ui") is None
    assert not (tmp_path / "mlflow.db").exists()


def test_train_val_gap_is_the_last_epochs_val_minus_inference_mode_train_error(tmp_path):
    history = tmp_path / "history.csv"
    assert train_val_gap(history) is None
    history.write_text("epoch,top1_error,train_eval_top1_error,val_top1_error\n")
    assert train_val_gap(history) is None
    history.write_text("epoch,top1_error,train_eval_top1_error,val_top1_error\n1,0.5,0.6,0.9\n2,0.4,0.25,0.5\n")
    assert train_val_gap(history) == pytest.approx(0.25)  # not 0.10 from the running (dropout-on) metric
