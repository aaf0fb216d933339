"""Bundle manifest and integrity: round trip, hashes, missing files, versions, path escapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgeport.bundle import MANIFEST_FILE, SCHEMA_VERSION, Manifest, load_bundle, parse_manifest
from edgeport.errors import BundleError


def _manifest(path) -> dict:
    return json.loads((path / MANIFEST_FILE).read_text())


def _write(path, d) -> None:
    (path / MANIFEST_FILE).write_text(json.dumps(d))


def test_manifest_round_trip(full_bundle):
    b = load_bundle(full_bundle)
    m = b.manifest
    assert Manifest.from_dict(json.loads(m.to_json())) == m
    assert m.schema_version == SCHEMA_VERSION
    assert {a.key for a in b.artifacts} == {
        "torch/fp32",
        "torchscript/fp32",
        "onnx/fp32",
        "openvino/fp32",
        "openvino/fp16",
        "executorch/fp32",
    }
    (inp,), (out,) = m.signature.inputs, m.signature.outputs
    assert inp.name == "input" and inp.shape == ("batch", 1, 28, 28) and inp.layout == "NCHW"
    assert out.name == "probs" and out.shape == ("batch", 10) and out.kind == "probs"
    assert m.signature.dims["batch"].min == 1 and m.signature.dims["batch"].max == 4096
    assert b.labels == [str(i) for i in range(10)]
    assert b.preprocessing.preset == "mnist" and b.preprocessing.mean_std()[1][0] == pytest.approx(0.3081)
    assert len(m.provenance["checkpoint_sha256"]) == 64 and m.provenance["train"]["model"] == "mnist-mlp"
    for pkg in ("torch", "onnx", "onnxruntime", "openvino"):
        assert m.environment["versions"][pkg]
    assert "flags" in m.environment["cpu"] and m.environment["hostname"]
    from edgeport.export.golden import DEFAULT_SAMPLES, N_EDGE_NOISE
    from edgeport.export.parity import N_FIXED_EDGE

    want = DEFAULT_SAMPLES + N_FIXED_EDGE + N_EDGE_NOISE  # real samples plus the edge inputs
    assert m.golden["n"] == want and m.data["evidence"] == "real labelled"
    assert m.parity["passed"] and m.parity["batch_sizes"] == [1, 2, 7, 64]
    ov = b.artifact("openvino")
    assert [e.path for e in ov.extra_files] == ["openvino/model.bin"]
    assert b.path_of(ov, "model.bin").is_file()
    assert b.read_verified(ov) == b.path_of(ov).read_bytes()


def test_missing_artifact_lists_what_exists(full_bundle):
    with pytest.raises(BundleError, match=r"no onnx/int8 artifact.*onnx/fp32"):
        load_bundle(full_bundle).artifact("onnx", "int8")


def test_flipping_any_byte_of_any_file_is_caught(bundle_copy):
    entries = [e for a in load_bundle(bundle_copy).artifacts for e in a.files()]
    assert len(entries) >= 9
    for e in entries:
        p = bundle_copy / e.path
        original = p.read_bytes()
        pos = len(original) // 2
        p.write_bytes(original[:pos] + bytes([original[pos] ^ 0x01]) + original[pos + 1 :])
        with pytest.raises(BundleError, match="does not match its manifest hash") as info:
            load_bundle(bundle_copy)
        assert e.path in str(info.value)
        p.write_bytes(original)
    load_bundle(bundle_copy)


def test_read_verified_catches_a_swap_after_loading(bundle_copy):
    b = load_bundle(bundle_copy)
    onnx_art = b.artifact("onnx")
    data = (bundle_copy / onnx_art.file).read_bytes()
    (bundle_copy / onnx_art.file).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other bytes
    with pytest.raises(BundleError, match="onnx/model.onnx"):
        b.read_verified(onnx_art)
    load_bundle(bundle_copy, verify=False)  # paths only


def test_missing_file(bundle_copy):
    (bundle_copy / "openvino" / "model.bin").unlink()
    with pytest.raises(BundleError, match=r"openvino/model.bin is missing"):
        load_bundle(bundle_copy)


def test_missing_manifest_and_folder(bundle_copy, tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")
    (bundle_copy / MANIFEST_FILE).unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(schema_version=99), "unknown schema_version 99"),
        (lambda d: d.update(schema_version="1"), "schema_version"),
        (lambda d: d.pop("labels"), "labels"),
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d.update(model=3), "'model'"),
        (lambda d: d.update(labels="0123"), "'labels'"),
        (lambda d: d["artifacts"][1].update(bytes="12"), r"artifacts\[1\].bytes"),
        (lambda d: d["artifacts"][1].update(bytes=True), r"artifacts\[1\].bytes"),
        (lambda d: d["artifacts"][1].update(sha256="abc"), r"artifacts\[1\].sha256"),
        (lambda d: d["artifacts"][1].update(precision="int4"), "int4"),
        (lambda d: d["artifacts"][1].update(format="pickle"), "pickle"),
        (lambda d: d["artifacts"][1].pop("file"), r"artifacts\[1\] lacks field\(s\) file"),
        (lambda d: d["artifacts"].append(dict(d["artifacts"][1])), "duplicates artifact"),
        (lambda d: d["artifacts"][2].update(file=d["artifacts"][1]["file"]), "twice"),
        (lambda d: d["inputs"][0].update(shape=[]), r"inputs\[0\].shape"),
        (lambda d: d["inputs"][0].update(shape=["batch", "height", 28, 28]), "height"),
        (lambda d: d["inputs"][0].update(value_range=[1e308, -1e308]), "value_range"),
        (lambda d: d["outputs"][0].update(kind="scores"), "kind"),
        (lambda d: d["dims"]["batch"].update(max=0), "dims.batch.max"),
        (lambda d: d["preprocessing"]["steps"][2].update(std=["x"]), "normalize"),
        (lambda d: d["labels"].append("7\x1b[31m"), "control characters"),
        (lambda d: d["artifacts"][1].update(file="onnx/" + "a" * 600), "plain relative path"),
        (lambda d: d["artifacts"][1].update(file="onnx/\ud800.onnx"), "plain relative path"),
        (lambda d: d.update(layer_report={"formats": {"onnx": [{"layer": 1}]}}), "layer_report"),
        (lambda d: d.update(calibration=[]), "calibration"),
        (lambda d: d.update(artifacts={}), "artifacts"),
    ],
)
def test_tampered_manifest_names_the_field(bundle_copy, mutate, match):
    d = _manifest(bundle_copy)
    mutate(d)
    _write(bundle_copy, d)
    with pytest.raises(BundleError, match=match):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("text", ["", "{", "[]", '"x"', '{"schema_version": NaN}'])
def test_invalid_json(text):
    with pytest.raises(BundleError, match="manifest.json"):
        parse_manifest(text)


@pytest.mark.parametrize(
    "bad", ["../outside.onnx", "/etc/passwd", "onnx/../../x", "onnx\\model.onnx", "./m", ""]
)
def test_paths_leaving_the_bundle(bundle_copy, bad):
    d = _manifest(bundle_copy)
    d["artifacts"][2]["file"] = bad
    _write(bundle_copy, d)
    with pytest.raises(BundleError, match="leaves the bundle|plain relative"):
        load_bundle(bundle_copy)


def test_symlinked_file_is_rejected(bundle_copy, tmp_path):
    # Same bytes, so only the symlink itself can be the reason.
    target = bundle_copy / "onnx" / "model.onnx"
    outside = tmp_path / "outside.onnx"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    os.symlink(outside, target)
    with pytest.raises(BundleError, match="onnx/model.onnx.*symlink"):
        load_bundle(bundle_copy)


def test_symlinked_folder_is_rejected(bundle_copy, tmp_path):
    os.rename(bundle_copy / "openvino", tmp_path / "ov")
    os.symlink(tmp_path / "ov", bundle_copy / "openvino")
    with pytest.raises(BundleError, match="symlink"):
        load_bundle(bundle_copy)


def test_symlinked_manifest_is_rejected(bundle_copy, tmp_path):
    m = bundle_copy / MANIFEST_FILE
    os.rename(m, tmp_path / "m.json")
    os.symlink(tmp_path / "m.json", m)
    with pytest.raises(BundleError, match="symlink"):
        load_bundle(bundle_copy)


def test_bundle_module_is_torch_free(full_bundle):
    code = (
        "import sys; from edgeport.bundle import load_bundle; "
        f"b = load_bundle({str(full_bundle)!r}); b.read_verified(b.artifact('onnx')); "
        "bad = [m for m in ('torch', 'onnx', 'openvino', 'onnxruntime') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_golden_io_keeps_to_its_budget():
    """64 MNIST images (3 KiB each) stay 64; 224x224 RGB images (588 KiB) drop to what fits 8 MiB, not
    under 16 (an explicit --golden-samples bypasses this: golden_feeds takes it as given)."""
    from edgeport.export.golden import DEFAULT_SAMPLES, MIN_SAMPLES, default_count
    from edgeport.specs import BATCH, Dim, Signature, TensorSpec

    def sig(*shape):
        x, y = TensorSpec("x", "float32", (BATCH, *shape)), TensorSpec("y", "float32", (BATCH, 10))
        return Signature((x,), (y,), {BATCH: Dim(BATCH, 1, 64)})

    assert default_count(sig(1, 28, 28)) == DEFAULT_SAMPLES == 64
    assert default_count(sig(3, 224, 224)) == MIN_SAMPLES == 16
    assert default_count(sig(3, 112, 112)) == (8 << 20) // (3 * 112 * 112 * 4) == 55
