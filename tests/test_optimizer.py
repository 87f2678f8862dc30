"""PaperSGD against the update rule of Sec. 5, computed by hand, and under mixed precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from alexnet.config import ModelConfig, TrainConfig
from alexnet.model import build_model
from alexnet.optimizer import PaperSGD, make_optimizer

LR, MOMENTUM, DECAY = 0.1, 0.9, 0.05  # large decay so a coupled/decoupled mix-up shows


@pytest.fixture
def float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def paper_rule(w, gradients, lr=LR, momentum=MOMENTUM, decay=DECAY):
    """Sec. 5: v_{i+1} = 0.9 v_i - 0.0005 e w_i - e <dL/dw>_i ;  w_{i+1} = w_i + v_{i+1}."""
    v = np.zeros_like(w)
    for gradient in gradients:
        v = momentum * v - decay * lr * w - lr * gradient
        w = w + v
    return w


def three_gradients(shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype("float32") for _ in range(3)]


@pytest.fixture(params=["fused", "ops"])
def update_form(request, monkeypatch):
    """Each test taking it runs with the TensorFlow XLA update (where it applies) and with the keras.ops
    form; it yields how many updates went through the XLA form."""
    calls = []
    if keras.backend.backend() == "tensorflow":
        from alexnet import optimizer_tensorflow

        fused = optimizer_tensorflow.update
        monkeypatch.setattr(optimizer_tensorflow, "update", lambda *args: calls.append(1) or fused(*args))
        if request.param == "ops":
            monkeypatch.setattr(optimizer_tensorflow, "applies", lambda variable: False)
    elif request.param == "fused":
        pytest.skip("the fused update is TensorFlow's")
    yield request.param, calls


def test_three_steps_match_hand_computed_rule(update_form):
    form, fused_calls = update_form
    start = np.array([[1.0, -2.0], [0.5, 3.0]], "float32")
    bias_start = np.array([1.0, 0.0], "float32")
    kernel, bias = keras.Variable(start), keras.Variable(bias_start)
    kernel_grads, bias_grads = three_gradients(start.shape), three_gradients(bias_start.shape, seed=1)
    optimizer = PaperSGD(learning_rate=LR, momentum=MOMENTUM, weight_decay=DECAY)
    for kernel_grad, bias_grad in zip(kernel_grads, bias_grads, strict=True):
        optimizer.apply_gradients([(kernel_grad, kernel), (bias_grad, bias)])
    np.testing.assert_allclose(kernel.numpy(), paper_rule(start, kernel_grads), rtol=1e-6)
    # biases decay too
    np.testing.assert_allclose(bias.numpy(), paper_rule(bias_start, bias_grads), rtol=1e-6)
    assert len(fused_calls) == (6 if form == "fused" else 0)


def test_differs_from_decoupled_weight_decay():
    start = np.ones((3,), "float32")
    gradients = three_gradients(start.shape)
    paper, decoupled = keras.Variable(start), keras.Variable(start)
    paper_opt = PaperSGD(learning_rate=LR, momentum=MOMENTUM, weight_decay=DECAY)
    sgdw = keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM, weight_decay=DECAY)
    for gradient in gradients:
        paper_opt.apply_gradients([(gradient, paper)])
        sgdw.apply_gradients([(gradient, decoupled)])
    assert not np.allclose(paper.numpy(), decoupled.numpy(), rtol=1e-3)


def test_works_inside_loss_scale_optimizer(update_form):
    start = np.array([0.3, -0.7, 1.5], "float32")
    variable = keras.Variable(start)
    gradients = three_gradients(start.shape)
    optimizer = keras.optimizers.LossScaleOptimizer(PaperSGD(LR, MOMENTUM, DECAY))
    optimizer.build([variable])
    for gradient in gradients:
        scale = float(optimizer.dynamic_scale.numpy())
        optimizer.apply([gradient * scale], [variable])
    np.testing.assert_allclose(variable.numpy(), paper_rule(start, gradients), rtol=1e-5)


def test_serialization_round_trip():
    optimizer = PaperSGD(learning_rate=0.02, momentum=0.8, weight_decay=0.001)
    config = keras.optimizers.serialize(optimizer)
    restored = keras.optimizers.deserialize(config)
    assert isinstance(restored, PaperSGD)
    assert (restored.momentum, restored.coupled_weight_decay) == (0.8, 0.001)
    assert float(restored.learning_rate.numpy()) == pytest.approx(0.02)
    assert restored.weight_decay is None  # Keras' decoupled decay stays off


def test_make_optimizer(raw_params):
    paper = make_optimizer(TrainConfig(**raw_params["train"]))
    assert isinstance(paper, PaperSGD)
    assert paper.coupled_weight_decay == raw_params["train"]["weight_decay"]
    sgdw = make_optimizer(TrainConfig(**{**raw_params["train"], "optimizer": "sgdw"}))
    assert type(sgdw) is keras.optimizers.SGD
    assert sgdw.weight_decay == raw_params["train"]["weight_decay"]
    assert sgdw.momentum == raw_params["train"]["momentum"]


def test_mixed_float16_train_step(raw_params, float32_policy_after):
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(**raw_params["model"]), num_classes=4, input_size=64)
    assert model.get_layer("conv1").compute_dtype == "float16"
    assert all(variable.dtype == "float32" for variable in model.weights)
    model.compile(
        optimizer=make_optimizer(TrainConfig(**raw_params["train"])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, PaperSGD)
    optimizer.build(model.trainable_variables)
    scale = float(optimizer.dynamic_scale.numpy())
    assert scale > 1.0
    assert float(optimizer.scale_loss(keras.ops.convert_to_tensor(2.0))) == pytest.approx(2.0 * scale)
    images = np.random.default_rng(0).standard_normal((8, 64, 64, 3)).astype("float32")
    before = model.get_layer("fc8").kernel.numpy().copy()
    loss = model.train_on_batch(images, np.arange(8) % 4)
    assert np.isfinite(loss)
    assert not np.array_equal(model.get_layer("fc8").kernel.numpy(), before)
