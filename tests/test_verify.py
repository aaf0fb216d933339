"""verify: pass on a good bundle, an exit-worthy failure on a perturbed artifact."""

from __future__ import annotations

import json

import pytest

from edgeport.errors import DataError, ParityError
from edgeport.fsutil import write_json
from edgeport.runtime.verify import format_table, raise_if_failed, verify
from test_runtime_support import runtime_bundle, runtime_bundle_path, synthetic_images, write_bundle  # noqa: F401

ROW_KEYS = {
    "backend",
    "device",
    "format",
    "precision",
    "n",
    "max_abs",
    "max_rel",
    "agreement",
    "accuracy",
    "ref_accuracy",
    "accuracy_drop",
    "passed",
    "reasons",
    "tolerance",
    "seconds",
    "evidence",
    "outputs",
    "task",
    "metrics",
    "gates",
    "checks",
}


def test_verify_passes_on_a_good_bundle(runtime_bundle, tmp_path):  # noqa: F811
    data = synthetic_images(500)
    report = verify(runtime_bundle, data=data, precisions=["fp32"], progress=False)
    assert report["passed"], format_table(report)
    assert {(r["backend"], r["device"]) for r in report["rows"]} >= {
        ("torch", "cpu"),
        ("torchscript", "cpu"),
        ("onnxruntime", "cpu"),
        ("openvino", "cpu"),
        ("openvino", "auto"),
        ("executorch", "cpu"),
    }
    for row in report["rows"]:
        assert set(row) == ROW_KEYS and row["n"] == 500 and row["agreement"] == 1.0
        assert row["task"] == "classify" and row["checks"] == ["tolerance", "agreement"], row["checks"]
        assert row["max_abs"] <= 1e-5, row
        assert row["evidence"] == "real labelled" and set(row["outputs"]) == {"probs"}
    assert report["skipped"] and all(s["reason"] for s in report["skipped"])
    assert report["device"]["hostname"] and report["device"]["cpu"]["model"]
    raise_if_failed(report)  # no error
    write_json(tmp_path / "verify.json", report)
    assert json.loads((tmp_path / "verify.json").read_text())["schema"] == "edgeport.verify/2"
    assert "all passed" in format_table(report)


def test_verify_fails_on_a_perturbed_artifact(tmp_path):
    path = write_bundle(tmp_path / "bad", perturb_onnx=0.5, int8=False)
    report = verify(
        path,
        data=synthetic_images(300),
        backends=["onnxruntime", "openvino"],
        devices=["cpu"],
        progress=False,
    )
    assert not report["passed"]
    failed = {(r["backend"], r["passed"]) for r in report["rows"]}
    assert failed == {("onnxruntime", False), ("openvino", False)}
    assert any("exceed" in reason for r in report["rows"] for reason in r["reasons"])
    assert "FAIL" in format_table(report)
    with pytest.raises(ParityError) as info:
        raise_if_failed(report)
    assert info.value.exit_code == 1 and "onnx/fp32 on onnxruntime:cpu" in str(info.value)


def test_verify_streams_with_bounded_batches(runtime_bundle, monkeypatch):  # noqa: F811
    """verify never holds the data set: each batch is read once, run through every runner, then dropped."""
    from edgeport.sources import data as src

    seen = []
    real = src.ArraySource._feeds

    def spy(self, positions):
        seen.append(len(positions))
        return real(self, positions)

    monkeypatch.setattr(src.ArraySource, "_feeds", spy)
    report = verify(
        runtime_bundle, data=synthetic_images(250), backends=["onnxruntime"], batch_size=64, progress=False
    )
    assert seen == [64, 64, 64, 58] and report["rows"][0]["n"] == 250


def test_verify_tolerance_overrides(runtime_bundle):  # noqa: F811
    report = verify(
        runtime_bundle,
        data=synthetic_images(50),
        backends=["onnxruntime"],
        precisions=["fp32"],
        atol=1e-3,
        progress=False,
    )
    assert report["rows"][0]["tolerance"]["atol"] == 1e-3


def test_verify_rejects_bad_data(runtime_bundle):  # noqa: F811
    images, labels = synthetic_images(10)
    with pytest.raises(DataError):
        verify(runtime_bundle, data=(images, labels[:5]), progress=False)
    with pytest.raises(DataError):
        verify(runtime_bundle, data=(images,), progress=False)
    from edgeport.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown source"):
        verify(runtime_bundle, data="ftp://nowhere", progress=False)


@pytest.mark.mnist
def test_verify_on_the_mnist_test_set(runtime_bundle, mnist_root):  # noqa: F811
    report = verify(
        runtime_bundle,
        data_dir=mnist_root,
        backends=["onnxruntime", "openvino"],
        precisions=["fp32"],
        devices=["cpu"],
        progress=False,
    )
    assert report["data"]["n"] == 10_000 and report["passed"], format_table(report)
