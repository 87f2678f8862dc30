"""The network of Krizhevsky, Sutskever, Hinton (2012), Sec. 3, as a Keras functional model.

Shapes at input_size=224 (two towers, width 1.0):

    image 224x224x3 -> pad1 228 -> conv1 55x55x96 -> lrn1 (ReLU, then LRN) -> pool1 27x27x96
    -> conv2 27x27x256 (each tower sees its own 48 maps) -> lrn2 (ReLU, then LRN) -> pool2 13x13x256
    -> conv3 13x13x384 (sees both towers) -> conv4 13x13x384 (own tower) -> conv5 13x13x256 (own tower)
    -> pool5 6x6x256 -> fc6 4096 -> drop6 -> fc7 4096 -> drop7 -> fc8 num_classes (logits, float32)

60,965,224 parameters for 1000 classes; 62,378,344 with one tower; 59,798,312 for the one-GPU net of
footnote 2 (architecture one_gpu: half the kernels in conv1-conv4, conv5 and the FC layers unchanged).

Given a seed, every layer's initial weights and dropout masks come from (seed, layer name) alone, so two
variants trained with the same seed start from the same weights wherever their layer shapes agree.

Dropout (Sec. 4.2) departs from the paper in its scaling. Keras' Dropout is inverted: in training it zeroes
a unit with probability `model.dropout` and multiplies the kept ones by 1 / (1 - dropout), 2 at 0.5; at test it
passes outputs unchanged. The paper keeps the kept units as they are and multiplies the outputs by 0.5 at test.
Both give the same function at test, but in training fc7 and fc8 (after drop6, drop7) see inputs twice as
large: with the paper's init (std 0.01) and learning rate they behave as if initialised at std 0.02 and
trained at 4x the rate. `model.dropout_scaling: paper` uses PaperDropout, the paper's scaling.
"""

from __future__ import annotations

import zlib

import keras
from keras import layers, ops

from alexnet.config import ModelConfig
from alexnet.model.lrn import LocalResponseNormalization

# conv1..conv5 channels (width 1.0). alexnet: Sec. 3.5 and Figure 2. one_weird_trick: the single-column
# layout of Krizhevsky (2014) as torchvision's models/alexnet.py builds it (no LRN, one tower).
CHANNELS = {
    "alexnet": (96, 256, 384, 384, 256),
    # Footnote 2: "The one-GPU net actually has the same number of kernels as the two-GPU net in the final
    # convolutional layer", the others halved (48, 128, 192, 192); the paper's two-tower claim is against it.
    "one_gpu": (48, 128, 192, 192, 256),
    "one_weird_trick": (64, 192, 384, 256, 256),
}
# Sec. 5: "We initialized the neuron biases in the second, fourth, and fifth convolutional layers, as
# well as in the fully-connected hidden layers, with the constant 1 ... remaining layers with 0."
BIASED_LAYERS = ("conv2", "conv4", "conv5", "fc6", "fc7")
BIAS_VALUE = {"paper": 1.0, "caffe": 0.1, "zero": 0.0, "glorot": 0.0}
WEIGHT_STDDEV = 0.01  # Sec. 5: weights from a zero-mean Gaussian with standard deviation 0.01


@keras.saving.register_keras_serializable(package="alexnet")
class TowerConv2D(layers.Conv2D):
    """Conv2D(groups=g) computed as g ordinary convolutions on channel slices, then concatenated.

    Same kernel shape, weights and result as keras.layers.Conv2D(groups=g); on CPU TensorFlow's grouped
    convolution trains ~6x slower than this formulation (measured on 2 cores, float32 and bfloat16).
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        tower_inputs = ops.split(inputs, self.groups, axis=-1)
        tower_kernels = ops.split(kernel, self.groups, axis=-1)
        towers = zip(tower_inputs, tower_kernels, strict=True)
        return ops.concatenate([layers.Conv2D.convolution_op(self, x, w) for x, w in towers], axis=-1)


@keras.saving.register_keras_serializable(package="alexnet")
class PaperDropout(layers.Dropout):
    """Dropout scaled as in the paper (Sec. 4.2, `model.dropout_scaling: paper`): in training the kept units pass
    unchanged, at test every output is multiplied by 1 - rate ("we use all the neurons but multiply their outputs
    by 0.5"). That is Keras' inverted Dropout times (1 - rate): the same masks for the same seed."""

    def call(self, inputs, training=False):
        return super().call(inputs, training=training) * (1.0 - self.rate)


def build_model(cfg: ModelConfig, num_classes: int, input_size: int, seed: int | None = None) -> keras.Model:
    """AlexNet as a functional model: mean-subtracted float images in, float32 logits out.

    seed: initial weights and dropout masks drawn from (seed, layer name); None draws from Keras' global
    generator.

    cfg.towers, cfg.lrn and the layout describe the paper's network; architecture 'one_weird_trick'
    has one tower and no LRN (config.py refuses other values) and, like torchvision, applies dropout
    to the inputs of fc6 and fc7 rather than to their outputs.
    """
    one_weird_trick = cfg.architecture == "one_weird_trick"
    towers = cfg.towers
    c1, c2, c3, c4, c5 = (_scaled(channels, cfg.width, towers) for channels in CHANNELS[cfg.architecture])
    make = _Layers(cfg, seed)
    conv, dense, pool, dropout = make.conv, make.dense, make.pool, make.dropout
    normalized_conv = make.normalized_conv

    inputs = keras.Input((input_size, input_size, 3), name="image")
    # Sec. 3.5 says 224x224x3 in, 55x55 out of conv1; that arithmetic needs 227, so pad 2 each side
    # (as torchvision does): (224 + 4 - 11) // 4 + 1 = 55.
    x = layers.ZeroPadding2D(2, name="pad1")(inputs)
    x = pool(normalized_conv(c1, 11, "conv1", "lrn1", strides=4, padding="valid")(x), "pool1")
    x = pool(normalized_conv(c2, 5, "conv2", "lrn2", groups=towers)(x), "pool2")
    x = conv(c3, 3, "conv3")(x)
    x = conv(c4, 3, "conv4", groups=towers)(x)
    x = conv(c5, 3, "conv5", groups=towers)(x)
    x = pool(x, "pool5")
    x = layers.Flatten(name="flatten")(x)
    if one_weird_trick:
        x = dense(cfg.fc_units, "fc6", cfg.activation)(dropout(x, "drop6"))
        x = dense(cfg.fc_units, "fc7", cfg.activation)(dropout(x, "drop7"))
    else:
        x = dropout(dense(cfg.fc_units, "fc6", cfg.activation)(x), "drop6")
        x = dropout(dense(cfg.fc_units, "fc7", cfg.activation)(x), "drop7")
    # float32 logits under a mixed precision policy: the softmax and loss stay exact.
    logits = dense(num_classes, "fc8", dtype="float32")(x)
    return keras.Model(inputs, logits, name=cfg.architecture)


class _Layers:
    """The layers build_model wires, as cfg says; each draws its initial weights or dropout mask from (seed, name)."""

    def __init__(self, cfg: ModelConfig, seed: int | None):
        self.cfg, self.seed = cfg, seed
        # Sec. 3.4: overlapping pooling z=3, s=2; non-overlapping z=s=2 gives the same sizes (55, 27, 13, 6).
        self.pool_size = 3 if cfg.pooling == "overlapping" else 2

    def conv(self, filters, kernel, name, strides=1, padding="same", groups=1, activated=True):
        cfg = self.cfg
        return TowerConv2D(
            filters, kernel, strides=strides, padding=padding, groups=groups,
            activation=cfg.activation if activated else None,
            kernel_initializer=_weights(cfg, layer_seed(self.seed, name)), bias_initializer=_bias(cfg, name),
            name=name,
        )

    def dense(self, units, name, activation=None, dtype=None):
        return layers.Dense(
            units, activation=activation, kernel_initializer=_weights(self.cfg, layer_seed(self.seed, name)),
            bias_initializer=_bias(self.cfg, name), name=name, dtype=dtype,
        )

    def normalized_conv(self, filters, kernel, name, lrn_name, **conv_args):
        """The convolution, its activation, then LRN (Sec. 3.3: "after applying the ReLU nonlinearity"). With LRN
        on, the LRN layer applies the activation: on TensorFlow it folds the ReLU's backward pass into its own."""
        cfg = self.cfg
        if not cfg.lrn:
            return self.conv(filters, kernel, name, **conv_args)
        linear = self.conv(filters, kernel, name, activated=False, **conv_args)
        lrn = LocalResponseNormalization(alpha_over_n=cfg.lrn_alpha_over_n, groups=cfg.towers,
                                         activation=cfg.activation, name=lrn_name)  # fmt: skip
        return lambda x: lrn(linear(x))

    def pool(self, x, name):
        # Small inputs (e.g. 56) leave pool5 a 2x2 map; 'same' padding then keeps one output instead of
        # failing. Maps at least pool_size wide use 'valid', the paper's sizes.
        padding = "valid" if x.shape[1] >= self.pool_size else "same"
        return layers.MaxPooling2D(self.pool_size, strides=2, padding=padding, name=name)(x)

    def dropout(self, x, name):
        cfg = self.cfg
        kind = PaperDropout if cfg.dropout_scaling == "paper" else layers.Dropout
        return kind(cfg.dropout, seed=layer_seed(self.seed, name), name=name)(x) if cfg.dropout > 0 else x


def _scaled(channels: int, width: float, towers: int) -> int:
    """round(channels * width), kept a positive multiple of the number of towers."""
    return max(towers, towers * round(channels * width / towers))


def layer_seed(seed: int | None, layer_name: str) -> int | None:
    """A seed fixed by (run seed, layer name) alone: the same layer of two variants draws the same numbers."""
    return None if seed is None else zlib.crc32(f"{seed}/{layer_name}".encode()) & 0x7FFFFFFF


def _weights(cfg: ModelConfig, seed: int | None) -> keras.initializers.Initializer:
    # Not the paper: Glorot-uniform weights and zero biases, for short CPU runs where N(0, 0.01) with
    # biases of 1 leaves the loss flat for many epochs (as Caffe's reproduction reported).
    if cfg.init == "glorot":
        return keras.initializers.GlorotUniform(seed=seed)
    return keras.initializers.RandomNormal(mean=0.0, stddev=WEIGHT_STDDEV, seed=seed)


def _bias(cfg: ModelConfig, layer_name: str) -> keras.initializers.Initializer:
    value = BIAS_VALUE[cfg.init] if layer_name in BIASED_LAYERS else 0.0
    return keras.initializers.Constant(value)
