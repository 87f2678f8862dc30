"""The network against the paper's numbers (Sec. 3, 5) and the ablation switches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from alexnet.config import ModelConfig
from alexnet.model import LocalResponseNormalization, TowerConv2D, build_model

PAPER_PARAMS = 60_965_224
ONE_TOWER_PARAMS = 62_378_344
ONE_GPU_PARAMS = 59_798_312  # footnote 2's one-GPU net at 1000 classes
TORCHVISION_PARAMS = 61_100_840


@pytest.fixture
def model_config(raw_params):
    def make(**overrides) -> ModelConfig:
        return ModelConfig(**{**raw_params["model"], **overrides})

    return make


@pytest.fixture(scope="module")
def paper_model():
    raw = {
        "architecture": "alexnet", "towers": 2, "activation": "relu", "dropout": 0.5, "dropout_scaling": "inverted",
        "lrn": True, "lrn_alpha_over_n": False, "pooling": "overlapping", "init": "paper", "width": 1.0,
        "fc_units": 4096,
    }
    keras.utils.set_random_seed(0)
    return build_model(ModelConfig(**raw), num_classes=1000, input_size=224)


@pytest.fixture
def float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def full_size(model_config, **overrides) -> ModelConfig:
    return model_config(width=1.0, fc_units=4096, **overrides)


def spatial_sizes(model) -> dict[str, int]:
    return {layer.name: layer.output.shape[1] for layer in model.layers if len(layer.output.shape) == 4}


def test_paper_parameter_count(paper_model):
    assert paper_model.count_params() == PAPER_PARAMS


def test_one_tower_parameter_count(model_config):
    model = build_model(full_size(model_config, towers=1), 1000, 224)
    assert model.count_params() == ONE_TOWER_PARAMS


def test_one_gpu_is_footnote_twos_net(model_config):
    model = build_model(full_size(model_config, architecture="one_gpu", towers=1), 1000, 224)
    assert model.count_params() == ONE_GPU_PARAMS
    convs = ("conv1", "conv2", "conv3", "conv4", "conv5")
    kernels = {name: tuple(model.get_layer(name).kernel.shape) for name in convs}
    # half the kernels in conv1-conv4, each seeing every map of the layer below; conv5 and the FC layers as the paper
    assert kernels == {
        "conv1": (11, 11, 3, 48), "conv2": (5, 5, 48, 128), "conv3": (3, 3, 128, 192),
        "conv4": (3, 3, 192, 192), "conv5": (3, 3, 192, 256),
    }  # fmt: skip
    assert [model.get_layer(name).units for name in ("fc6", "fc7", "fc8")] == [4096, 4096, 1000]
    assert spatial_sizes(model)["pool5"] == 6
    assert any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)


def test_one_gpu_needs_one_tower(model_config):
    with pytest.raises(ValueError, match="one_gpu"):
        model_config(architecture="one_gpu", towers=2)


def test_one_weird_trick_matches_torchvision(model_config):
    model = build_model(full_size(model_config, architecture="one_weird_trick", towers=1, lrn=False), 1000, 224)
    assert model.count_params() == TORCHVISION_PARAMS
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)
    assert [model.get_layer(f"conv{i}").filters for i in range(1, 6)] == [64, 192, 384, 256, 256]


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_every_conv_output_is_activated_once_and_lrn_follows_the_activation(model_config, activation):
    """Sec. 3.3: LRN "after applying the ReLU nonlinearity". With LRN, conv1 and conv2 are linear and lrn1 and lrn2
    apply the activation before normalizing; without LRN every convolution applies it."""
    for lrn in (True, False):
        model = build_model(model_config(activation=activation, lrn=lrn), 4, 64)
        activations = {f"conv{i}": model.get_layer(f"conv{i}").activation.__name__ for i in range(1, 6)}
        linear = {"conv1", "conv2"} if lrn else set()
        assert activations == {name: "linear" if name in linear else activation for name in activations}
        normalizers = [layer for layer in model.layers if isinstance(layer, LocalResponseNormalization)]
        assert [(layer.name, layer.activation) for layer in normalizers] == (
            [("lrn1", activation), ("lrn2", activation)] if lrn else []
        )
        assert [layer.name for layer in model.layers if layer.name.startswith(("conv", "lrn", "pool"))] == (
            ["conv1", "lrn1", "pool1", "conv2", "lrn2", "pool2"] if lrn else ["conv1", "pool1", "conv2", "pool2"]
        ) + ["conv3", "conv4", "conv5", "pool5"]


def test_layer_shapes_at_224(paper_model):
    sizes = spatial_sizes(paper_model)
    assert [sizes[name] for name in ("conv1", "pool1", "pool2", "conv3", "conv5", "pool5")] == [
        55, 27, 13, 13, 13, 6,
    ]
    channels = [paper_model.get_layer(f"conv{i}").output.shape[-1] for i in range(1, 6)]
    assert channels == [96, 256, 384, 384, 256]
    assert paper_model.get_layer("fc6").input.shape[-1] == 6 * 6 * 256
    assert paper_model.output.shape == (None, 1000)


def test_towers_see_only_their_own_maps(paper_model):
    assert [paper_model.get_layer(f"conv{i}").kernel.shape[2] for i in range(1, 6)] == [3, 48, 256, 192, 192]


@pytest.mark.parametrize("size", [56, 64, 96])
def test_small_inputs_build_and_run(model_config, size):
    model = build_model(model_config(), num_classes=4, input_size=size)
    logits = model(np.zeros((2, size, size, 3), "float32"))
    assert logits.shape == (2, 4)


def test_init_statistics(paper_model):
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        kernel, bias = (np.asarray(w) for w in paper_model.get_layer(name).get_weights())
        assert abs(kernel.mean()) < 2e-3, name
        assert kernel.std() == pytest.approx(0.01, rel=0.1), name
        expected_bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        np.testing.assert_array_equal(bias, expected_bias, err_msg=name)


@pytest.mark.parametrize(("init", "value"), [("caffe", 0.1), ("zero", 0.0)])
def test_bias_init_variants(model_config, init, value):
    model = build_model(model_config(init=init), 4, 64)
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        np.testing.assert_allclose(model.get_layer(name).bias.numpy(), value)
    for name in ("conv1", "conv3", "fc8"):
        np.testing.assert_array_equal(model.get_layer(name).bias.numpy(), 0.0)


def test_glorot_init_is_not_the_papers(model_config):
    model = build_model(model_config(init="glorot"), 4, 64)
    for name in ("conv1", "conv2", "fc6", "fc8"):
        layer = model.get_layer(name)
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
        assert layer.kernel.numpy().std() != pytest.approx(0.01, rel=0.1), name


def test_width_scales_channels_and_keeps_towers_even(model_config):
    model = build_model(model_config(width=0.3), 4, 64)
    channels = [model.get_layer(f"conv{i}").filters for i in range(1, 6)]
    assert channels == [28, 76, 116, 116, 76]
    assert all(c % 2 == 0 for c in channels)


def test_logits_are_float32_under_mixed_precision(model_config, float32_policy_after):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_model(model_config(), 4, 64)
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model(np.zeros((1, 64, 64, 3), "float32")).dtype == "float32"


# --- ablation switches --------------------------------------------------------------------------------


def test_tanh_activation(model_config):
    model = build_model(model_config(activation="tanh", lrn=True), 4, 64)
    for name in ("conv3", "conv5", "fc6", "fc7"):
        assert model.get_layer(name).activation is keras.activations.tanh
    assert model.get_layer("lrn1").activation == "tanh"  # conv1's activation, applied before LRN
    assert model.get_layer("fc8").activation is keras.activations.linear


def test_dropout_zero_has_no_dropout_layers(model_config):
    with_dropout = build_model(model_config(dropout=0.5), 4, 64)
    rates = [layer.rate for layer in with_dropout.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.5, 0.5]
    without = build_model(model_config(dropout=0.0), 4, 64)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in without.layers)


def test_no_lrn(model_config):
    model = build_model(model_config(lrn=False), 4, 64)
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)
    assert model.count_params() == build_model(model_config(lrn=True), 4, 64).count_params()


def test_non_overlapping_pooling_keeps_paper_sizes(model_config):
    model = build_model(full_size(model_config, pooling="non_overlapping"), 1000, 224)
    pools = [model.get_layer(name) for name in ("pool1", "pool2", "pool5")]
    assert all(p.pool_size == (2, 2) and p.strides == (2, 2) for p in pools)
    assert [p.output.shape[1] for p in pools] == [27, 13, 6]  # Sec. 3.4: same output dimensions
    assert model.count_params() == PAPER_PARAMS


def test_one_tower_convs_see_all_maps(model_config):
    model = build_model(model_config(towers=1), 4, 64)
    assert all(model.get_layer(f"conv{i}").groups == 1 for i in range(1, 6))
    assert model.get_layer("conv2").kernel.shape[2] == model.get_layer("conv1").filters


# --- layers -------------------------------------------------------------------------------------------


def paper_lrn(a: np.ndarray, k=2.0, n=5, alpha=1e-4, beta=0.75) -> np.ndarray:
    """Sec. 3.3, transcribed: b^i = a^i / (k + alpha * sum_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} (a^j)^2)^beta."""
    channels = a.shape[-1]
    b = np.empty_like(a, dtype=np.float64)
    for i in range(channels):
        window = a[..., max(0, i - n // 2) : min(channels - 1, i + n // 2) + 1].astype(np.float64)
        b[..., i] = a[..., i] / (k + alpha * np.sum(window**2, axis=-1)) ** beta
    return b


def test_lrn_matches_tensorflow_and_the_paper():
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((2, 5, 5, 16)) * 30).astype("float32")  # large enough that LRN bites
    ours = np.asarray(LocalResponseNormalization()(a))
    reference = tf.nn.local_response_normalization(a, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours, paper_lrn(a), rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours, a / 2.0**0.75, rtol=1e-3)


def test_lrn_alpha_over_n_and_general_beta():
    a = (np.random.default_rng(1).standard_normal((1, 3, 3, 8)) * 30).astype("float32")
    ours = LocalResponseNormalization(alpha_over_n=True, beta=0.5)(a)
    np.testing.assert_allclose(np.asarray(ours), paper_lrn(a, alpha=1e-4 / 5, beta=0.5), rtol=1e-5)


def test_lrn_towers_normalize_their_own_maps():
    a = (np.random.default_rng(2).standard_normal((1, 2, 2, 12)) * 30).astype("float32")
    ours = np.asarray(LocalResponseNormalization(groups=2)(a))
    expected = np.concatenate([paper_lrn(a[..., :6]), paper_lrn(a[..., 6:])], axis=-1)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_lrn_keeps_input_dtype_in_bfloat16():
    a = tf.cast(tf.random.normal((1, 4, 4, 8)) * 30, tf.bfloat16)
    out = LocalResponseNormalization(dtype="mixed_bfloat16")(a)
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(
        tf.cast(out, tf.float32).numpy(), paper_lrn(tf.cast(a, tf.float32).numpy()), rtol=2e-2, atol=1e-2
    )


def test_tower_conv_equals_grouped_conv():
    x = np.random.default_rng(3).standard_normal((2, 9, 9, 8)).astype("float32")
    towers = TowerConv2D(6, 3, padding="same", groups=2)
    grouped = keras.layers.Conv2D(6, 3, padding="same", groups=2)
    towers.build(x.shape)
    grouped.build(x.shape)
    towers.set_weights(grouped.get_weights())
    np.testing.assert_allclose(np.asarray(towers(x)), np.asarray(grouped(x)), rtol=1e-4, atol=1e-5)


def test_model_round_trips_through_keras_file(model_config, tmp_path):
    model = build_model(model_config(), 4, 64)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(4).standard_normal((2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


# --- other backends -----------------------------------------------------------------------------------


def test_builds_and_trains_under_jax_backend(raw_params):
    env = {**os.environ, "KERAS_BACKEND": "jax"}  # jax is a dev dependency: this never skips
    script = textwrap.dedent(
        f"""
        import keras, numpy as np
        assert keras.backend.backend() == "jax"
        from alexnet.config import ModelConfig
        from alexnet.model import build_model
        from alexnet.optimizer import PaperSGD
        model = build_model(ModelConfig(**{raw_params["model"]!r}), 4, 64)
        model.compile(PaperSGD(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = model.train_on_batch(np.random.rand(4, 64, 64, 3).astype("float32"), np.arange(4))
        assert np.isfinite(loss), loss
        print("ok", loss)
        """
    )
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout
