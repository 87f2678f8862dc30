"""params.yaml is validated before any work: bad keys and values are one-line errors naming the key."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_copy import profile_overrides, read_params

from alexnet.config import ConfigError, flatten, load, parse
from alexnet.data import sources

IMAGENETTE_160_SHA256 = "64d0c4859f35a461889e0147755a999a48b49bf38a7e0f9bd27003f10db02fe5"  # fast.ai's published value


def test_shipped_params_are_valid(repo_root):
    cfg = load(repo_root / "params.yaml")
    assert cfg.ablations.run and set(cfg.ablations.run) <= set(cfg.ablations.variants)
    assert cfg.train.crop <= cfg.preprocess.size


def test_shipped_default_is_real_imagenette_with_a_known_checksum(repo_root, tmp_path, monkeypatch):
    """`dvc repro` as shipped fetches fast.ai's 160 px Imagenette and verifies it with no data.sha256 override."""
    cfg = load(repo_root / "params.yaml")
    assert (cfg.data.source, cfg.data.size) == ("imagenette", "160")
    assert cfg.data.url is None and cfg.data.sha256 is None
    known = sources.KNOWN_ARCHIVES[(cfg.data.source, cfg.data.size)]
    assert Path(known.url).name == "imagenette2-160.tgz" and known.sha256 == IMAGENETTE_160_SHA256

    fetched = []

    def no_network(url, cache_dir, sha256, progress):
        fetched.append((url, sha256))
        raise KeyboardInterrupt  # stop before any download

    monkeypatch.setattr(sources, "fetch", no_network)
    with pytest.raises(KeyboardInterrupt):
        sources.resolve(cfg.data.model_copy(update={"cache_dir": str(tmp_path)}), tmp_path / "work", progress=False)
    assert fetched == [(known.url, IMAGENETTE_160_SHA256)], "the default is fetched and checked by the known sha256"


def test_make_run_synthetic_passes_the_profile_file(repo_root):
    """`make run-synthetic` hands dvc exactly the overrides of profiles/synthetic.params, the tests' profile."""
    dry = subprocess.run(["make", "-n", "run-synthetic"], cwd=repo_root, capture_output=True, text=True, timeout=60)
    command = next(line for line in dry.stdout.splitlines() if " exp run " in line)
    passed = [override.split("=", 1) for override in re.findall(r"-S '([^']+)'", command)]
    assert {key: yaml.safe_load(value) for key, value in passed} == profile_overrides()
    cfg = parse(read_params())
    assert cfg.data.source == "synthetic" and cfg.train.crop <= cfg.preprocess.size


def test_synthetic_source_alone_ingests_every_generated_class(tmp_path):
    """`-S data.source=synthetic` alone is enough: data.classes null means all classes."""
    from alexnet.data.ingest import ingest

    params = read_params(synthetic=False)
    params["data"].update(source="synthetic", cache_dir=str(tmp_path / "cache"))
    params["data"]["synthetic"].update(train_per_class=4, val_per_class=2, image_size=32)
    cfg = parse(params)
    assert cfg.data.classes is None
    ingest(cfg.data, tmp_path / "raw", tmp_path / "work", progress=False)
    classes = yaml.safe_load((tmp_path / "raw" / "classes.json").read_text())
    assert len(classes) == cfg.data.synthetic.classes


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(architecture="one_weird_trick"), "model.towers: 1 and model.lrn: false"),
        (lambda m: m.update(architecture="one_weird_trick", towers=1), "model.towers: 1 and model.lrn: false"),
        (lambda m: m.update(architecture="one_weird_trick", lrn=False), "model.towers: 1 and model.lrn: false"),
    ],
)
def test_one_weird_trick_refuses_towers_and_lrn_it_would_ignore(raw_params, edit, message):
    edit(raw_params["model"])
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(raw_params)
    raw_params["model"].update(towers=1, lrn=False)
    assert parse(raw_params).model.architecture == "one_weird_trick"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["model"].update(activaton="relu"), "unknown key 'model.activaton'"),
        (lambda p: p["model"].update(activation="sigmoid"), "model.activation"),
        (lambda p: p["model"].update(dropout=1.5), "model.dropout"),
        (lambda p: p["train"].update(batch_size="64"), "train.batch_size"),
        (lambda p: p["train"].update(epochs=0), "train.epochs"),
        (lambda p: p["data"].update(source="cifar"), "data.source"),
        (lambda p: p["ablations"].update(run=["baseline", "nope"]), "unknown variant"),
        (
            lambda p: p["ablations"]["variants"].update(bad={"data.source": "folder"}),
            "only model, augment, train",
        ),
        (lambda p: p.pop("evaluate"), "missing key 'evaluate'"),
        (lambda p: p["train"].update(crop=999), "train.crop"),
        (lambda p: p["train"].update(schedule="cosine"), "train.schedule"),
        (lambda p: p["train"].update(lr_steps=[0.75, 0.5]), "train: lr_steps must be distinct fractions"),
        (lambda p: p["train"].update(lr_steps=[1.5]), "train.lr_steps"),
        (lambda p: p["figure1"].update(seeds=[0, 0]), "figure1: seeds has duplicates"),
        (lambda p: p["figure1"].update(data="mnist"), "figure1.data"),
        (lambda p: p["figure1"].update(inits=["he"]), "figure1.inits.0: Input should be 'glorot' or 'paper'"),
        (lambda p: p["figure1"].update(inits=[]), "figure1.inits: List should have at least 1 item"),
        (lambda p: p["figure1"].update(inits=["paper", "paper"]), "figure1: inits has duplicates"),
        (lambda p: p["figure1"].update(learning_rates=[0.01, 0.01]), "figure1: learning_rates has duplicates"),
        (lambda p: p["figure1"].update(tuning_seed=1, seeds=[0, 1, 2]),
         "figure1.tuning_seed 1 is also in figure1.seeds [0, 1, 2]"),
        (lambda p: p["model"].update(architecture="one_gpu", towers=2), "set model.towers: 1"),
    ],
)
def test_bad_params_name_the_key(raw_params, edit, expected):
    params = copy.deepcopy(raw_params)
    edit(params)
    with pytest.raises(ConfigError) as caught:
        parse(params)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_variant_overrides_apply(raw_params):
    assert parse(raw_params, variant="tanh").model.activation == "tanh"
    assert parse(raw_params, variant="no_augmentation").augment.flip is False
    assert parse(raw_params, variant="baseline", seed=7).train.seed == 7


def test_override_of_missing_key_is_refused(raw_params):
    raw_params["ablations"]["variants"]["typo"] = {"model.activaton": "tanh"}
    with pytest.raises(ConfigError, match="model.activaton"):
        parse(raw_params, variant="typo")


def test_flatten_gives_dotted_keys(raw_params):
    flat = flatten(parse(raw_params))
    assert flat["model.activation"] == "relu"
    assert flat["data.synthetic.image_size"] == raw_params["data"]["synthetic"]["image_size"]


def test_stage_exits_nonzero_with_one_line(tmp_path, repo_root, raw_params):
    """A stage run with bad params fails before work, with one line on stderr and no outputs."""
    raw_params["model"]["activation"] = "sigmoid"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw_params))
    result = subprocess.run(
        [sys.executable, str(repo_root / "pipeline" / "ingest.py"), "--out", "data/raw"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "model.activation" in result.stderr
    assert not (tmp_path / "data").exists()


def test_malformed_yaml_is_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(bad)


def test_params_come_from_the_working_directory_even_when_dvc_root_is_elsewhere(tmp_path, raw_params, monkeypatch):
    """`dvc exp run --temp/--queue` sets DVC_ROOT to the parent repo; the run's own params.yaml must win."""
    from alexnet.config import project_root, store_root
    from alexnet.tracking import store_uri

    parent, experiment = tmp_path / "parent", tmp_path / "parent" / ".dvc" / "tmp" / "exps" / "run1"
    for folder, learning_rate in ((parent, 0.01), (experiment, 0.02)):
        folder.mkdir(parents=True, exist_ok=True)
        raw_params["train"]["learning_rate"] = learning_rate
        (folder / "params.yaml").write_text(yaml.safe_dump(raw_params))
        (folder / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(experiment)
    monkeypatch.setenv("DVC_ROOT", str(parent))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert load().train.learning_rate == 0.02
    assert project_root() == experiment.resolve()
    assert store_root() == parent.resolve()
    assert store_uri(load().tracking) == f"sqlite:///{parent.resolve() / 'mlflow.db'}"
