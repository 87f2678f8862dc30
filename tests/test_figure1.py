"""Figure 1's protocol pieces: the four-layer net, epochs to the target error, picking the fastest rate."""

from __future__ import annotations

from alexnet.figure1 import Curve, fastest, four_layer_net


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
