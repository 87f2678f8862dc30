"""`model.dropout_scaling`: Keras' inverted dropout, or the paper's (Sec. 4.2), and what the difference means.

Inverted (Keras): kept units x 1/(1 - rate) in training, identity at test. Paper: kept units unchanged in
training, outputs x (1 - rate) at test. A net with inverted dropout and weights W after each dropout layer
computes what a paper-dropout net with weights W / (1 - rate) there computes, in training and at test: with the
paper's init (std 0.01) and rate 0.5, inverted dropout's fc7 and fc8 act as the paper's at std 0.02.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from pipeline_copy import read_params

from alexnet.config import ModelConfig
from alexnet.model import PaperDropout, build_model
from alexnet.model.saved import load_model

RATE = 0.5


def test_paper_dropout_keeps_units_in_training_and_halves_outputs_at_test():
    x = np.arange(1, 4097, dtype=np.float32).reshape(1, 4096)
    paper = PaperDropout(RATE, seed=3)
    inverted = keras.layers.Dropout(RATE, seed=3)
    test_out = np.asarray(paper(x, training=False))
    np.testing.assert_allclose(test_out, 0.5 * x)
    train_out = np.asarray(paper(x, training=True))
    kept = train_out != 0
    np.testing.assert_allclose(train_out[kept], x[kept])  # kept units pass unchanged
    assert 0.45 < kept.mean() < 0.55
    np.testing.assert_allclose(np.asarray(inverted(x, training=True)), 2 * train_out)  # same mask, x2


def model_config(scaling: str) -> ModelConfig:
    raw = read_params()["model"]
    return ModelConfig(**{**raw, "dropout": RATE, "dropout_scaling": scaling, "width": 0.125, "fc_units": 64})


def make_twins():
    """The same net, same seed, with each scaling; the paper twin's fc7 and fc8 weights doubled."""
    inverted = build_model(model_config("inverted"), num_classes=5, input_size=32, seed=7)
    paper = build_model(model_config("paper"), num_classes=5, input_size=32, seed=7)
    assert [layer.__class__.__name__ for layer in paper.layers if "drop" in layer.name] == ["PaperDropout"] * 2
    for layer in paper.layers:
        weights = inverted.get_layer(layer.name).get_weights()
        if layer.name in ("fc7", "fc8"):
            weights = [weights[0] / (1 - RATE), weights[1]]  # the kernel doubled, the bias kept
        layer.set_weights(weights)
    return inverted, paper


@pytest.fixture(scope="module")
def twins():
    return make_twins()


def test_inverted_dropout_is_the_paper_net_with_fc7_and_fc8_doubled(twins):
    inverted, paper = twins
    images = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(paper(images, training=False), inverted(images, training=False), rtol=1e-4, atol=1e-5)
    # Training: the dropout layers draw the same masks from the same seeds in both nets.
    np.testing.assert_allclose(paper(images, training=True), inverted(images, training=True), rtol=1e-4, atol=1e-5)


def test_the_two_scalings_differ_at_test_with_the_same_weights(twins):
    inverted, _ = twins
    same_weights = build_model(model_config("paper"), num_classes=5, input_size=32, seed=7)
    same_weights.set_weights(inverted.get_weights())
    images = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    assert not np.allclose(same_weights(images, training=False), inverted(images, training=False), atol=1e-4)


def test_a_paper_dropout_model_saves_and_loads_safely(twins, tmp_path):
    _, paper = twins
    path = tmp_path / "paper.keras"
    paper.save(path)
    loaded = load_model(path)
    images = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(images, training=False), paper(images, training=False), rtol=1e-5)
    assert isinstance(loaded.get_layer("drop6"), PaperDropout)


def test_the_paper_twin_gets_half_the_fc7_and_fc8_kernel_gradients_so_sgd_steps_at_4x_its_rate():
    """Same loss, same masks. With W' = 2W in fc7/fc8 the paper twin's gradient there is half the inverted net's,
    so the inverted net's step W <- W - lr g is, in W', W' <- W' - 2 lr g = W' - 4 lr (g / 2): 4x the rate."""
    import tensorflow as tf

    inverted, paper = make_twins()
    images = np.random.default_rng(3).normal(size=(8, 32, 32, 3)).astype(np.float32)
    labels = np.arange(8) % 5

    def gradients(model):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        variables = {f"{layer.name}/{v.name}": v for layer in model.layers for v in layer.trainable_weights}
        grads = tape.gradient(loss, list(variables.values()))
        return {name: np.asarray(g) for name, g in zip(variables, grads, strict=True)}

    inverted_grads, paper_grads = gradients(inverted), gradients(paper)
    assert inverted_grads.keys() == paper_grads.keys()
    halved = {name for name in paper_grads if name.startswith(("fc7/kernel", "fc8/kernel"))}
    assert len(halved) == 2, sorted(paper_grads)
    assert all(np.abs(inverted_grads[name]).max() > 1e-6 for name in halved), "a gradient to compare"
    for name, grad in inverted_grads.items():
        expected = grad / 2 if name in halved else grad
        np.testing.assert_allclose(paper_grads[name], expected, rtol=2e-3, atol=1e-6, err_msg=name)
