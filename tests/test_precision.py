"""`train.precision: auto` picks the policy that measured faster, caches it per machine and model shape."""

from __future__ import annotations

import json

import keras
import pytest

from alexnet import precision
from alexnet.config import parse
from alexnet.runtime import choose_precision


@pytest.fixture(autouse=True)
def float32_policy_after():
    yield
    keras.mixed_precision.set_global_policy("float32")


def tiny_model():
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, dtype="float32"),
        ]
    )
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


class Timings:
    """A stand-in for the timer: returns the given rates and counts the calls."""

    def __init__(self, rates: dict[str, float]):
        self.rates, self.calls = rates, 0

    def __call__(self, build, policies, input_shape, num_classes, batch_size):
        self.calls += 1
        return {policy: self.rates[policy] for policy in policies}


def choose(cache_dir, measure, shape_key=None, setting="auto"):
    return precision.choose(
        setting, tiny_model, (16, 16, 3), 3, 8, cache_dir, shape_key or {"width": 1.0}, measure=measure
    )


def test_auto_takes_the_faster_policy_and_reuses_the_cache(tmp_path):
    slow_bf16 = Timings({"float32": 600.0, "mixed_bfloat16": 430.0, "mixed_float16": 900.0})
    first = choose(tmp_path, slow_bf16)
    assert first.source == "measured" and slow_bf16.calls == 1
    assert first.policy in ("float32", "mixed_float16")  # CPU: float32 beats bf16; GPU: float16 does
    assert set(first.rates) in ({"float32", "mixed_bfloat16"}, {"mixed_float16", "mixed_bfloat16"})
    assert "auto chose" in first.line() and "430.0 img/s" in first.line()
    assert first.metrics()["precision_mixed_bfloat16_img_s"] == 430.0

    fast_bf16 = Timings({"float32": 100.0, "mixed_bfloat16": 1000.0, "mixed_float16": 100.0})
    again = choose(tmp_path, fast_bf16)
    assert fast_bf16.calls == 0, "the cached choice must be reused, not re-measured"
    assert (again.policy, again.source, again.rates) == (first.policy, "cached", first.rates)

    other_shape = choose(tmp_path, fast_bf16, shape_key={"width": 0.5})
    assert fast_bf16.calls == 1 and other_shape.policy == "mixed_bfloat16"
    assert len(list((tmp_path / precision.CACHE_FOLDER).glob("*.json"))) == 2


def test_a_corrupt_cache_file_is_measured_again(tmp_path):
    timings = Timings({"float32": 2.0, "mixed_bfloat16": 1.0, "mixed_float16": 2.0})
    choose(tmp_path, timings)
    (cached,) = (tmp_path / precision.CACHE_FOLDER).glob("*.json")
    cached.write_text("{not json")
    assert choose(tmp_path, timings).source == "measured" and timings.calls == 2
    assert json.loads(cached.read_text())["policy"] in ("float32", "mixed_float16")


def test_a_choice_cached_before_a_timing_revision_is_timed_again(tmp_path, monkeypatch):
    """A change that makes one policy faster (the bfloat16 LRN form) raises TIMING_REVISION: choices cached
    before it are measured again instead of kept."""
    choose(tmp_path, Timings({"float32": 600.0, "mixed_bfloat16": 430.0, "mixed_float16": 900.0}))
    monkeypatch.setattr(precision, "TIMING_REVISION", precision.TIMING_REVISION + 1)
    faster_bf16 = Timings({"float32": 600.0, "mixed_bfloat16": 1000.0, "mixed_float16": 100.0})
    again = choose(tmp_path, faster_bf16)
    assert faster_bf16.calls == 1 and again.source == "measured" and again.policy == "mixed_bfloat16"


def test_an_explicit_policy_forces_without_measuring(tmp_path):
    never = Timings({})
    choice = choose(tmp_path, never, setting="mixed_bfloat16")
    assert (choice.policy, choice.source, choice.rates, never.calls) == ("mixed_bfloat16", "forced", {}, 0)
    assert "forced" in choice.line() and choice.metrics() == {}
    assert not (tmp_path / precision.CACHE_FOLDER).exists()


def test_a_real_quick_calibration_of_a_tiny_model(tmp_path):
    keras.mixed_precision.set_global_policy("float32")
    rates = precision.time_policies(tiny_model, precision.CPU_CANDIDATES, (16, 16, 3), 3, 8, steps=2, rounds=1)
    assert set(rates) == set(precision.CPU_CANDIDATES) and all(rate > 0 for rate in rates.values())
    assert keras.mixed_precision.global_policy().name == "float32", "the caller's policy must be restored"


def test_training_calibrates_the_configured_model(tmp_path, raw_params, monkeypatch):
    raw_params["data"]["cache_dir"] = str(tmp_path)
    raw_params["model"].update(width=0.125, fc_units=16)
    raw_params["train"].update(crop=32, batch_size=4)
    raw_params["preprocess"]["size"] = max(raw_params["preprocess"]["size"], 32)
    cfg = parse(raw_params)
    seen = {}

    def measure(build, policies, input_shape, num_classes, batch_size):
        model = build()
        seen.update(shape=tuple(model.input_shape), classes=model.output_shape[-1], batch=batch_size)
        seen["compiled"] = model.compiled
        return {policy: float(index + 1) for index, policy in enumerate(policies)}  # the last is fastest

    monkeypatch.setattr(precision, "time_policies", measure)
    picked = choose_precision(cfg, num_classes=5, jit=False)
    assert seen == {"shape": (None, 32, 32, 3), "classes": 5, "batch": 4, "compiled": True}
    assert (picked.policy, picked.source) == ("mixed_bfloat16", "measured")
    assert choose_precision(cfg, num_classes=5, jit=False).source == "cached"
