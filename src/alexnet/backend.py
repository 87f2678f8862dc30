"""What the stages run on, settled before TensorFlow loads: the Keras backend and oneDNN.

`train.backend` (tensorflow | jax): Keras reads KERAS_BACKEND once, when it is first imported, so the stage
scripts import this module before anything that imports Keras: importing it sets KERAS_BACKEND from
./params.yaml.

`train.onednn` (auto | true | false): TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, when it loads, and by
default turns oneDNN on only on CPUs with AVX512-VNNI, AVX-VNNI, AVX512-BF16 or AMX. On an AVX2-only AMD
EPYC the default model trained 1.8x faster with it on (issue 22), so `auto` decides by timing: the first
process on a CPU kind times the baseline model with oneDNN on and off, each in a child process (the switch
cannot change inside one), and caches the faster per CPU kind (model, flags, ISA cap, cores, TensorFlow
version). Precedence: `true`/`false` in params.yaml; then an explicit TF_ENABLE_ONEDNN_OPTS in the
environment (CI runs the tests that way on other kernel paths); then the cache; then the timing.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from alexnet.cpu import ONEDNN_ISA_CAP, ONEDNN_SWITCH, cpu_kind, environment_onednn, tensorflow_default_onednn
from alexnet.quiet import import_tensorflow

BACKENDS = ("tensorflow", "jax")
ONEDNN_CACHE_FOLDER = "onednn"
PROBE_TIMEOUT_S = 600


def read_params(params_file: Path = Path("params.yaml")) -> dict:
    try:
        raw = yaml.safe_load(params_file.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def configured_backend(params_file: Path = Path("params.yaml")) -> str | None:
    """params.yaml's train.backend, or None if it cannot be read (config.load then reports why, by key)."""
    train = read_params(params_file).get("train")
    value = train.get("backend") if isinstance(train, dict) else None
    return value if value in BACKENDS else None


def select(backend: str | None) -> None:
    """Set KERAS_BACKEND, unless Keras is already loaded (then `require` names the mismatch)."""
    if backend and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend


def require(backend: str) -> str:
    """Fail with one line if Keras runs on another backend than params.yaml asks for; returns it."""
    import keras

    running = keras.backend.backend()
    if running != backend:
        raise ValueError(
            f"train.backend: params.yaml asks for '{backend}' but Keras was loaded with '{running}'; set "
            "train.backend in params.yaml's train section (not in a variant) and import alexnet.backend first"
        )
    return running


# -- oneDNN ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OneDnnChoice:
    """oneDNN on or off for this process; `rates` (images/s with it on and off) only when timed."""

    enabled: bool
    source: str  # params | environment | cached | measured | tensorflow default (why)
    rates: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        state = "on" if self.enabled else "off"
        cap = os.environ.get(ONEDNN_ISA_CAP)
        cap = f", ISA cap {cap}" if cap else ""
        rates = "".join(f", {name} {rate:.1f} img/s" for name, rate in self.rates.items())
        return f"oneDNN {state} ({self.source}{rates}{cap})"

    def record(self) -> dict:
        """For run.json and MLflow tags: the state, why, and the ISA cap."""
        return {"onednn": "on" if self.enabled else "off", "onednn_source": self.source,
                "onednn_isa_cap": os.environ.get(ONEDNN_ISA_CAP) or "none"}  # fmt: skip


def onednn_cache_file(cache_dir: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / ONEDNN_CACHE_FOLDER / f"{digest}.json"


def tensorflow_version() -> str:
    try:
        return importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def time_onednn_in_child(enabled: bool, params_file: Path) -> float:
    """Images/s of params.yaml's baseline model (the faster of its precision candidates) in a child process
    started with oneDNN on or off (alexnet.onednn_probe)."""
    env = {**os.environ, ONEDNN_SWITCH: "1" if enabled else "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "alexnet.onednn_probe", str(params_file)],
        env=env, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"the oneDNN {'on' if enabled else 'off'} timing failed: {last}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["images_per_second"])


def time_both(params_file: Path) -> dict[str, float]:
    print("oneDNN: timing the model with it on and off, once for this CPU kind (about a minute)", flush=True)
    return {"on": time_onednn_in_child(True, params_file), "off": time_onednn_in_child(False, params_file)}


def choose_onednn(
    setting, params: dict, params_file: Path, environ=os.environ, measure=time_both, untimed: str | None = None
) -> OneDnnChoice:
    """train.onednn for this process (the module docstring gives the precedence). `untimed` names why `auto`
    must keep TensorFlow's default instead of timing; `measure` is injectable."""
    if isinstance(setting, bool):
        return OneDnnChoice(setting, "params")
    from_environment = environment_onednn(environ)
    if from_environment is not None:
        return OneDnnChoice(from_environment, "environment")
    default = tensorflow_default_onednn()
    if untimed:
        return OneDnnChoice(default, f"tensorflow default: {untimed}")
    key = {"cpu": cpu_kind(), "tensorflow": tensorflow_version(), "model": params.get("model"),
           **{name: params["train"].get(name) for name in ("crop", "batch_size", "precision")}}  # fmt: skip
    path = onednn_cache_file(params.get("data", {}).get("cache_dir", "~/.cache/alexnet-repro"), key)
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return OneDnnChoice(bool(cached["enabled"]), "cached", cached["rates"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        rates = measure(params_file)
    except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as error:
        return OneDnnChoice(default, f"tensorflow default: {error}")
    enabled = rates["on"] >= rates["off"]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"key": key, "enabled": enabled, "rates": rates}, indent=2))
    os.replace(temporary, path)
    return OneDnnChoice(enabled, "measured", rates)


def apply(choice: OneDnnChoice, environ=os.environ) -> None:
    """Set TF_ENABLE_ONEDNN_OPTS for TensorFlow to read when it loads (a no-op once it has loaded)."""
    if "tensorflow" not in sys.modules:
        environ[ONEDNN_SWITCH] = "1" if choice.enabled else "0"


def untimed(train: dict) -> str | None:
    """Why `auto` cannot or need not time oneDNN in this process, or None."""
    if train.get("onednn", "auto") != "auto":  # not a valid setting: config.load reports it by key
        return f"train.onednn is {train.get('onednn')!r}"
    if "tensorflow" in sys.modules:
        return "TensorFlow was loaded before alexnet.backend"
    if train.get("backend") == "jax":
        return "the jax backend trains, TensorFlow only reads data"
    if Path("/proc/driver/nvidia/gpus").is_dir():
        return "a GPU trains"
    return None


def configure(params_file: Path = Path("params.yaml")) -> OneDnnChoice:
    """KERAS_BACKEND and TF_ENABLE_ONEDNN_OPTS from params.yaml; returns the oneDNN choice."""
    params = read_params(params_file)
    select(configured_backend(params_file))
    train = params.get("train") if isinstance(params.get("train"), dict) else {}
    choice = choose_onednn(train.get("onednn", "auto"), {**params, "train": train}, params_file, untimed=untimed(train))
    apply(choice)
    return choice


ONEDNN = configure()
import_tensorflow()  # last, once every variable TensorFlow reads as it loads is set: without its start-up noise
