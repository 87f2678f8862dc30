"""LRN (Sec. 3.3) for the TensorFlow backend: a hand-written gradient that keeps only its input, and each
pass compiled by XLA into one loop.

Autodiff of the keras.ops form stores the squares, the window sums, the denominator and its powers, and
takes a full-size pass per stored tensor. Here the backward pass recomputes the denominator from x and
applies the closed form

    y = x * d ** -beta,  d = k + alpha * W(x ** 2)
    dL/dx = g * d ** -beta - 2 * alpha * beta * x * W(g * x * d ** (-beta - 1))

(W, the window sum over adjacent channels of one tower, is symmetric). W is `depth` shifted slices of the
zero-padded squares, masked at the tower boundary, so XLA fuses it with the casts, the power and the
products: the forward pass reads x once and writes y once, the backward reads x and g and writes dx. Only
these two small functions are compiled (XLA on the whole net is slower on CPU). bench/lrn.py times it
against the earlier forms kept in bench/lrn_candidates.py: the window sum as a band matmul without XLA, and
these XLA loops with each tower padded on its own.

In bfloat16 the window sum is a matmul again, now in bfloat16 with float32 accumulation (oneDNN; AMX tiles
where the CPU has them), between XLA loops for the elementwise parts: XLA's code for the shifted slices is
most of the fused loop's time, and a bfloat16 matmul with a 0/1 band matrix is nearly free. The window sums
of the squares are kept from the forward pass for the backward one. Rounding the squares and the sums to
bfloat16 changes d by a few parts in 1,000 of alpha * W, as mixed precision rounds everything else.

rectify=True takes the convolution's output before its ReLU and applies the ReLU inside these loops (Sec. 3.3
normalizes "after applying the ReLU nonlinearity"): a = max(z, 0) replaces x above, and dL/dz is dL/da where
z > 0, else 0, as TensorFlow's ReluGrad gives. The ReLU's own backward pass (read its output and the gradient,
write a gradient: three full-size tensors) then disappears into LRN's.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from alexnet.model.lrn import band_matrix


def local_response_normalization(
    inputs, depth: int, k: float, alpha: float, beta: float, groups: int, rectify: bool = False
):
    """b = a / (k + alpha * sum of a^2 over `depth` adjacent channels of its tower) ** beta, in float32;
    a = max(inputs, 0) with rectify, else the inputs."""
    settings = (depth, float(k), float(alpha), float(beta), groups, inputs.shape[-1] // groups)
    if inputs.dtype == tf.bfloat16:
        return _bfloat16_form(inputs, *settings[:4], width=settings[-1], rectify=rectify)
    return fused_form(inputs, *settings, rectify=rectify)


def fused_form(inputs, depth: int, k: float, alpha: float, beta: float, groups: int, width: int,
               rectify: bool = False):  # fmt: skip
    """The float32 form, in any dtype: each pass one XLA loop (bench/lrn.py times it in bfloat16 too)."""
    return with_gradient(inputs, *_compiled(depth, k, alpha, beta, groups, width, rectify))


def with_gradient(inputs, forward, backward):
    """forward(inputs), differentiated by backward(inputs, upstream): the hand-written gradient keeps only x."""

    @tf.autograph.experimental.do_not_convert
    @tf.custom_gradient
    def normalize(x):
        return forward(x), lambda upstream: backward(x, upstream)

    return normalize(inputs)


@functools.cache
def _compiled(depth: int, k: float, alpha: float, beta: float, groups: int, width: int, rectify: bool):
    """The two XLA functions for one layer's settings, made once per process: an eager call (a model called
    outside a compiled function, as evaluation's figures do) then reuses their trace and XLA compilation per
    input shape instead of compiling anew on every call."""
    return xla_passes(masked_window_sum(depth, groups, width), k, alpha, beta, rectify)


def masked_window_sum(depth: int, groups: int, width: int):
    """W over all channels at once: `depth` shifted slices of the channel axis zero-padded at both ends, each
    times a 0/1 mask per channel that drops the neighbours in the other tower. Per-tower padding (a
    [..., groups, width + depth - 1] tensor) made forward + backward 1.24-1.31x slower in float32 on an AVX-512 CPU: XLA
    emitted poor code for the short padded rows (bench/lrn.py)."""
    half = depth // 2
    channel = np.arange(groups * width) % width
    masks = {shift: ((channel + shift >= 0) & (channel + shift < width)).astype("float32")
             for shift in range(-half, half + 1) if shift}  # fmt: skip

    def window_sum(values):
        channels = values.shape[-1]
        padded = tf.pad(values, [[0, 0]] * (len(values.shape) - 1) + [[half, half]])
        total = values
        for shift, mask in masks.items():  # numpy masks: constants of the graph being traced
            total = total + padded[..., half + shift : half + shift + channels] * mask
        return total

    return window_sum


def xla_passes(window_sum, k: float, alpha: float, beta: float, rectify: bool = False):
    """The forward and the hand-written backward pass, each one XLA function, around a window sum."""
    activated = _activated(rectify)

    def denominator(x):
        return k + alpha * window_sum(tf.square(x))

    power = functools.partial(_power, beta=beta)

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def forward(x):
        a = activated(x)
        return tf.cast(a * power(denominator(a)), x.dtype)

    @tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
    def backward(x, upstream):
        a, g = activated(x), tf.cast(upstream, tf.float32)
        d = denominator(a)
        factor = power(d)
        inner = window_sum(g * a * factor / d)
        return tf.cast(_through_relu(x, g * factor - (2.0 * alpha * beta) * a * inner, rectify), x.dtype)

    return forward, backward


def _activated(rectify: bool):
    """x in float32, through the ReLU when LRN applies it."""

    def activated(x):
        x32 = tf.cast(x, tf.float32)
        return tf.nn.relu(x32) if rectify else x32

    return activated


def _through_relu(x, gradient, rectify: bool):
    """The gradient with respect to the ReLU's input: zero where x <= 0, as ReluGrad."""
    return tf.where(x > 0, gradient, tf.zeros_like(gradient)) if rectify else gradient


def _power(d, beta: float):
    if beta == 0.75:  # d ** -0.75 as rsqrt(d * sqrt(d)): ~2x faster than a general power
        return tf.math.rsqrt(d * tf.sqrt(d))
    return tf.pow(d, -beta)


def _bfloat16_form(inputs, depth: int, k: float, alpha: float, beta: float, width: int, rectify: bool):
    passes = _bfloat16_passes(depth, k, alpha, beta, width, rectify)
    window_sum, squares, normalized, inner_terms, input_gradient = passes

    @tf.autograph.experimental.do_not_convert
    @tf.custom_gradient
    def normalize(x):
        sums = window_sum(squares(x))

        def gradient(upstream):
            return input_gradient(x, sums, upstream, window_sum(inner_terms(x, sums, upstream)))

        return normalized(x, sums), gradient

    return normalize(inputs)


@functools.cache
def _bfloat16_passes(depth: int, k: float, alpha: float, beta: float, width: int, rectify: bool):
    """The bfloat16 form's steps for one layer's settings: the window sum as a bfloat16 matmul per tower, and
    three small XLA loops around it (made once per process, as _compiled's)."""
    band = band_matrix(width, depth)
    compiled = functools.partial(tf.function, jit_compile=True, autograph=False, reduce_retracing=True)
    activated = _activated(rectify)

    def window_sum(values):
        flat = tf.reshape(values, [-1, width])  # a row per pixel and tower
        return tf.reshape(tf.matmul(flat, tf.constant(band, tf.bfloat16)), tf.shape(values))

    def factors(x, sums):
        d = k + alpha * tf.cast(sums, tf.float32)
        return activated(x), d, _power(d, beta)

    @compiled
    def squares(x):
        return tf.cast(tf.square(activated(x)), tf.bfloat16)

    @compiled
    def normalized(x, sums):
        x32, _, factor = factors(x, sums)
        return tf.cast(x32 * factor, tf.bfloat16)

    @compiled
    def inner_terms(x, sums, upstream):
        x32, d, factor = factors(x, sums)
        return tf.cast(tf.cast(upstream, tf.float32) * x32 * factor / d, tf.bfloat16)

    @compiled
    def input_gradient(x, sums, upstream, inner):
        x32, _, factor = factors(x, sums)
        g, inner = tf.cast(upstream, tf.float32), tf.cast(inner, tf.float32)
        return tf.cast(_through_relu(x, g * factor - (2.0 * alpha * beta) * x32 * inner, rectify), tf.bfloat16)

    return window_sum, squares, normalized, inner_terms, input_gradient
