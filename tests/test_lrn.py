"""The TensorFlow LRN (hand-written gradient) against the keras.ops form: same values, forward and gradient."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
