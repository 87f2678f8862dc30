"""Earlier TensorFlow LRN forms, kept for bench/lrn.py to compare against: Sec. 3.3's formula with the same
hand-written gradient as alexnet.model.lrn_tensorflow. The model used each until the next measured faster
(docs/benchmarks.md):

- band_matmul_form: the window sum as one float32 matmul per tower with a 0/1 band matrix, no XLA;
- padded_towers_form: the XLA loops with each tower's channels zero-padded on their own
  ([..., groups, width + depth - 1]) instead of the masked shifts over all channels.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from alexnet.model.lrn import band_matrix
from alexnet.model.lrn_tensorflow import with_gradient, xla_passes


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


def padded_towers_form(inputs, depth: int, k: float, alpha: float, beta: float, groups: int):
    return with_gradient(inputs, *_padded_towers_passes(depth, k, alpha, beta, groups, inputs.shape[-1] // groups))


@functools.cache
def _padded_towers_passes(depth: int, k: float, alpha: float, beta: float, groups: int, width: int):
    half = depth // 2

    def window_sum(values):
        towers = tf.reshape(values, tf.concat([tf.shape(values)[:-1], [groups, width]], 0))
        padded = tf.pad(towers, [[0, 0]] * (len(values.shape)) + [[half, half]])
        total = tf.add_n([padded[..., shift : shift + width] for shift in range(depth)])
        return tf.reshape(total, tf.shape(values))

    return xla_passes(window_sum, k, alpha, beta)
