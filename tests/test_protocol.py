"""The study's protocol: one step schedule for every variant, paired seeds, the inference-mode training error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pipeline_copy import read_params, small_raw_data

from alexnet import callbacks, checkpoint, parallel, training
from alexnet.config import parse
from alexnet.data.input import parsed_records, probe_indices, train_dataset, train_probe
from alexnet.model import build_model

EPOCHS, PROBE_IMAGES, VAL_SUBSET = 4, 40, 7


def four_step_epochs(raw):
    raw["train"].update(epochs=EPOCHS, schedule="step", lr_steps=[0.5, 0.75], train_error_images=PROBE_IMAGES,
                        validation_images=VAL_SUBSET)  # fmt: skip
    raw["tracking"]["enabled"] = False


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from alexnet.data.input import load_prepared
    from alexnet.data.preprocess import preprocess

    root = tmp_path_factory.mktemp("protocol")
    raw, cfg, raw_dir = small_raw_data(root, four_step_epochs)
    preprocess(cfg.preprocess, raw_dir, root / "prepared", progress=False)
    return raw, cfg, load_prepared(root / "prepared")


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    from alexnet.tracking import Tracker

    _, cfg, data = prepared
    folder = tmp_path_factory.mktemp("run")
    run = checkpoint.TrainingRun(folder / "model.keras", folder / "history.csv", folder / "checkpoints", "x")
    model, rows = training.train(cfg, data, run, Tracker(cfg.tracking), state=None, verbose=0)
    return model, rows


def test_step_schedule_rates_by_epoch():
    schedule = callbacks.StepSchedule(0.01, 0.1, [0.5, 0.75], epochs=16)
    rates = [schedule.rate(epoch) for epoch in range(16)]
    assert rates[:8] == [0.01] * 8  # 1-based epochs 1-8 at the base rate
    assert rates[8:12] == pytest.approx([0.001] * 4)  # dropped after epoch 8 (0.5 of 16) ...
    assert rates[12:] == pytest.approx([0.0001] * 4)  # ... and after epoch 12 (0.75 of 16)


@pytest.mark.parametrize(
    ("fractions", "epochs", "drop_after"),
    [
        ([0.5, 0.75], 90, [45, 68]),  # 67.5 -> 68: a half rounds up (Python's round() would say 68, but ...)
        ([0.25, 0.75], 10, [3, 8]),  # ... 2.5 -> 3 where round() gives 2: not banker's rounding
        ([0.3, 0.7], 7, [2, 5]),  # 2.1 -> 2 and 4.9 -> 5: to the nearest epoch
        ([0.75], 6, [5]),  # 4.5 -> 5
    ],
)
def test_step_schedule_rounds_a_fraction_of_the_epochs_to_the_nearest_epoch_halves_up(fractions, epochs, drop_after):
    schedule = callbacks.StepSchedule(1.0, 0.1, fractions, epochs=epochs)
    assert schedule.drop_after == drop_after
    rates = [schedule.rate(epoch) for epoch in range(epochs)]
    drops = [epoch for epoch in range(1, epochs) if rates[epoch] < rates[epoch - 1]]
    assert drops == drop_after, "the first epoch at the lower rate is the 0-based index drop_after"
    assert rates[-1] == pytest.approx(0.1 ** len(fractions))


def test_step_schedule_drops_the_rate_at_the_stated_epochs_in_training(prepared, trained):
    _, cfg, _ = prepared
    _, rows = trained
    base = cfg.train.learning_rate
    # 4 epochs, steps at 0.5 and 0.75: epochs 1-2 at the base rate, 3 at a tenth, 4 at a hundredth
    assert [row["learning_rate"] for row in rows] == pytest.approx([base, base, base / 10, base / 100], rel=1e-5)


def test_a_plateau_schedule_is_still_available(prepared):
    raw, _, _ = prepared
    plateau = parse({**raw, "train": {**raw["train"], "schedule": "plateau"}})
    assert isinstance(callbacks.learning_rate_schedule(plateau, None), callbacks.PlateauSchedule)


def _hand_probe(data, crop):
    """The probe subset decoded with Pillow, centre-cropped and mean-subtracted by hand."""
    chosen = set(probe_indices(data.counts["train"], PROBE_IMAGES).tolist())
    start = (data.size - crop) // 2
    mean_crop = data.mean_image[start : start + crop, start : start + crop, :]
    images, labels = [], []
    for index, (encoded, label) in enumerate(parsed_records(data, "train").as_numpy_iterator()):
        if index in chosen:
            pixels = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"), np.float32)
            images.append(pixels[start : start + crop, start : start + crop, :] - mean_crop)
            labels.append(label)
    return np.stack(images), np.asarray(labels)


def test_inference_mode_training_error_equals_a_hand_evaluation(prepared, trained):
    _, cfg, data = prepared
    model, rows = trained
    images, labels = _hand_probe(data, cfg.train.crop)
    assert len(labels) == PROBE_IMAGES
    logits = np.asarray(model.predict(images, verbose=0), np.float32)
    hand_top1 = float(np.mean(logits.argmax(axis=1) != labels))
    probe = callbacks.inference_errors(model, train_probe(data, cfg.train.crop, PROBE_IMAGES, 16))
    # Pillow and TensorFlow decode the same JPEG bytes to within a grey level: a prediction may flip only
    # where two logits nearly tie, which would show as at most one image here.
    assert probe["train_eval_top1_error"] == pytest.approx(hand_top1, abs=1.0 / PROBE_IMAGES + 1e-9)
    # the history's last row is that same evaluation of the final model, logged as its own metric
    assert rows[-1]["train_eval_top1_error"] == pytest.approx(probe["train_eval_top1_error"])
    assert rows[-1]["train_eval_top5_error"] == pytest.approx(probe["train_eval_top5_error"])
    assert all(np.isfinite(row["train_eval_top1_error"]) for row in rows)


def test_epochs_validate_on_the_fixed_val_subset_and_the_last_on_the_whole_split(prepared, trained):
    _, cfg, data = prepared
    model, rows = trained
    assert data.counts["val"] > VAL_SUBSET
    assert [row["val_images"] for row in rows] == [VAL_SUBSET] * (EPOCHS - 1) + [data.counts["val"]]
    whole = model.evaluate(training.validation_batches(cfg, data, parallel.Cluster()), verbose=0, return_dict=True)
    assert rows[-1]["val_top1_error"] == pytest.approx(1.0 - whole["top1"], abs=1e-6)
    assert rows[-1]["val_loss"] == pytest.approx(whole["loss"], rel=1e-4)
    subset = training.validation_batches(cfg, data, parallel.Cluster(), VAL_SUBSET)
    labels = np.concatenate([batch_labels for _, batch_labels in subset.as_numpy_iterator()])
    assert len(labels) == VAL_SUBSET
    chosen = set(probe_indices(data.counts["val"], VAL_SUBSET).tolist())
    val_labels = [label for _, label in parsed_records(data, "val").as_numpy_iterator()]
    assert labels.tolist() == [val_labels[index] for index in sorted(chosen)]


def test_the_probe_is_a_fixed_subset_of_the_train_split(prepared):
    _, _, data = prepared
    first, again = probe_indices(data.counts["train"], 20), probe_indices(data.counts["train"], 20)
    assert np.array_equal(first, again) and len(set(first.tolist())) == 20
    assert first.max() < data.counts["train"]


def _first_batch(cfg, data):
    batches = train_dataset(
        data, cfg.augment, cfg.train.crop, cfg.train.batch_size, cfg.train.seed, 0, 1, cfg.train.shuffle_buffer
    )
    images, labels = next(iter(batches))
    return images.numpy(), labels.numpy()


def test_two_variants_with_the_same_seed_get_identical_first_batches(prepared):
    raw, _, data = prepared
    baseline, no_lrn = parse(raw, variant="baseline", seed=1), parse(raw, variant="no_lrn", seed=1)
    assert baseline.model.lrn and not no_lrn.model.lrn
    (images, labels), (other_images, other_labels) = _first_batch(baseline, data), _first_batch(no_lrn, data)
    assert np.array_equal(labels, other_labels) and np.array_equal(images, other_images)
    next_seed_images, _ = _first_batch(parse(raw, variant="no_lrn", seed=2), data)
    assert not np.array_equal(images, next_seed_images)


def test_same_seed_same_initial_weights_where_layer_shapes_agree(prepared):
    raw, _, _ = prepared
    variants = {name: parse(raw, variant=name, seed=3) for name in ("baseline", "no_lrn", "one_gpu")}
    models = {name: build_model(cfg.model, 10, 64, seed=3) for name, cfg in variants.items()}
    for layer in models["no_lrn"].layers:  # every layer of no_lrn is in the baseline, with the same shapes
        twin = models["baseline"].get_layer(layer.name)
        for weight, same in zip(layer.get_weights(), twin.get_weights(), strict=True):
            assert np.array_equal(weight, same), layer.name
    baseline, one_gpu = models["baseline"], models["one_gpu"]
    assert baseline.get_layer("conv1").kernel.shape != one_gpu.get_layer("conv1").kernel.shape
    for name in ("fc7", "fc8"):  # the same shapes in both nets
        assert np.array_equal(baseline.get_layer(name).kernel.numpy(), one_gpu.get_layer(name).kernel.numpy())
    reseeded = build_model(variants["baseline"].model, 10, 64, seed=4)
    assert not np.array_equal(reseeded.get_layer("fc7").kernel.numpy(), baseline.get_layer("fc7").kernel.numpy())


def test_the_probe_scores_the_compiled_model_as_the_eager_call_does():
    """inference_errors runs predict_on_batch (compiled): in float32 the same errors as `model(x)` eagerly."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(7)])  # fmt: skip
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(40, 8, 8, 3)).astype("float32"), rng.integers(0, 7, 40).astype("int32")
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    logits = np.asarray(model(images, training=False))
    top = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    assert callbacks.inference_errors(model, batches) == {
        "train_eval_top1_error": float(np.mean(top[:, 0] != labels)),
        "train_eval_top5_error": float(1.0 - np.mean(np.any(top == labels[:, None], axis=1))),
    }


def test_the_estimate_after_the_first_epoch_covers_this_training_and_the_study():
    line = callbacks.estimate_line(epoch_seconds=30.0, epochs_left=15, epochs=16, trainings=6, evaluation_seconds=60)
    assert "this training about 8 min more" in line  # 15 x 30 s
    assert "the 6 trainings of a whole `dvc repro` about 48 min" in line  # 6 x 16 x 30 s
    assert "their evaluations about 6 min: about 54 min on this machine" in line  # 6 x 60 s


def test_val_passes_counts_the_centre_crop_ten_crops_and_the_figure_seeds_train_pass():
    """The whole-run estimate's evaluation: per training, the centre crop, 10 crops, and Fig. 4's pass over
    train on the figure seeds only (one in three of the default's seeds)."""
    raw = read_params(synthetic=False)
    raw["ablations"]["seeds"], raw["evaluate"]["figure_seeds"], raw["evaluate"]["ten_crop"] = [0, 1, 2], [0], True
    assert callbacks.val_passes(parse(raw), train_images=9000, val_images=3000) == pytest.approx(1 + 10 + 3 / 3)
    raw["evaluate"]["figure_seeds"] = [5]
    assert callbacks.val_passes(parse(raw), train_images=9000, val_images=3000) == 11
    raw["evaluate"]["ten_crop"] = False
    raw["evaluate"]["figure_seeds"] = [0, 1, 2]
    assert callbacks.val_passes(parse(raw), train_images=9000, val_images=3000) == 1 + 3
