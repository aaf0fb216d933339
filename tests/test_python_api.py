"""The Python API: a model object in, data from Python, typed results out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeport
from edgeport.errors import ConfigError, DataError
from edgeport.sources.feeds import Dataset, FeedSource
from edgeport.specs import Signature, TensorSpec

ROOT = Path(__file__).resolve().parents[1]


def test_the_python_api_example_runs(tmp_path):
    """examples/python_api.py: export an in-memory nn.Module, verify on a Python list, bench in code."""
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python_api.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "openvino:cpu openvino/int8: accuracy 1.000, passed True" in res.stdout, res.stdout
    assert "fastest at batch 1:" in res.stdout
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["schema"].startswith("edgeport.bench/") and bench["rows"]
    m = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert m["provenance"]["source"] == "python" and m["provenance"]["class"] == "TinyNet"
    assert {a["format"] for a in m["artifacts"]} == {"torch", "onnx", "openvino"}


def _sig():
    return Signature(
        [TensorSpec("x", "float32", ("batch", 3))], [TensorSpec("y", "float32", ("batch", 2))], {}
    )


def test_feed_source_takes_samples_batches_and_labels():
    sig = _sig()
    one = [(np.ones(3, np.float32) * i, i % 2) for i in range(5)]  # single samples with labels
    src = FeedSource.from_items(one, sig)
    assert len(src) == 5 and src.evidence == "real labelled" and list(src.class_labels()) == [0, 1, 0, 1, 0]
    feeds, labels = next(src.batches(64))
    assert feeds["x"].shape == (5, 3) and feeds["x"][4, 0] == 4.0 and list(labels) == [0, 1, 0, 1, 0]
    batches = Dataset([np.zeros((4, 3)), np.ones((2, 3))], transform=lambda a: {"x": a})  # float64: cast
    src = FeedSource.from_items(batches, sig)
    assert len(src) == 6 and src.class_labels() is None and next(src.batches(64))[0]["x"].dtype == np.float32


@pytest.mark.parametrize(
    "items, match",
    [
        ([np.zeros((2, 4), np.float32)], "shape"),
        ([{"z": np.zeros(3, np.float32)}], "the model takes"),
        ([np.array([np.nan, 0, 0], np.float32)], "NaN"),
        ([(np.zeros(3, np.float32), 0), np.zeros(3, np.float32)], "label every item or none"),
        ([], "no samples"),
        ("npz-ish text", "iterable of samples"),
        ([(np.zeros(3, np.float32), 0.5)], "integer class id"),
    ],
)
def test_feed_source_refuses_bad_items_in_one_line(items, match):
    with pytest.raises(DataError, match=match) as info:
        FeedSource.from_items(items, _sig())
    assert "\n" not in str(info.value)


def test_export_needs_inputs_for_a_module_and_refuses_other_objects(tmp_path):
    from torch import nn

    with pytest.raises(ConfigError, match="needs its inputs"):
        edgeport.export(nn.Linear(3, 2), tmp_path / "b", data=[np.zeros(3, np.float32)] * 20)
    with pytest.raises(ConfigError, match="expected an nn.Module"):
        edgeport.export(object(), tmp_path / "b", input_shape=(1, 3))


def test_export_is_callable_after_its_package_was_imported():
    import edgeport.export.api  # noqa: F401  (sets the package as edgeport.export)

    assert callable(edgeport.export)


def test_python_dash_m_runs_the_cli():
    """`python -m edgeport` is the CLI where only the interpreter is on the PATH (a GPU box, a board)."""
    res = subprocess.run(
        [sys.executable, "-m", "edgeport", "--version"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == f"edgeport {edgeport.__version__}"
    res = subprocess.run(
        [sys.executable, "-m", "edgeport", "bench", "/nonexistent"], capture_output=True, text=True
    )
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1, res.stderr
