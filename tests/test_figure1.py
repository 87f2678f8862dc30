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


def test_init_paper_is_gaussian_std_001_with_zero_biases_and_glorot_is_not():
    """figure1.inits: paper: every kernel measured at std 0.01 (mean 0), every bias 0; glorot's kernels are wider."""
    paper = four_layer_net("relu", num_classes=10, size=32, init="paper")
    glorot = four_layer_net("relu", num_classes=10, size=32, init="glorot")
    weighted = [layer.name for layer in paper.layers if layer.weights]
    assert weighted == ["conv1", "conv2", "conv3", "fc4"]
    for name in weighted:
        kernel, bias = (np.asarray(w) for w in paper.get_layer(name).get_weights())
        assert kernel.size >= 2400  # enough draws that the measured std is within 5% (about 3.5 standard errors)
        assert abs(float(kernel.std()) - 0.01) < 0.0005, (name, float(kernel.std()))
        assert abs(float(kernel.mean())) < 0.001, name
        assert not bias.any(), name
        glorot_kernel, glorot_bias = (np.asarray(w) for w in glorot.get_layer(name).get_weights())
        assert glorot_kernel.std() > 0.02 and not glorot_bias.any(), name  # Glorot: sqrt(2 / (fan_in + fan_out))


def test_each_init_sweeps_on_the_tuning_seed_and_estimates_on_the_others(tmp_path, capsys):
    raw = read_params()
    raw["figure1"].update(epochs=3, batch_size=16, learning_rates=[0.001, 0.05], seeds=[3, 5], tuning_seed=7,
                          target_error=0.3, inits=["glorot", "paper"])  # fmt: skip
    cfg = parse(raw).figure1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64).astype(np.int32)
    images = rng.normal(0.0, 0.1, (64, 8, 8, 3)).astype(np.float32) + labels[:, None, None, None] * 0.5  # learnable
    result = run(cfg, SmallImages(images, labels, 2), tmp_path, progress=True)
    printed = capsys.readouterr().out.splitlines()
    # after the first training, the time of all: 2 inits x 2 activations x (2 rates + 2 seeds)
    assert printed[0].startswith("figure1 estimate: a training takes") and "its 16 trainings about" in printed[0]
    assert sum(line.startswith("figure1: init") for line in printed) == 16

    written = json.loads((tmp_path / "figure1.json").read_text())
    assert written == result and (tmp_path / "figure1.png").stat().st_size > 0
    assert (written["data"], written["epochs"]) == ("prepared", 3)
    assert (written["image_size"], written["train_images"]) == (8, 64)
    assert (written["inits"], written["tuning_seed"]) == (["glorot", "paper"], 7)
    assert written["learning_rates"] == [0.001, 0.05]
    assert list(written["by_init"]) == ["glorot", "paper"]
    for init, measured in written["by_init"].items():
        sweep, same_as_tuning = measured["curves"], []
        # the sweep: each activation at each rate, on the tuning seed alone; the estimate: the other seeds
        assert sorted((c["activation"], c["learning_rate"]) for c in sweep) == sorted(
            (a, r) for a in ("relu", "tanh") for r in (0.001, 0.05))
        assert {c["seed"] for c in sweep} == {7} and {c["init"] for c in sweep} == {init}
        assert [entry["seed"] for entry in measured["seeds"]] == [3, 5]
        assert 7 not in [entry["seed"] for entry in measured["seeds"]]
        for activation, rate in measured["best_learning_rate"].items():
            swept = [Curve(**c) for c in sweep if c["activation"] == activation]
            assert fastest(swept, 0.3).learning_rate == rate
        for entry in measured["seeds"]:
            assert entry["init"] == init and entry["learning_rate"] == measured["best_learning_rate"]
            for activation, epochs in entry["epochs_to_target"].items():
                curve = entry["train_error"][activation]
                assert len(curve) == 3
                assert epochs == next((i for i, error in enumerate(curve, 1) if error <= 0.3), None)
                tuned = next(c for c in sweep if c["activation"] == activation
                             and c["learning_rate"] == entry["learning_rate"][activation])  # fmt: skip
                same_as_tuning.append(curve == tuned["train_error"])
            relu, tanh = entry["epochs_to_target"]["relu"], entry["epochs_to_target"]["tanh"]
            assert entry["speedup"] == (tanh / relu if relu and tanh else None)
        # fresh runs on the estimate's seeds, not the tuning seed's curves at the chosen rates (one may tie by chance:
        # 64 images give errors in steps of 1/64)
        assert not all(same_as_tuning), init
        assert measured["median_epochs_to_target"] == {
            a: median_epochs([entry["epochs_to_target"][a] for entry in measured["seeds"]]) for a in ("relu", "tanh")
        }
    glorot, paper = written["by_init"]["glorot"], written["by_init"]["paper"]
    assert [c["train_error"] for c in glorot["curves"]] != [c["train_error"] for c in paper["curves"]]  # init used
    assert any(e is not None for m in (glorot, paper) for s in m["seeds"] for e in s["epochs_to_target"].values())
    # the one-init keys older readers use hold the first init's results
    assert written["init"] == "glorot"
    assert [written[key] for key in ("best_learning_rate", "seeds", "median_epochs_to_target", "curves")] == [
        glorot[key] for key in ("best_learning_rate", "seeds", "median_epochs_to_target", "curves")]


def test_one_listed_rate_is_given_not_swept(tmp_path, capsys):
    """figure1.learning_rates with one rate: no sweep on the tuning seed, 2 x seeds trainings, and the claim's note
    says the rate was given."""
    from alexnet.claims import figure1_claims
    from alexnet.paper_claims import CLAIMS

    raw = read_params()
    raw["figure1"].update(epochs=2, batch_size=16, learning_rates=[0.05], seeds=[3, 5], tuning_seed=7,
                          target_error=0.3, inits=["glorot"])  # fmt: skip
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64).astype(np.int32)
    images = rng.normal(0.0, 0.1, (64, 8, 8, 3)).astype(np.float32) + labels[:, None, None, None] * 0.5
    result = run(parse(raw).figure1, SmallImages(images, labels, 2), tmp_path, progress=True)
    printed = capsys.readouterr().out.splitlines()
    assert "its 4 trainings about" in printed[0]
    assert sorted(line.split(":")[1] for line in printed[1:]) == sorted(
        f" init glorot seed {seed} {a} lr=0.05" for seed in (3, 5) for a in ("relu", "tanh")
    )
    measured = result["by_init"]["glorot"]
    assert measured["curves"] == [] and result["tuning_seed"] is None
    assert measured["best_learning_rate"] == {"relu": 0.05, "tanh": 0.05}
    claim = next(c for c in CLAIMS if c.key == "relu_figure1")
    (row,) = figure1_claims(claim, result)
    assert "one rate given (params figure1.learning_rates), no sweep: relu 0.05, tanh 0.05" in row.notes
