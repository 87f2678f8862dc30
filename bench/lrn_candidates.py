"""The previous TensorFlow LRN form, kept for bench/lrn.py to compare against: Sec. 3.3's formula with the
same hand-written gradient as alexnet.model.lrn_tensorflow, the window sum as one matmul per tower with a
0/1 band matrix, no XLA. The model used it until the XLA-fused form measured faster (docs/benchmarks.md).
"""

from __future__ import annotations

import tensorflow as tf

from alexnet.model.lrn import band_matrix


def band_matmul_form(inputs, depth: int, k: float, alpha: float, beta: float, groups: int):
    channels = inputs.shape[-1]
    window = tf.constant(band_matrix(channels // groups, depth))

    def window_sum(squares):
        flat = tf.reshape(squares, [-1, channels // groups])
        return tf.reshape(tf.matmul(flat, window), tf.shape(squares))

    def scale(x):
        denominator = k + alpha * window_sum(tf.square(x))
        if beta == 0.75:
            return denominator, tf.math.rsqrt(denominator) * tf.math.rsqrt(tf.sqrt(denominator))
        return denominator, tf.pow(denominator, -beta)

    @tf.autograph.experimental.do_not_convert
    @tf.custom_gradient
    def normalize(x):
        def gradient(upstream):
            denominator, factor = scale(x)
            inner = window_sum(upstream * x * factor / denominator)
            return upstream * factor - (2.0 * alpha * beta) * x * inner

        return x * scale(x)[1], gradient

    return tf.cast(normalize(tf.cast(inputs, tf.float32)), inputs.dtype)
