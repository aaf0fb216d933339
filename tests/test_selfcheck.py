"""selfcheck: every artifact a host can run, against the golden I/O in the bundle, torch-free."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import export_fixtures as fx
from edgeport.bundle import load_bundle
from edgeport.cli import main
from edgeport.device.selfcheck import selfcheck
from edgeport.errors import BundleError


def test_selfcheck_passes_on_an_int8_bundle(int8_bundle_path):
    report = selfcheck(int8_bundle_path)
    assert report["passed"] and report["schema"] == "edgeport.selfcheck/1"
    keys = {(r["format"], r["precision"]) for r in report["rows"]}
    assert {("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")} <= keys
    assert ("torch", "fp32") not in keys  # the reference itself is not re-checked
    for r in report["rows"]:
        assert r["n"] == 70
        if r["precision"] == "int8":
            assert r["min_agreement"] == pytest.approx(r["expected_agreement"] - report["golden"]["margin"])
        else:
            assert r["agreement"] == 1.0 and r["max_abs"] <= 1e-5
    assert any(s["backend"] == "torchscript" and "arbitrary code" in s["reason"] for s in report["skipped"])
    assert report["device"]["hostname"] and report["device"]["cpu"]


def test_changed_reference_outputs_fail_with_a_row_naming_the_artifact(int8_bundle_path, tmp_path, capsys):
    b = fx.bundle_copy(int8_bundle_path, tmp_path)
    m = json.loads((b / "manifest.json").read_text())
    out = b / m["golden"]["outputs"]
    with np.load(out) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["probs"][:, [0, 1]] = arrays["probs"][
        :, [1, 0]
    ]  # swap two classes: every top-1 moves for some rows
    arrays["probs"][:5] = np.roll(arrays["probs"][:5], 3, axis=1)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    out.write_bytes(buf.getvalue())
    for f in m["golden"]["files"]:  # re-hash: a forgery the hash cannot catch, only the check itself
        if f["path"] == m["golden"]["outputs"]:
            f["sha256"], f["bytes"] = hashlib.sha256(buf.getvalue()).hexdigest(), len(buf.getvalue())
    (b / "manifest.json").write_text(json.dumps(m))
    rc = main(["selfcheck", str(b), "--backends", "onnxruntime", "--out", str(tmp_path / "s.json")])
    assert rc == 1
    cap = capsys.readouterr()
    assert "onnx/fp32" in cap.out and "FAIL" in cap.out and "selfcheck failed" in cap.err
    report = json.loads((tmp_path / "s.json").read_text())
    assert {(r["format"], r["precision"], r["passed"]) for r in report["rows"]} >= {("onnx", "fp32", False)}


def test_tampered_golden_file_is_a_hash_error(int8_bundle_path, tmp_path):
    b = fx.bundle_copy(int8_bundle_path, tmp_path)
    p = b / "golden" / "inputs.npz"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 1
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="golden/inputs.npz"):
        load_bundle(b)


def test_selfcheck_needs_no_torch(int8_bundle_path):
    """On a light install: torch and torchvision fail to import; ONNX Runtime and OpenVINO rows still pass."""
    code = f"""
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "executorch", "torchao"):
            raise ImportError(name + " is not installed on this device")
sys.meta_path.insert(0, _NoTorch())
from edgeport.cli import main
rc = main(["selfcheck", {str(int8_bundle_path)!r}, "--backends", "onnxruntime,openvino"])
assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
sys.exit(rc)
"""
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "EDGEPORT_TRUST_MODEL_CODE"},
    )
    assert p.returncode == 0, p.stderr[-1500:]
    assert p.stdout.count("PASS") >= 4 and "all passed" in p.stdout


def test_schema1_bundle_loads_read_only_and_has_no_golden_io(capsys):
    b = load_bundle(fx.SCHEMA1)
    m = b.manifest
    assert m.read_only and m.upgraded_from == 1 and m.schema_version == 2
    assert m.signature.inputs[0].shape == ("batch", 1, 28, 28) and m.signature.outputs[0].kind == "probs"
    assert b.preprocessing.preset == "mnist"
    import onnx
    from onnx import numpy_helper

    d = fx.SCHEMA1 / "onnx" / "test_data_set_0"
    x = numpy_helper.to_array(onnx.load_tensor_from_string((d / "input_0.pb").read_bytes()))
    y = numpy_helper.to_array(onnx.load_tensor_from_string((d / "output_0.pb").read_bytes()))
    for backend in ("onnxruntime", "openvino"):
        with b.runner(backend) as r:
            np.testing.assert_allclose(r.run(x), y, atol=1e-5)
    assert main(["inspect", str(fx.SCHEMA1)]) == 0
    assert "read from schema 1 (read-only)" in capsys.readouterr().out
    rc = main(["selfcheck", str(fx.SCHEMA1)])
    assert rc == 2 and "no golden I/O" in capsys.readouterr().err


@pytest.mark.mnist
def test_schema1_bundle_still_verifies(mnist_root):
    from edgeport.runtime.verify import verify

    report = verify(fx.SCHEMA1, data_dir=mnist_root, progress=False)
    assert report["passed"] and report["data"]["n"] == 10_000
    assert report["reference"]["accuracy"] == pytest.approx(0.9616, abs=1e-4)  # as 0.1.0 measured it
