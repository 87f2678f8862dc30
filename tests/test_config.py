"""params.yaml is validated before any work: bad keys and values are one-line errors naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from alexnet.config import ConfigError, flatten, load, parse


def test_shipped_params_are_valid(repo_root):
    cfg = load(repo_root / "params.yaml")
    assert cfg.ablations.run and set(cfg.ablations.run) <= set(cfg.ablations.variants)
    assert cfg.train.crop <= cfg.preprocess.size


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
        [sys.executable, str(repo_root / "pipeline" / "ingest.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
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
