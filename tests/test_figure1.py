"""Figure 1's protocol pieces: the four-layer net, epochs to the target error, the fastest rate, seeds."""

from __future__ import annotations

import json

import numpy as np
from pipeline_copy import read_params

from alexnet.config import parse
from alexnet.figure1 import Curve, SmallImages, fastest, four_layer_net, median_epochs, run


def test_four_layer_net_has_three_convs_and_a_softmax_layer_without_regularisation():
    model = four_layer_net("tanh", num_classes=10, size=32)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 3 and kinds.count("Dense") == 1
    assert "Dropout" not in kinds and "BatchNormalization" not in kinds
    assert model.get_layer("conv1").activation.__name__ == "tanh"
    assert model.output_shape == (None, 10)


def test_epochs_to_target_and_fastest_learning_rate():
    slow = Curve("relu", 0.01, [0.6, 0.4, 0.3, 0.2], [1.0] * 4)
    quick = Curve("relu", 0.03, [0.5, 0.24, 0.2, 0.1], [1.0] * 4)
    never = Curve("relu", 0.1, [0.9, 0.9, 0.9, 0.9], [1.0] * 4)
    assert (slow.epochs_to(0.25), quick.epochs_to(0.25), never.epochs_to(0.25)) == (4, 2, None)
    assert fastest([slow, never, quick], 0.25) is quick
    assert fastest([never, Curve("relu", 0.2, [0.9, 0.8, 0.7, 0.6], [1.0] * 4)], 0.25).learning_rate == 0.2


def test_median_epochs_over_seeds_counts_censored_runs_as_longest():
    assert median_epochs([4, None, 2]) == 4
    assert median_epochs([3, 5]) == 4 and median_epochs([3, 6]) == 4.5
    assert median_epochs([None, 2, None]) is None  # more than half not reached
    assert median_epochs([2, None]) is None  # the upper middle value is censored: the median is unknown
    assert median_epochs([7]) == 7 and median_epochs([None]) is None


def test_every_seed_trains_at_the_first_seeds_chosen_rates(tmp_path):
    raw = read_params()
    raw["figure1"].update(epochs=3, batch_size=16, learning_rates=[0.001, 0.05], seeds=[3, 5], target_error=0.3)
    cfg = parse(raw).figure1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64).astype(np.int32)
    images = rng.normal(0.0, 0.1, (64, 8, 8, 3)).astype(np.float32) + labels[:, None, None, None] * 0.5  # learnable
    result = run(cfg, SmallImages(images, labels, 2), tmp_path, progress=False)

    written = json.loads((tmp_path / "figure1.json").read_text())
    assert written == result and (tmp_path / "figure1.png").stat().st_size > 0
    assert (written["data"], written["epochs"]) == ("prepared", 3)
    assert (written["image_size"], written["train_images"]) == (8, 64)
    assert len(written["curves"]) == 2 * 2  # the sweep: each activation at each rate, on the first seed only
    assert [entry["seed"] for entry in written["seeds"]] == [3, 5]
    first, second = written["seeds"]
    assert first["epochs_to_target"] == written["epochs_to_target"] and first["speedup"] == written["speedup"]
    assert first["learning_rate"] == second["learning_rate"] == written["best_learning_rate"]
    for activation, rate in written["best_learning_rate"].items():  # the first seed's curves are the sweep's
        swept = [c for c in written["curves"] if c["activation"] == activation]
        assert fastest([Curve(**c) for c in swept], 0.3).learning_rate == rate
        assert next(c for c in swept if c["learning_rate"] == rate)["train_error"] == first["train_error"][activation]
    for entry in written["seeds"]:
        assert entry["epochs"] == 3 and set(entry["epochs_to_target"]) == {"relu", "tanh"}
        for activation, epochs in entry["epochs_to_target"].items():
            curve = entry["train_error"][activation]
            assert len(curve) == 3
            assert epochs == next((i for i, error in enumerate(curve, 1) if error <= 0.3), None)
        relu, tanh = entry["epochs_to_target"]["relu"], entry["epochs_to_target"]["tanh"]
        assert entry["speedup"] == (tanh / relu if relu and tanh else None)
    assert written["median_epochs_to_target"] == {
        a: median_epochs([entry["epochs_to_target"][a] for entry in written["seeds"]]) for a in ("relu", "tanh")
    }
    assert any(e is not None for entry in written["seeds"] for e in entry["epochs_to_target"].values())
    # the second seed's relu curve is a fresh run at the chosen rate, not a copy of the first seed's
    assert first["train_error"]["relu"] != second["train_error"]["relu"]
