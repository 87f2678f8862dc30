"""Typed, validated params: the one reader of params.yaml.

Every default that matters lives in params.yaml; these models only say what a
value may be. A bad key or value raises ConfigError with one line that names the
key and the fix, before any work starts.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PARAMS_FILE = "params.yaml"
SPLITS = ("train", "val")  # the labelled splits every source is read into
WNID_PATTERN = r"^n\d{8}$|^[A-Za-z0-9_\-]+$"

PositiveInt = Annotated[int, Field(gt=0)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class ConfigError(ValueError):
    """A one-line, user-facing error about params.yaml."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SyntheticConfig(Section):
    classes: Annotated[int, Field(ge=2, le=64)]
    train_per_class: PositiveInt
    val_per_class: PositiveInt
    image_size: Annotated[int, Field(ge=32, le=512)]


class DataConfig(Section):
    source: Literal["synthetic", "imagenette", "imagewoof", "folder", "ilsvrc2012", "tiny_imagenet"]
    url: str | None
    size: Literal["160", "320", "full"]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None
    cache_dir: str
    classes: Annotated[int, Field(ge=2)] | list[Annotated[str, Field(pattern=WNID_PATTERN)]] | None  # None = all
    train_per_class: PositiveInt | None
    val_per_class: PositiveInt | None
    seed: Annotated[int, Field(ge=0)]
    drop_leaks: bool
    max_image_pixels: Annotated[int, Field(ge=1, le=178_956_970)]  # Pillow refuses more (decode.PILLOW_PIXEL_LIMIT)
    synthetic: SyntheticConfig

    @model_validator(mode="after")
    def _needs_location(self) -> DataConfig:
        if self.source in ("folder", "ilsvrc2012") and not self.url:
            raise ValueError(f"data.url: source '{self.source}' needs a folder or archive path in data.url")
        return self


class PreprocessConfig(Section):
    size: Annotated[int, Field(ge=16, le=1024)]
    jpeg_quality: Annotated[int, Field(ge=50, le=100)]
    shards: Annotated[int, Field(ge=1, le=1024)]
    workers: Annotated[int, Field(ge=1, le=256)]
    seed: Annotated[int, Field(ge=0)]


class ModelConfig(Section):
    architecture: Literal["alexnet", "one_gpu", "one_weird_trick"]
    towers: Literal[1, 2]
    activation: Literal["relu", "tanh"]
    dropout: Probability
    dropout_scaling: Literal["inverted", "paper"]
    lrn: bool
    lrn_alpha_over_n: bool
    pooling: Literal["overlapping", "non_overlapping"]
    init: Literal["paper", "caffe", "zero", "glorot"]
    width: Annotated[float, Field(gt=0.0, le=4.0)]
    fc_units: PositiveInt

    @model_validator(mode="after")
    def _one_weird_trick_is_one_tower_without_lrn(self) -> ModelConfig:
        if self.architecture == "one_weird_trick" and (self.towers != 1 or self.lrn):
            raise ValueError(
                "architecture one_weird_trick has one tower and no LRN; set model.towers: 1 and model.lrn: false"
            )
        if self.architecture == "one_gpu" and self.towers != 1:
            raise ValueError("architecture one_gpu is the paper's one-GPU net (one column); set model.towers: 1")
        return self


class AugmentConfig(Section):
    random_crop: bool
    flip: bool
    pca_lighting: Annotated[float, Field(ge=0.0, le=10.0)]


class TrainConfig(Section):
    crop: Annotated[int, Field(ge=32, le=1024)]
    batch_size: PositiveInt
    epochs: PositiveInt
    optimizer: Literal["paper_sgd", "sgdw"]
    learning_rate: Annotated[float, Field(gt=0.0, le=10.0)]
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)]
    weight_decay: Annotated[float, Field(ge=0.0, lt=1.0)]
    schedule: Literal["plateau", "step"]
    lr_drop_factor: Annotated[float, Field(gt=0.0, lt=1.0)]
    lr_steps: list[Annotated[float, Field(gt=0.0, lt=1.0)]]
    lr_patience: PositiveInt
    lr_max_drops: Annotated[int, Field(ge=0)]
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"]
    xla: Literal["auto"] | bool
    onednn: Literal["auto"] | bool  # read before TensorFlow loads, by alexnet.backend
    seed: Annotated[int, Field(ge=0)]
    deterministic: bool
    shuffle_buffer: PositiveInt
    backend: Literal["tensorflow", "jax"]
    train_error_images: Annotated[int, Field(ge=0)]
    validation_images: PositiveInt | None
    validation_batch_size: PositiveInt

    @model_validator(mode="after")
    def _steps_ascending(self) -> TrainConfig:
        if list(self.lr_steps) != sorted(set(self.lr_steps)):
            raise ValueError("lr_steps must be distinct fractions of train.epochs in ascending order, e.g. [0.5, 0.75]")
        return self


class EvaluateConfig(Section):
    batch_size: PositiveInt
    ten_crop: bool
    top_k: Annotated[int, Field(ge=1, le=10)]
    figure_images: Annotated[int, Field(ge=1, le=64)]
    figure_seeds: list[Annotated[int, Field(ge=0)]]


class Figure1Config(Section):
    image_size: Annotated[int, Field(ge=8, le=128)]
    epochs: PositiveInt
    batch_size: PositiveInt
    inits: Annotated[list[Literal["glorot", "paper"]], Field(min_length=1)]
    learning_rates: Annotated[list[Annotated[float, Field(gt=0.0, le=10.0)]], Field(min_length=1)]
    target_error: Annotated[float, Field(gt=0.0, lt=1.0)]
    tuning_seed: Annotated[int, Field(ge=0)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    data: Literal["prepared", "cifar10"]
    url: str | None
    checksum: Annotated[str, Field(pattern=r"^([0-9a-f]{64}|md5:[0-9a-f]{32})$")] | None

    @model_validator(mode="after")
    def _distinct_seeds(self) -> Figure1Config:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds has duplicates; list each replicate seed once")
        if len(set(self.inits)) != len(self.inits):
            raise ValueError("inits has duplicates; list each initialisation once")
        if len(set(self.learning_rates)) != len(self.learning_rates):
            raise ValueError("learning_rates has duplicates; list each rate once")
        if self.tuning_seed in self.seeds:
            raise ValueError(
                f"figure1.tuning_seed {self.tuning_seed} is also in figure1.seeds {list(self.seeds)}; the rates are "
                "chosen on the tuning seed, so the estimate's seeds must not include it: pick another tuning_seed"
            )
        return self


class AblationsConfig(Section):
    run: Annotated[list[str], Field(min_length=1)]
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]
    variants: dict[str, dict[str, Any]]

    @model_validator(mode="after")
    def _run_names_exist(self) -> AblationsConfig:
        unknown = [name for name in self.run if name not in self.variants]
        if unknown:
            raise ValueError(f"run lists unknown variant(s) {unknown}; define them under ablations.variants")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds has duplicates; list each replicate seed once")
        return self


class TrackingConfig(Section):
    enabled: bool
    experiment: Annotated[str, Field(min_length=1)]
    uri: str | None
    log_model: bool
    on_failure: Literal["warn", "fail"]
    registered_model: Annotated[str, Field(min_length=1)]
    system_metrics: bool


class Config(Section):
    data: DataConfig
    preprocess: PreprocessConfig
    model: ModelConfig
    augment: AugmentConfig
    train: TrainConfig
    evaluate: EvaluateConfig
    figure1: Figure1Config
    ablations: AblationsConfig
    tracking: TrackingConfig

    @model_validator(mode="after")
    def _crop_fits(self) -> Config:
        if self.train.crop > self.preprocess.size:
            raise ValueError(
                f"train.crop: {self.train.crop} is larger than preprocess.size {self.preprocess.size}; "
                "lower train.crop or raise preprocess.size"
            )
        return self


OVERRIDABLE = ("model", "augment", "train")  # what a variant may change, and what a checkpoint depends on


def project_root() -> Path:
    """The stage's own project: the nearest folder, from the working directory up, with dvc.yaml or params.yaml.

    params.yaml, data and outputs always come from here. Never from DVC_ROOT: in `dvc exp run --temp`
    and `--queue` DVC sets it to the parent repository, whose params.yaml lacks the run's -S overrides.
    """
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() or (folder / PARAMS_FILE).exists():
            return folder
    return here


def store_root() -> Path:
    """Where the shared MLflow store lives (and whose git commit a run records): DVC_ROOT inside a stage.

    DVC sets DVC_ROOT to the parent repository even for `--temp`/`--queue` runs, so every experiment
    lands in the one project store instead of a throw-away copy. Outside DVC: project_root().
    """
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    return project_root()


UNION_TAG = re.compile(r"^(constrained-\w+|function-[\w-]+\[.*\]|\w+\[.*\]|int|float|str|bool|none)$")


def _format_error(error: ValidationError, source: str) -> str:
    """One line naming the key, in the user's words: no pydantic union tags ('constrained-int') or class names.

    A value that fails a union (data.classes: N or a list of wnids) fails every branch. A branch whose type
    matched says what is wrong with the value; if none matched, the line lists what the key accepts.
    """

    def key_path(loc) -> tuple:
        return tuple(part for part in loc if not (isinstance(part, str) and UNION_TAG.match(part)))

    def message(entry) -> str:
        text = entry["msg"].removeprefix("Value error, ").replace(" after validation", "").replace(" None", " null")
        return re.sub(r" or instance of \w+", "", text)

    errors = error.errors()
    first = errors[0]
    path = key_path(first["loc"])
    key = ".".join(str(part) for part in path)
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'; remove it or check its spelling"
    if first["type"] == "missing":
        return f"{source}: missing key '{key}'; add it (see the README's params table)"
    branches = [entry for entry in errors if key_path(entry["loc"])[: len(path)] == path]
    type_errors = [
        entry
        for entry in branches
        if key_path(entry["loc"]) == path and entry["type"].endswith(("_type", "literal_error", "none_required"))
    ]
    matched = [entry for entry in branches if entry not in type_errors]
    if len(branches) > 1 and not matched:
        accepted = dict.fromkeys(message(entry).removeprefix("Input should be ") for entry in type_errors)
        text = "should be " + " or ".join(accepted)
        got = first.get("input")
    else:
        chosen = (matched or branches)[0]
        key = ".".join(str(part) for part in key_path(chosen["loc"]))
        text, got = message(chosen), chosen.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{source}: {key}: {text}{shown}; fix it in {source}"


def _set_dotted(tree: dict, dotted: str, value: Any, source: str) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"{source}: override '{dotted}' names no section '{part}'; check its spelling")
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"{source}: override '{dotted}' names no existing key; check its spelling")
    node[leaf] = value


def _check_overrides(variants: dict, source: str) -> None:
    """Every variant overrides only OVERRIDABLE sections (checked before any override is applied)."""
    for name, overrides in variants.items():
        for dotted in overrides if isinstance(overrides, dict) else ():
            if str(dotted).split(".")[0] not in OVERRIDABLE:
                raise ConfigError(
                    f"{source}: ablations.variants.{name}: '{dotted}' is not a model/augment/train key; "
                    f"only {', '.join(OVERRIDABLE)} keys may be overridden"
                )


def parse(raw: Any, source: str = PARAMS_FILE, variant: str | None = None, seed: int | None = None) -> Config:
    """Validate a params tree; apply a variant's overrides (and a replicate seed) first."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections at the top level")
    tree = copy.deepcopy(raw)
    ablations = tree.get("ablations")
    variants = ablations.get("variants") if isinstance(ablations, dict) else None
    variants = variants if isinstance(variants, dict) else {}
    _check_overrides(variants, source)
    if variant is not None:
        if variant not in variants:
            raise ConfigError(f"{source}: unknown variant '{variant}'; define it under ablations.variants")
        for dotted, value in (variants[variant] or {}).items():
            _set_dotted(tree, str(dotted), value, f"{source}: ablations.variants.{variant}")
    if seed is not None and isinstance(tree.get("train"), dict):
        tree["train"]["seed"] = seed
    try:
        return Config.model_validate(tree)
    except ValidationError as error:
        raise ConfigError(_format_error(error, source)) from None


def load(path: str | Path | None = None, variant: str | None = None, seed: int | None = None) -> Config:
    """Read and validate params.yaml (default: the one in project_root(), the stage's own workspace)."""
    path = Path(path) if path else project_root() / PARAMS_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found; run from the project root or pass its path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    return parse(raw, str(path.name if path.name == PARAMS_FILE else path), variant, seed)


def flatten(config: Config | dict, prefix: str = "") -> dict[str, Any]:
    """{'model.activation': 'relu', ...}: the flat form MLflow and reports use."""
    tree = config.model_dump() if isinstance(config, BaseModel) else config
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
