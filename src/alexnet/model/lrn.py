"""Local response normalization (paper, Sec. 3.3) as a Keras layer: keras.ops on every backend, and on
TensorFlow a form with a hand-written gradient that is ~1.5x cheaper to train (lrn_tensorflow.py)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="alexnet")
class LocalResponseNormalization(keras.layers.Layer):
    """b_i = a_i / (k + alpha * sum_{j = i - n/2 .. i + n/2} a_j^2) ** beta, over adjacent channels.

    Sec. 3.3: k=2, n=5, alpha=1e-4, beta=0.75, and the sum is not divided by n, as printed (this is what
    tf.nn.local_response_normalization computes). alpha_over_n=True uses alpha / n instead, as
    cuda-convnet and Caffe do.

    groups > 1 keeps each window inside its own group of channels: with two towers each GPU normalized
    only its own kernel maps (Sec. 3.2). Computed in float32 (the squares underflow in float16), returned
    in the input dtype.

    activation: applied to the inputs first (a = activation(inputs)), so the layer can take a convolution's
    linear output: Sec. 3.3 normalizes "after applying the ReLU nonlinearity". With "relu" on TensorFlow the
    ReLU runs inside LRN's own loops, forward and backward, which saves the ReLU's separate backward pass.
    """

    def __init__(
        self,
        depth: int = 5,
        k: float = 2.0,
        alpha: float = 1e-4,
        beta: float = 0.75,
        alpha_over_n: bool = False,
        groups: int = 1,
        activation: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if depth < 1 or depth % 2 == 0:
            raise ValueError(f"LRN depth must be an odd positive number of channels, got {depth}")
        self.depth = depth
        self.k = k
        self.alpha = alpha
        self.beta = beta
        self.alpha_over_n = alpha_over_n
        self.groups = groups
        self.activation = activation
        self._activate = keras.activations.get(activation)
        self._window = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels % self.groups:
            raise ValueError(f"LRN: {channels} channels do not split into {self.groups} groups")
        # The window sum as one matmul with a banded (block-diagonal for groups) 0/1 matrix: on CPU this
        # is ~2x faster than summing shifted slices or a cumulative sum, and than tf.nn.lrn's own kernel.
        tower = band_matrix(channels // self.groups, self.depth)
        self._window = np.kron(np.eye(self.groups, dtype="float32"), tower)

    def call(self, inputs):
        if keras.backend.backend() == "tensorflow":
            from alexnet.model.lrn_tensorflow import local_response_normalization

            rectify = self.activation == "relu"
            inputs = inputs if rectify else self._activate(inputs)
            return local_response_normalization(
                inputs, self.depth, self.k, self._alpha(), self.beta, self.groups, rectify=rectify
            )
        return self.call_ops(inputs)

    def _alpha(self) -> float:
        return self.alpha / self.depth if self.alpha_over_n else self.alpha

    def call_ops(self, inputs):
        """The backend-neutral form (keras.ops, autodiff gradient)."""
        x = ops.cast(self._activate(inputs), "float32")
        alpha = self._alpha()
        square_sum = ops.matmul(ops.square(x), ops.convert_to_tensor(self._window))
        denominator = self.k + alpha * square_sum
        if self.beta == 0.75:
            # d ** -0.75 as rsqrt(d) * rsqrt(sqrt(d)): ~2x faster than a general power, forward and backward.
            scale = ops.rsqrt(denominator) * ops.rsqrt(ops.sqrt(denominator))
        else:
            scale = ops.power(denominator, -self.beta)
        return ops.cast(x * scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "depth": self.depth,
            "k": self.k,
            "alpha": self.alpha,
            "beta": self.beta,
            "alpha_over_n": self.alpha_over_n,
            "groups": self.groups,
            "activation": self.activation,
        }


def band_matrix(width: int, depth: int) -> np.ndarray:
    """0/1 [width, width]: channel j is in channel i's window of `depth` channels. Symmetric, so one matrix
    serves the forward and the backward window sum."""
    index = np.arange(width)
    return (np.abs(index[:, None] - index[None, :]) <= depth // 2).astype("float32")
