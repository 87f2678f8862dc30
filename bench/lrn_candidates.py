"""A candidate LRN form for bench/lrn.py: Sec. 3.3's formula as in alexnet.model.lrn_tensorflow, with fewer
elementwise passes, to be adopted only if a quiet machine shows it faster (it rounds differently in the last
float32 bit, so runs would stop being byte-identical to earlier ones).

- alpha folded into the band matrix and k added as the matmul's bias: one fused MatMul+BiasAdd (oneDNN);
- d ** -0.75 as rsqrt(d * sqrt(d)): three passes instead of four.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from alexnet.model.lrn_tensorflow import band


def fused_bias_form(inputs, depth: int, k: float, alpha: float, beta: float, groups: int):
    width = inputs.shape[-1] // groups
    scaled_window = tf.constant(band(width, depth) * alpha)
    bias = tf.constant(np.full(width, k, np.float32))

    def denominator(x):
        flat = tf.reshape(tf.square(x), [-1, width])
        return tf.reshape(tf.nn.bias_add(tf.matmul(flat, scaled_window), bias), tf.shape(x))

    def factor(d):
        return tf.math.rsqrt(d * tf.sqrt(d)) if beta == 0.75 else tf.pow(d, -beta)

    @tf.autograph.experimental.do_not_convert
    @tf.custom_gradient
    def normalize(x):
        def gradient(upstream):
            d = denominator(x)
            f = factor(d)
            inner = tf.reshape(tf.matmul(tf.reshape(upstream * x * f / d, [-1, width]), scaled_window), tf.shape(x))
            return upstream * f - (2.0 * beta) * x * inner

        return x * factor(denominator(x)), gradient

    return tf.cast(normalize(tf.cast(inputs, tf.float32)), inputs.dtype)
