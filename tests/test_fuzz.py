"""Fuzzing bad input: random bytes into the image inspector, random param trees into config.parse.

The contract: a bad image gets one of the known skip reasons, a bad params tree gets a ConfigError
naming the problem; never any other exception.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pipeline_copy import read_params

from alexnet.config import Config, ConfigError, parse
from alexnet.data.decode import SKIP_REASONS, inspect_bytes

PARAMS = read_params(synthetic=False)  # the shipped file, as users edit it: parse() only, nothing runs
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (24, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


VALID = {fmt: _encoded(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")}
HEADERS = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF"]


def _check(info) -> None:
    if info.ok:
        assert info.width >= 1 and info.height >= 1
    else:
        assert info.reason in SKIP_REASONS, info


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_get_a_reason_never_an_exception(data):
    _check(inspect_bytes(data, "fuzz.jpg"))


@FUZZ
@given(st.sampled_from(HEADERS), st.binary(max_size=2048))
def test_image_signatures_followed_by_garbage(header, tail):
    _check(inspect_bytes(header + tail, "fuzz.jpg"))


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_truncated_and_bit_flipped_real_images(fmt, data):
    original = bytearray(VALID[fmt])
    cut = data.draw(st.integers(0, len(original)))
    mutated = original[:cut]
    for _ in range(data.draw(st.integers(0, 8))):
        if mutated:
            where = data.draw(st.integers(0, len(mutated) - 1))
            mutated[where] ^= 1 << data.draw(st.integers(0, 7))
    _check(inspect_bytes(bytes(mutated), f"fuzz.{fmt.lower()}"))


def test_valid_images_of_every_format_are_kept():
    for fmt, data in VALID.items():
        info = inspect_bytes(data, f"ok.{fmt.lower()}")
        assert info.ok and (info.width, info.height) == (20, 24), (fmt, info)


# -- params trees ----------------------------------------------------------------------------------
def _leaf_paths(tree: dict, prefix: tuple = ()) -> list[tuple]:
    paths = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            paths += _leaf_paths(value, (*prefix, key))
        paths.append((*prefix, key))
    return paths


LEAVES = _leaf_paths(PARAMS)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(LEAVES), st.sampled_from(["set", "delete", "add"]), VALUES), max_size=4))
def test_mutated_params_give_a_config_or_a_config_error(mutations):
    tree = copy.deepcopy(PARAMS)
    for path, action, value in mutations:
        node = tree
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if action == "set":
            node[path[-1]] = value
        elif action == "delete":
            node.pop(path[-1], None)
        else:
            node[f"{path[-1]}_extra"] = value
    _parse_cleanly(tree)


@FUZZ
@given(
    st.dictionaries(st.text(max_size=10), VALUES, max_size=5) | VALUES,
    st.one_of(st.none(), st.text(max_size=10), st.sampled_from(sorted(PARAMS["ablations"]["variants"]))),
    st.one_of(st.none(), st.integers(-5, 2**40)),
)
def test_random_trees_variants_and_seeds_give_a_config_or_a_config_error(tree, variant, seed):
    _parse_cleanly(tree, variant, seed)


@FUZZ
@given(st.dictionaries(st.text(max_size=30), VALUES, max_size=3))
def test_random_variant_overrides_give_a_config_or_a_config_error(overrides):
    tree = copy.deepcopy(PARAMS)
    tree["ablations"]["variants"]["fuzzed"] = overrides
    _parse_cleanly(tree, "fuzzed", 0)


def _parse_cleanly(tree, variant=None, seed=None) -> None:
    try:
        config = parse(tree, variant=variant, seed=seed)
    except ConfigError as error:
        assert "params.yaml" in str(error), f"the error names the file: {error}"
        return
    except Exception as error:  # pragma: no cover - the failure this test is for
        pytest.fail(f"parse raised {type(error).__name__}, not ConfigError: {error!r:.300}")
    assert isinstance(config, Config)
