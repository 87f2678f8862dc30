"""`train.onednn`: forced by params, an explicit TF_ENABLE_ONEDNN_OPTS honoured under auto, otherwise timed once
per CPU kind and cached; the choice is printed beside the precision and recorded in MLflow's tags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from pipeline_copy import read_params, small_params

from alexnet import backend, cpu
from alexnet.config import ConfigError, parse

OFF = {cpu.ONEDNN_SWITCH: "0"}


class Timings:
    """A stand-in for the two child processes: returns the given rates and counts the calls."""

    def __init__(self, on: float, off: float):
        self.rates, self.calls = {"on": on, "off": off}, 0

    def __call__(self, params_file):
        self.calls += 1
        return dict(self.rates)


@pytest.fixture
def params(tmp_path) -> dict:
    raw = read_params()
    raw["data"]["cache_dir"] = str(tmp_path / "cache")
    return raw


def cache_folder(params):
    return backend.onednn_cache_file(params["data"]["cache_dir"], {}).parent


def choose(params, measure, setting="auto", environ=None, untimed=None):
    return backend.choose_onednn(setting, params, "params.yaml", environ or {}, measure, untimed)


@pytest.mark.parametrize("setting", [True, False])
def test_params_force_it_over_the_environment_and_time_nothing(params, setting):
    timings = Timings(on=100.0, off=200.0)
    choice = choose(params, timings, setting, environ={cpu.ONEDNN_SWITCH: "0" if setting else "1"})
    assert (choice.enabled, choice.source, timings.calls) == (setting, "params", 0)
    assert choice.line().startswith(f"oneDNN {'on' if setting else 'off'} (params")


@pytest.mark.parametrize(("value", "enabled"), [("0", False), ("1", True), ("false", False), ("True", True)])
def test_auto_honours_an_explicit_environment(params, value, enabled):
    timings = Timings(on=500.0, off=100.0)
    choice = choose(params, timings, environ={cpu.ONEDNN_SWITCH: value})
    assert (choice.enabled, choice.source, timings.calls) == (enabled, "environment", 0)


def test_auto_times_once_per_cpu_kind_and_reuses_the_cache(params, monkeypatch):
    faster_on = Timings(on=243.4, off=131.8)
    first = choose(params, faster_on)
    assert (first.enabled, first.source, faster_on.calls) == (True, "measured", 1)
    assert "on 243.4 img/s, off 131.8 img/s" in first.line()
    again = choose(params, Timings(on=1.0, off=999.0))
    assert (again.enabled, again.source, again.rates) == (True, "cached", {"on": 243.4, "off": 131.8})

    monkeypatch.setenv(cpu.ONEDNN_ISA_CAP, "AVX2")  # another kernel path is another CPU kind: timed again
    faster_off = Timings(on=100.0, off=150.0)
    capped = choose(params, faster_off)
    assert (capped.enabled, capped.source, faster_off.calls) == (False, "measured", 1)
    assert "ISA cap AVX2" in capped.line() and capped.record()["onednn_isa_cap"] == "AVX2"
    assert len(list(cache_folder(params).glob("*.json"))) == 2


def test_auto_keeps_tensorflows_default_when_it_cannot_time(params):
    timings = Timings(on=500.0, off=100.0)
    loaded = choose(params, timings, untimed="TensorFlow was loaded before alexnet.backend")
    assert loaded.enabled == cpu.tensorflow_default_onednn() and timings.calls == 0
    assert loaded.source == "tensorflow default: TensorFlow was loaded before alexnet.backend"

    def broken(params_file):
        raise RuntimeError("the oneDNN on timing failed: out of memory")

    failed = choose(params, broken)
    assert failed.source == "tensorflow default: the oneDNN on timing failed: out of memory"
    assert not list(cache_folder(params).glob("*.json"))


def test_tensorflows_own_rule_and_the_environment_as_benchmarks_record_them():
    assert not cpu.tensorflow_default_onednn({"avx2", "fma", "avx512f"})
    assert cpu.tensorflow_default_onednn({"avx2", "avx512f", "avx512_bf16"})
    assert cpu.tensorflow_default_onednn({"avx2", "amx_tile"})
    assert cpu.onednn_in_effect({cpu.ONEDNN_SWITCH: "0", cpu.ONEDNN_ISA_CAP: "AVX2"}) == {
        "onednn": False, "onednn_from": "TF_ENABLE_ONEDNN_OPTS=0", "onednn_isa_cap": "AVX2"}  # fmt: skip
    assert cpu.onednn_in_effect({})["onednn"] == cpu.tensorflow_default_onednn()
    assert cpu.xla_isa_cap({"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_cpu_max_isa=AVX2"}) == "AVX2"
    assert cpu.xla_isa_cap({"XLA_FLAGS": "--xla_dump_to=/tmp/x"}) is None and cpu.xla_isa_cap({}) is None


def test_the_avx2_emulation_caps_torchs_code_outside_onednn_too():
    emulated = {cpu.ONEDNN_ISA_CAP: "avx2"}
    assert cpu.torch_code_caps(emulated) == {cpu.MKL_ISA_CAP: "AVX2", cpu.TORCH_ISA_CAP: "avx2"}
    # torch.compile'd: its generated loops at 256 bits; ATen's kernels stay (the compiled backward fails there)
    assert cpu.torch_code_caps(emulated, compiled=True) == {cpu.MKL_ISA_CAP: "AVX2", "inductor_simdlen": 256}
    assert cpu.torch_code_caps({}) == {} and cpu.torch_code_caps({}, compiled=True) == {}
    assert cpu.torch_code_caps({cpu.ONEDNN_ISA_CAP: "AVX512_CORE"}) == {}


def test_a_bad_setting_is_one_line_naming_the_key(raw_params):
    assert backend.untimed({"onednn": "yes"}) == "train.onednn is 'yes'"  # never timed before config says so
    raw_params["train"]["onednn"] = "yes"
    with pytest.raises(ConfigError, match=r"train.onednn: .*'auto'.*bool.*\(got 'yes'\); fix it in params.yaml"):
        parse(raw_params)


def test_a_stage_process_applies_the_params_before_tensorflow_loads(tmp_path):
    """A fresh process: params.yaml's `false` reaches TensorFlow (and beats the caller's environment)."""
    raw = read_params()
    raw["train"]["onednn"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    script = "import os, alexnet.backend as b; print(b.ONEDNN.line(), os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**__import__("os").environ, cpu.ONEDNN_SWITCH: "1"}, timeout=60)  # fmt: skip
    assert result.stdout.strip() == "oneDNN off (params) 0", result.stderr


@pytest.mark.slow
def test_the_child_process_times_the_configured_model(tmp_path, monkeypatch):
    raw = read_params()
    small_params(raw)
    raw["model"].update(width=0.25, fc_units=64)
    raw["train"].update(precision="float32", batch_size=8)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    rates = backend.time_both(params_file)
    assert set(rates) == {"on", "off"} and all(rate > 0 for rate in rates.values())
    raw["train"]["precision"] = "nonsense"
    params_file.write_text(yaml.safe_dump(raw))
    with pytest.raises(RuntimeError, match="oneDNN on timing failed: .*train.precision"):
        backend.time_onednn_in_child(True, params_file)


def test_precision_cache_is_keyed_by_the_onednn_state(tmp_path, monkeypatch):
    """A bfloat16 rate timed with oneDNN off must not decide for a process with it on."""
    from test_precision import Timings as PolicyTimings
    from test_precision import choose as choose_precision

    from alexnet import precision

    timings = PolicyTimings({"float32": 600.0, "mixed_bfloat16": 430.0, "mixed_float16": 900.0})
    monkeypatch.setattr(precision, "ONEDNN", backend.OneDnnChoice(False, "environment"))
    choose_precision(tmp_path, timings)
    monkeypatch.setattr(precision, "ONEDNN", backend.OneDnnChoice(True, "environment"))
    assert choose_precision(tmp_path, timings).source == "measured" and timings.calls == 2
    keys = [json.loads(path.read_text())["key"] for path in (tmp_path / precision.CACHE_FOLDER).glob("*.json")]
    assert sorted(key["onednn"][0] for key in keys) == [False, True]


def test_training_prints_the_choice_beside_the_precision_and_tags_it(tmp_path, capsys, monkeypatch):
    from pipeline_copy import small_raw_data

    from alexnet import callbacks, checkpoint, training
    from alexnet.data.input import load_prepared
    from alexnet.data.preprocess import preprocess
    from alexnet.tracking import Tracker

    class Recording(Tracker):
        tags: dict = {}

        def set_tags(self, tags):
            Recording.tags = {**Recording.tags, **tags}

    def one_epoch(raw):
        raw["train"].update(epochs=1, precision="float32")
        raw["tracking"]["enabled"] = False

    estimates = []
    estimate_line = callbacks.estimate_line
    monkeypatch.setattr(callbacks, "estimate_line", lambda *args: estimates.append(args) or estimate_line(*args))
    _, cfg, raw_dir = small_raw_data(tmp_path, one_epoch)
    preprocess(cfg.preprocess, raw_dir, tmp_path / "prepared", progress=False)
    folder = tmp_path / "run"
    folder.mkdir()
    run = checkpoint.TrainingRun(folder / "model.keras", folder / "history.csv", folder / "checkpoints", "x")
    data = load_prepared(tmp_path / "prepared")
    training.train(cfg, data, run, Recording(cfg.tracking), state=None, verbose=0)
    state = "on" if backend.ONEDNN.enabled else "off"
    out = capsys.readouterr().out
    assert f"precision: float32 (forced); oneDNN {state} (" in out
    assert "estimate: an epoch takes" in out and "their evaluations about" in out
    ((epoch_seconds, epochs_left, epochs, trainings, evaluation_seconds),) = estimates  # once, after the first epoch
    passes = callbacks.val_passes(cfg, data.counts["train"], data.counts["val"])
    assert (epochs_left, epochs, trainings) == (0, 1, len(cfg.ablations.run) * len(cfg.ablations.seeds))
    assert 0 < evaluation_seconds / passes < epoch_seconds  # the validation pass was timed, within the epoch
    assert Recording.tags["onednn"] == state and Recording.tags["onednn_source"] == backend.ONEDNN.source
    assert Recording.tags["onednn_isa_cap"] == (__import__("os").environ.get(cpu.ONEDNN_ISA_CAP) or "none")
