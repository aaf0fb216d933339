"""Any task: named dynamic dims on every format, task gates at export and verify, broken int8 caught.

The models are small and built so their answers have wide margins (the brightest channel per pixel, a
grid detector, a transformer tagger), so int8 holds where it should and a damaged int8 artifact fails
on the task's own metric.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.bundle import load_bundle
from edgeport.config import CalibrationConfig, ExportConfig
from edgeport.errors import ConfigError, InputError
from edgeport.export.api import export
from edgeport.runtime.verify import format_table, verify

ALL = ("torchscript", "onnx", "openvino", "executorch")
BACKEND = {
    "torchscript": "torchscript",
    "onnx": "onnxruntime",
    "openvino": "openvino",
    "executorch": "executorch",
}


def blocks(n: int, size: int = 32, cell: int = 8, seed: int = 0, dark: float = 0.0) -> np.ndarray:
    """Images of solid cells, each bright in one random channel (or dark with probability ``dark``)."""
    rng = np.random.default_rng(seed)
    k = size // cell
    ch = rng.integers(0, 3, size=(n, k, k))
    on = rng.random((n, k, k)) >= dark
    x = np.zeros((n, 3, k, k), np.float32)
    for c in range(3):
        x[:, c] = ((ch == c) & on) * 1.0 + rng.uniform(0, 0.1, size=(n, k, k))
    return np.repeat(np.repeat(x, cell, axis=2), cell, axis=3).astype(np.float32)


@pytest.fixture(scope="module")
def tagger_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("task") / "tagger"
    return export(  # written by this process: trusted (the reference imports user_models)
        model_ref="user_models:tagger",
        random_init=True,
        inputs=["ids:batch,seq:int64"],
        config=ExportConfig(task="token", dims=("seq=4..512",)),
        data="synthetic:64",
        calibration=CalibrationConfig(size=16),
        out=out,
        progress=False,
    )


def test_transformer_encoder_exports_to_every_format_with_a_dynamic_seq(tagger_bundle):
    b = tagger_bundle
    assert {a.format for a in b.artifacts} >= set(ALL) and not b.failures
    seq = b.signature.dims["seq"]
    assert (seq.min, seq.max) == (4, 512) and seq.example not in (1, 2)  # distinct from the batch's 2
    assert b.signature.output("output").shape == ("batch", "seq", 5)  # the output follows the input's dim
    assert b.artifact("onnx").details["exporter"] == "torch.onnx (dynamo)"  # the TorchScript one bakes seq
    assert "seq=4" in b.artifact("onnx").details["exporter_fallback"]
    parity = b.manifest.parity
    assert parity["dim_points"] == ["seq=4", "seq=259", "seq=512"]
    for key, fig in parity["artifacts"].items():
        assert set(fig["dims"]) == {"seq=4", "seq=259", "seq=512"}, key
        for point, row in fig["dims"].items():
            assert row["passed"] and row["max_abs"] <= 1e-4, (key, point, row)
            assert row["metrics"]["token_agreement"] == 1.0
    pte = b.artifact("executorch").details
    assert pte["planned_for"] == {"batch": 64, "seq": 512} and pte["planned_memory_bytes"] > 0


@pytest.mark.parametrize("length", [3, 600])
def test_sequence_lengths_outside_the_bounds_are_refused_on_every_backend(tagger_bundle, length):
    ids = np.ones((1, length), np.int64)
    for fmt in ALL:
        with tagger_bundle.runner(BACKEND[fmt]) as r, pytest.raises(InputError) as info:
            r.run(ids)
        msg = str(info.value)
        assert f"seq = {length} is outside 4..512" in msg and "\n" not in msg, (fmt, msg)


def test_verify_checks_every_dim_point(tagger_bundle):
    report = verify(tagger_bundle, data="synthetic:16", precisions=["fp32"], progress=False)
    assert report["passed"], format_table(report)
    assert report["dim_points"] == ["seq=4", "seq=259", "seq=512"] and report["task"] == "token"
    for row in report["rows"]:
        assert row["n"] == 16 + 3 * 4 and row["checks"] == ["tolerance", "token_agreement"]


def _damage_onnx_int8(bundle_path, factor: float = 100.0) -> None:
    """Multiply the scale of the first weight DequantizeLinear by ``factor`` (a broken quantizer), and
    record the new file in the manifest so the bundle still loads."""
    import hashlib

    import onnx
    from onnx import numpy_helper

    path = bundle_path / "onnx" / "model.int8.onnx"
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits)
    scale = inits[dq.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(factor), scale.name))
    data = model.SerializeToString()
    path.write_bytes(data)
    m = json.loads((bundle_path / "manifest.json").read_text())
    for a in m["artifacts"]:
        if a["file"] == "onnx/model.int8.onnx":
            a["sha256"], a["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (bundle_path / "manifest.json").write_text(json.dumps(m))


def _npz(tmp_path, name: str, x: np.ndarray) -> str:
    path = tmp_path / f"{name}.npz"
    np.savez(path, image=x)
    return f"npz:{path}"


def test_segmenter_int8_is_judged_by_pixels_and_miou_and_a_damaged_one_fails(tmp_path):
    out = tmp_path / "seg"
    b = export(
        model_ref="user_models:channel_seg",
        random_init=True,
        inputs=["image:batch,3,height,width:float32:raw"],
        outputs=["mask:mask_logits"],
        config=ExportConfig(task="segment", dims=("height=16..64", "width=16..64@24"), int8=True),
        int8_formats=["onnx"],
        data=_npz(tmp_path, "seg", blocks(160, size=32, cell=4)),
        calibration=CalibrationConfig(size=64, method="minmax"),
        out=out,
        progress=False,
    )
    assert b.task.name == "segment" and b.signature.output("mask").shape == ("batch", 4, "height", "width")
    assert set(b.manifest.parity["dim_points"]) == {
        "height=16",
        "height=41",
        "height=64",
        "width=16",
        "width=41",
        "width=64",
    }
    data = _npz(tmp_path, "eval", blocks(40, size=32, cell=4, seed=5))
    good = verify(b, data=data, backends=["onnxruntime"], progress=False)
    assert good["passed"], format_table(good)
    int8 = next(r for r in good["rows"] if r["precision"] == "int8")
    assert int8["checks"] == ["pixel_agreement", "miou_ref"] and int8["metrics"]["pixel_agreement"] >= 0.98
    _damage_onnx_int8(out)
    damaged = load_bundle(out)
    damaged.trusted = True  # the reference model imports user_models
    bad = verify(damaged, data=data, backends=["onnxruntime"], precisions=["int8"], progress=False)
    (row,) = bad["rows"]
    assert not row["passed"] and any(r.startswith(("pixel_agreement", "miou_ref")) for r in row["reasons"]), (
        row
    )


def test_detector_int8_is_judged_by_matched_boxes_and_a_damaged_one_fails(tmp_path):
    out = tmp_path / "det"
    b = export(
        model_ref="user_models:grid_detector",
        random_init=True,
        inputs=["image:1,3,32,32:float32:raw"],
        config=ExportConfig(task="detect", int8=True),
        int8_formats=["onnx"],
        data=_npz(tmp_path, "det", blocks(160, dark=0.5)),
        calibration=CalibrationConfig(size=64, method="minmax"),
        out=out,
        progress=False,
    )
    assert [s.role for s in b.signature.outputs] == ["boxes", "scores"]
    assert b.manifest.task["params"]["score_threshold"] == 0.3
    data = _npz(tmp_path, "eval", blocks(40, seed=6, dark=0.5))
    good = verify(b, data=data, backends=["onnxruntime"], progress=False)
    assert good["passed"], format_table(good)
    int8 = next(r for r in good["rows"] if r["precision"] == "int8")
    assert int8["metrics"]["ref_boxes"] > 100 and int8["metrics"]["matched_recall"] >= 0.95
    _damage_onnx_int8(out)
    damaged = load_bundle(out)
    damaged.trusted = True  # the reference model imports user_models
    bad = verify(damaged, data=data, backends=["onnxruntime"], precisions=["int8"], progress=False)
    (row,) = bad["rows"]
    assert not row["passed"] and any(r.startswith(("matched_", "mean_iou")) for r in row["reasons"]), row
    assert "matched_" in format_table(bad)


def test_a_model_whose_outputs_fit_no_classifier_must_name_its_task(tmp_path):
    with pytest.raises(ConfigError, match="what does this model do.*--task"):
        export(
            model_ref="user_models:channel_seg",
            random_init=True,
            inputs=["image:1,3,16,16:float32:raw"],
            data="synthetic",
            out=tmp_path / "x",
            progress=False,
        )
    assert not (tmp_path / "x").exists()


def test_submodules_named_like_graphmodule_attributes_still_lower_to_executorch(tmp_path):
    b = export(
        model_ref="user_models:shadowing",
        random_init=True,
        inputs=["x:1,16"],
        config=ExportConfig(formats=("executorch",), task="raw"),
        formats_explicit=True,
        data="synthetic",
        out=tmp_path / "s",
        progress=False,
    )
    art = b.artifact("executorch")
    assert "meta, graph" in art.details["renamed"] and b.manifest.parity["passed"]
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    with b.runner("torch") as ref, b.runner("executorch") as et:
        np.testing.assert_allclose(et.run(x), ref.run(x), atol=1e-5)
