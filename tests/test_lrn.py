"""The TensorFlow LRN (hand-written gradient) against the keras.ops form: same values, forward and gradient."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet.model import LocalResponseNormalization
from alexnet.model.lrn_tensorflow import local_response_normalization

CASES = [
    {},  # the paper's: k=2, n=5, alpha=1e-4, beta=0.75
    {"groups": 2},
    {"alpha_over_n": True, "beta": 0.5, "k": 1.0},
    {"depth": 3, "groups": 4},
    {"activation": "relu", "groups": 2},  # the model's LRN: it applies the convolution's ReLU itself
    {"activation": "tanh"},
]


def both_forms(layer: LocalResponseNormalization, x: tf.Tensor, upstream: tf.Tensor):
    results = []
    for form in (layer.call_ops, layer.call):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = form(x)
        results.append((y.numpy(), tape.gradient(y, x, output_gradients=upstream).numpy()))
    return results


@pytest.mark.parametrize("settings", CASES)
def test_tensorflow_form_equals_keras_ops_form(settings):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, 5, 5, 16)) * 40, tf.float32)  # large: the denominator varies
    upstream = tf.constant(rng.standard_normal((2, 5, 5, 16)), tf.float32)
    layer = LocalResponseNormalization(**settings)
    layer.build(x.shape)
    (ops_y, ops_grad), (tf_y, tf_grad) = both_forms(layer, x, upstream)
    np.testing.assert_allclose(tf_y, ops_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tf_grad, ops_grad, rtol=1e-4, atol=1e-6)
    # The gradient is not the trivial k ** -beta scaling: the window term matters at this size.
    assert not np.allclose(ops_grad, upstream.numpy() * layer.k**-layer.beta, rtol=1e-2)


def test_tensorflow_form_in_bfloat16_and_inside_a_compiled_graph():
    x = tf.cast(tf.random.stateless_normal((2, 6, 6, 8), seed=(1, 2)) * 30, tf.bfloat16)
    layer = LocalResponseNormalization(groups=2, dtype="mixed_bfloat16")
    layer.build(x.shape)

    @tf.function
    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return y, tape.gradient(loss, x)

    y, g = grad(x)
    assert y.dtype == tf.bfloat16 and g.dtype == tf.bfloat16
    reference = layer.call_ops(tf.cast(x, tf.float32))
    np.testing.assert_allclose(tf.cast(y, tf.float32).numpy(), reference.numpy(), rtol=2e-2, atol=1e-2)


def test_other_backends_use_the_keras_ops_form():
    """Under JAX the layer must not touch TensorFlow, and gives the same numbers."""
    pytest.importorskip("jax")
    script = textwrap.dedent(
        """
        import sys, numpy as np, keras
        from alexnet.model import LocalResponseNormalization
        x = (np.random.default_rng(0).standard_normal((1, 3, 3, 8)) * 40).astype("float32")
        print(np.asarray(LocalResponseNormalization(groups=2)(x)).tolist())
        assert "alexnet.model.lrn_tensorflow" not in sys.modules
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    x = (np.random.default_rng(0).standard_normal((1, 3, 3, 8)) * 40).astype("float32")
    expected = local_response_normalization(tf.constant(x), 5, 2.0, 1e-4, 0.75, 2).numpy()
    np.testing.assert_allclose(np.array(eval(done.stdout.strip().splitlines()[-1])), expected, rtol=1e-5)


def bench_candidate(name: str):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import lrn_candidates

    return getattr(lrn_candidates, name)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("form", ["tensorflow", "XLA loops", "band_matmul_form", "padded_towers_form"])
def test_each_fast_form_equals_keras_ops_in_value_and_gradient(dtype, form):
    """In both precisions the model trains in: the TensorFlow form (and bench/lrn.py's other forms) against the
    keras.ops form, forward and backward, at the paper's settings with two towers. bfloat16 tolerances are a
    few units in its last place (8 bits of mantissa), float32's the float32 rounding."""
    layer = LocalResponseNormalization(groups=2)
    x = tf.cast(tf.random.stateless_normal((2, 7, 7, 32), seed=(3, 4)) * 40, dtype)
    upstream = tf.cast(tf.random.stateless_normal((2, 7, 7, 32), seed=(5, 6)), dtype)
    layer.build(x.shape)
    if form == "tensorflow":  # in bfloat16 the band matmul between XLA loops, in float32 the XLA loops
        fast = layer.call
    elif form == "XLA loops":  # the float32 form, which bench/lrn.py also times in bfloat16
        from alexnet.model.lrn_tensorflow import fused_form

        def fast(inputs):
            width = inputs.shape[-1] // layer.groups
            return fused_form(inputs, layer.depth, layer.k, layer.alpha, layer.beta, layer.groups, width)
    else:
        candidate = bench_candidate(form)

        def fast(inputs):
            return candidate(inputs, layer.depth, layer.k, layer.alpha, layer.beta, layer.groups)

    pairs = both_forms_raw(layer.call_ops, fast, x=x, upstream=upstream)
    (ops_y, ops_grad), (fast_y, fast_grad) = ([tf.cast(t, tf.float32).numpy() for t in pair] for pair in pairs)
    tolerance = {"float32": (1e-5, 1e-6), "bfloat16": (2e-2, 2e-2)}[dtype]
    np.testing.assert_allclose(fast_y, ops_y, rtol=tolerance[0], atol=tolerance[1])
    np.testing.assert_allclose(fast_grad, ops_grad, rtol=tolerance[0], atol=tolerance[1])
    trivial = tf.cast(upstream, tf.float32).numpy() * layer.k**-layer.beta  # the window term must matter
    assert not np.allclose(ops_grad, trivial, rtol=1e-2)


def both_forms_raw(*forms, x, upstream):
    results = []
    for form in forms:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = form(x)
        gradient = tape.gradient(y, x, output_gradients=upstream)
        assert y.dtype == x.dtype and gradient.dtype == x.dtype
        results.append((y, gradient))
    return results


def test_eager_calls_reuse_one_trace_of_the_compiled_passes():
    """Evaluation's figures call the model outside a compiled function: each call must not trace (and XLA-compile)
    the LRN passes anew, as it did when they were made per call (5 min per evaluate stage instead of 40 s)."""
    from alexnet.model.lrn_tensorflow import _compiled

    layer = LocalResponseNormalization(groups=2)
    x = tf.random.stateless_normal((3, 5, 5, 22), seed=(1, 2)) * 40  # 22 channels: no other test's settings
    layer.build(x.shape)
    for _ in range(4):
        layer(x)
    forward, _ = _compiled(layer.depth, layer.k, layer.alpha, layer.beta, layer.groups, 11, False)
    traced = forward.experimental_get_tracing_count()
    for batch in (3, 7, 2):
        layer(tf.random.stateless_normal((batch, 5, 5, 22), seed=(batch, 2)))
    assert traced == 1 and forward.experimental_get_tracing_count() <= 2  # other batch sizes: one relaxed trace


def test_bfloat16_eager_calls_reuse_one_trace_of_each_pass():
    """The bfloat16 form (band matmul between XLA loops) is made once per layer setting, like the float32 one."""
    from alexnet.model.lrn_tensorflow import _bfloat16_passes

    layer = LocalResponseNormalization(groups=2, dtype="mixed_bfloat16")
    x = tf.cast(tf.random.stateless_normal((3, 5, 5, 26), seed=(1, 2)) * 40, tf.bfloat16)  # 26: its own settings
    layer.build(x.shape)
    for _ in range(3):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        tape.gradient(y, x)
    passes = _bfloat16_passes(layer.depth, layer.k, layer.alpha, layer.beta, 13, False)[1:]
    assert [one.experimental_get_tracing_count() for one in passes] == [1, 1, 1, 1]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_relu_inside_lrn_equals_relu_then_lrn_in_value_and_gradient(dtype):
    """LRN with activation="relu" takes the convolution's linear output z: its value and its gradient with respect
    to z must be the keras.ops form's (ReLU, then LRN) and those of TensorFlow's relu followed by the LRN without
    one, in both precisions; the gradient is zero where z <= 0, as ReluGrad gives."""
    layer = LocalResponseNormalization(groups=2, activation="relu")
    plain = LocalResponseNormalization(groups=2)
    z = tf.cast(tf.random.stateless_normal((2, 7, 7, 32), seed=(7, 8)) * 40, dtype)
    z = tf.where(tf.abs(z) < 1, tf.zeros_like(z), z)  # some exact zeros: the ReLU's kink
    upstream = tf.cast(tf.random.stateless_normal((2, 7, 7, 32), seed=(9, 10)), dtype)
    for one in (layer, plain):
        one.build(z.shape)

    forms = (layer.call_ops, layer.call, lambda inputs: plain.call(tf.nn.relu(inputs)))
    (ops_y, ops_grad), (fused_y, fused_grad), (composed_y, composed_grad) = (
        [tf.cast(t, tf.float32).numpy() for t in pair] for pair in both_forms_raw(*forms, x=z, upstream=upstream)
    )
    rtol, atol = {"float32": (1e-5, 1e-6), "bfloat16": (2e-2, 2e-2)}[dtype]
    for y, grad in ((fused_y, fused_grad), (composed_y, composed_grad)):
        np.testing.assert_allclose(y, ops_y, rtol=rtol, atol=atol)
        np.testing.assert_allclose(grad, ops_grad, rtol=rtol, atol=atol)
    z = tf.cast(z, tf.float32).numpy()
    assert (z < 0).mean() > 0.3 and (z == 0).any()
    assert np.all(fused_y[z <= 0] == 0) and np.all(fused_grad[z <= 0] == 0)
    assert np.count_nonzero(fused_grad[z > 0]) > 0.9 * np.count_nonzero(z > 0)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_a_net_whose_lrn_applies_the_relu_trains_as_conv_relu_then_lrn(policy):
    """The model's layout (a linear convolution, then LRN with activation="relu") against the textbook one (the
    convolution's own ReLU, then LRN): from the same weights, three SGD steps give the same weights."""
    from alexnet.model import TowerConv2D

    def net(fused: bool) -> keras.Model:
        inputs = keras.Input((19, 19, 4))
        conv = TowerConv2D(16, 5, strides=2, groups=2, activation=None if fused else "relu", dtype=policy,
                           kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=1))  # fmt: skip
        lrn = LocalResponseNormalization(groups=2, activation="relu" if fused else None, dtype=policy)
        x = keras.layers.MaxPooling2D(3, strides=2, dtype=policy)(lrn(conv(inputs)))
        logits = keras.layers.Dense(5, kernel_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=2))(
            keras.layers.Flatten()(x)
        )
        model = keras.Model(inputs, logits)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        return model

    images = tf.random.stateless_normal((8, 19, 19, 4), seed=(11, 12)) * 20
    labels = tf.range(8) % 5
    models = [net(fused) for fused in (True, False)]
    for model in models:
        for _ in range(3):
            model.train_on_batch(images, labels)
    fused, textbook = ([w.numpy() for w in model.weights] for model in models)
    changed = [w.numpy() for w in net(True).weights]
    assert not np.allclose(fused[0], changed[0])  # the convolution's kernel trained
    for a, b in zip(fused, textbook, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
