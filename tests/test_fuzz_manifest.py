"""Fuzzing the manifest parser (issue 7, check 4): whatever a manifest holds,
``parse_manifest`` returns a Manifest or raises BundleError with a one-line message.

Pure parsing, no files: 500 structured examples plus 200 raw-text ones run in seconds.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeport.bundle.manifest import Manifest, parse_manifest
from edgeport.errors import BundleError

SHA = "ab" * 32


def valid_manifest_v2() -> dict:
    d = valid_manifest()
    d["schema_version"] = 2
    for k in ("input", "output", "calibration"):
        d.pop(k)
    d["dims"] = {"batch": {"min": 1, "max": 64}}
    d["inputs"] = [
        {
            "name": "input",
            "shape": ["batch", 1, 28, 28],
            "dtype": "float32",
            "layout": "NCHW",
            "value_range": [-1, 3],
        }
    ]
    d["outputs"] = [{"name": "probs", "shape": ["batch", 10], "dtype": "float32", "kind": "probs"}]
    d["preprocessing"] = {
        "input": "input",
        "preset": "mnist",
        "steps": [
            {"op": "decode", "mode": "L", "fit_digit": True},
            {"op": "scale", "factor": 0.00392156862745098},
            {"op": "normalize", "mean": [0.1307], "std": [0.3081]},
            {"op": "layout", "layout": "NCHW"},
            {"op": "dtype", "dtype": "float32"},
        ],
    }
    d["golden"] = {
        "inputs": "golden/inputs.npz",
        "outputs": "golden/outputs.npz",
        "n": 3,
        "margin": 0.03,
        "files": [
            {"path": "golden/inputs.npz", "sha256": SHA, "bytes": 3},
            {"path": "golden/outputs.npz", "sha256": SHA, "bytes": 3},
        ],
        "int8_agreement": {"onnx/int8": 1.0},
    }
    d["layer_report"] = {
        "reference": "pytorch fp32",
        "split": "selection",
        "images": 4,
        "formats": {"onnx": [{"layer": "linear_stack.0", "sqnr_db": 30.0, "max_abs_error": 0.1}]},
    }
    d["warnings"] = []
    return d


def valid_manifest() -> dict:
    art = {"format": "onnx", "precision": "fp32", "file": "onnx/model.onnx", "sha256": SHA, "bytes": 10}
    ov = {
        "format": "openvino",
        "precision": "fp32",
        "file": "openvino/model.xml",
        "sha256": SHA,
        "bytes": 5,
        "extra_files": [{"path": "openvino/model.bin", "sha256": SHA, "bytes": 7}],
        "details": {"source": "onnx"},
    }
    return {
        "schema_version": 1,
        "model": "mnist-mlp",
        "input": {"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "float32", "value_range": [-1, 3]},
        "output": {"name": "probs", "shape": ["batch", 10], "dtype": "float32"},
        "preprocessing": {"scale": 0.00392156862745098, "mean": 0.1307, "std": 0.3081},
        "labels": [str(i) for i in range(10)],
        "artifacts": [art, ov],
        "provenance": {"source": "run"},
        "environment": {"versions": {}},
        "parity": {"passed": True},
        "calibration": None,
    }


json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "..", "../x", "/etc/passwd", "a\\b", "manifest.json", "onnx", "fp32", SHA, "x\ny"])
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(node, prefix=()):
    """Every (container, key) in a JSON tree, for picking what to mutate."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((node, k))
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((node, i))
            out.extend(_paths(v, (*prefix, i)))
    return out


@st.composite
def mutated_manifests(draw):
    d = copy.deepcopy(draw(st.sampled_from([valid_manifest(), valid_manifest_v2()])))
    for _ in range(draw(st.integers(1, 4))):
        spots = _paths(d)
        container, key = spots[draw(st.integers(0, len(spots) - 1))]
        action = draw(st.sampled_from(["replace", "delete", "add", "duplicate"]))
        if action == "replace":
            container[key] = draw(json_value)
        elif action == "delete":
            del container[key]
        elif action == "add" and isinstance(container, dict):
            container[draw(st.text(max_size=8))] = draw(json_value)
        elif action == "duplicate" and isinstance(container, list) and container:
            container.append(copy.deepcopy(container[draw(st.integers(0, len(container) - 1))]))
    return d


def _check(text) -> None:
    try:
        m = parse_manifest(text)
    except BundleError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, msg
        assert "manifest.json" in msg, msg
        return
    assert isinstance(m, Manifest)
    # what parses, round-trips (a schema-1 manifest comes back as the schema-2 one it was upgraded to)
    assert Manifest.from_dict(json.loads(m.to_json())) == dataclasses.replace(m, upgraded_from=None)


def test_valid_manifests_parse():
    assert parse_manifest(json.dumps(valid_manifest())).upgraded_from == 1
    m = parse_manifest(json.dumps(valid_manifest_v2()))
    assert m.upgraded_from is None and m.signature.inputs[0].layout == "NCHW" and m.golden["n"] == 3


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_manifests())
def test_mutated_manifest_contents(d):
    _check(json.dumps(d))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200), json_value.map(json.dumps)))
def test_arbitrary_manifest_text(text):
    _check(text)


@pytest.mark.parametrize("key", ["\n", "\x1b[2J", "a\u2028b"])
def test_an_unknown_step_field_named_with_control_characters_is_one_line(key):
    """Found by the fuzzer: the unknown field's name went into the error as it was, newline and all."""
    d = valid_manifest_v2()
    d["preprocessing"]["steps"][0][key] = None
    with pytest.raises(BundleError) as info:
        parse_manifest(json.dumps(d))
    assert (
        "unknown field" in str(info.value) and "\n" not in str(info.value) and "\x1b" not in str(info.value)
    )
