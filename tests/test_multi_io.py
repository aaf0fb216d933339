"""Models with several inputs and outputs on every backend, and artifacts that lie about their outputs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from edgeport.bundle import load_bundle
from edgeport.cli import main
from edgeport.errors import BundleError, InputError, OutputError
from test_runtime_support import write_bundle


@pytest.fixture(scope="module")
def two_io(tmp_path_factory):
    import export_fixtures as fx

    return fx.two_io_bundle(tmp_path_factory)


def _feeds(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.standard_normal((n, 3, 16, 16)).astype(np.float32),
        "vector": rng.standard_normal((n, 6)).astype(np.float32),
    }


BACKENDS = ["torch", "torchscript", "onnxruntime", "openvino", "executorch"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_runs_two_in_two_out(two_io, backend):
    b = load_bundle(two_io)
    b.trusted = True
    fmt = {"onnxruntime": "onnx"}.get(backend, backend)
    if not b.has(fmt):
        pytest.skip(f"the test bundle has no {fmt} artifact (package missing)")
    with b.runner("torch") as ref_runner:
        ref = ref_runner.run(_feeds())
    with b.runner(backend) as r:
        out = r.run(_feeds())
        assert list(out) == ["logits", "embedding"] and out["logits"].shape == (3, 4)
        for k in out:
            np.testing.assert_allclose(out[k], ref[k], atol=1e-4, rtol=1e-4, err_msg=f"{backend} {k}")
        with pytest.raises(InputError, match="pass a dict"):
            r.run(_feeds()["image"])
        with pytest.raises(InputError, match="missing input.*'vector'"):
            r.run({"image": _feeds()["image"]})
        bad = _feeds()
        bad["vector"] = bad["vector"][:2]
        with pytest.raises(InputError, match="must agree"):
            r.run(bad)
        prepared = r.prepare(_feeds(2, seed=1))
        prepared()
        got = prepared.fetch()
        prepared.release()
        assert set(got) == {"logits", "embedding"}
        np.testing.assert_allclose(
            got["embedding"], r.run(_feeds(2, seed=1))["embedding"], rtol=1e-6, atol=1e-6
        )


def test_bench_feeds_both_inputs(two_io, tmp_path):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "bench",
            str(two_io),
            "--batch-sizes",
            "1,4",
            "--min-seconds",
            "0.05",
            "--min-iters",
            "5",
            "--warmup-seconds",
            "0",
            "--backends",
            "onnxruntime,openvino",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert {(r["backend"], r["batch_size"]) for r in rows} == {
        (b, n) for b in ("onnxruntime", "openvino") for n in (1, 4)
    }
    assert all(r["throughput_per_s"] > 0 for r in rows)


def test_verify_reports_each_output(two_io, capsys):
    from edgeport.runtime.verify import verify

    with pytest.raises(Exception, match="EDGEPORT_TRUST_MODEL_CODE"):  # the reference imports user code
        verify(two_io, data="synthetic", backends=["onnxruntime"], progress=False)
    b = load_bundle(two_io)
    b.trusted = True
    report = verify(b, data="synthetic", backends=["onnxruntime", "openvino"], progress=False)
    assert report["passed"] and report["data"]["evidence"].startswith("random")
    for row in report["rows"]:
        assert set(row["outputs"]) == {"logits", "embedding"}
        assert row["agreement"] == 1.0 and row["metrics"]["agreement"] == 1.0  # the logits' task metric
        assert row["outputs"]["embedding"]["passed"] and "agreement" not in row["outputs"]["embedding"]


def test_inspect_shows_parity_per_output_and_batch_size(two_io, capsys):
    from edgeport.cli import main

    assert main(["inspect", str(two_io)]) == 0
    out = capsys.readouterr().out
    assert "max abs difference per output at batch 1, 2, 7, 64: passed" in out
    for fmt in ("torchscript", "onnx", "openvino", "executorch"):
        for name in ("logits", "embedding"):
            line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"{fmt}/fp32 {name} "))
            assert all(f"b{b} " in line for b in (1, 2, 7, 64)) and "FAIL" not in line, line


# ------------------------------------------------------------------ artifacts that lie about their outputs


def _forge_onnx(bundle_dir, build):
    """Replace the bundle's ONNX model by ``build(helper, TensorProto)`` and re-hash the manifest (a forgery)."""
    import onnx
    from onnx import TensorProto, helper

    model = build(helper, TensorProto)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    (bundle_dir / "onnx" / "model.onnx").write_bytes(data)
    m = json.loads((bundle_dir / "manifest.json").read_text())
    art = next(a for a in m["artifacts"] if a["format"] == "onnx")
    art["sha256"], art["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (bundle_dir / "manifest.json").write_text(json.dumps(m))
    return bundle_dir


def _graph(helper, TensorProto, nodes, out_shape, out_type=None, inits=()):
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])
    out = helper.make_tensor_value_info("probs", out_type or TensorProto.FLOAT, out_shape)
    g = helper.make_graph(nodes, "forged", [inp], [out], initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _slice9(helper, TensorProto):
    inits = [
        helper.make_tensor(n, TensorProto.INT64, [1], v) for n, v in (("s", [0]), ("e", [9]), ("ax", [1]))
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["f"]),
        helper.make_node("Slice", ["f", "s", "e", "ax"], ["probs"]),
    ]
    return _graph(helper, TensorProto, nodes, ["batch", "k"], inits=inits)


def _extra_row(helper, TensorProto):
    inits = [
        helper.make_tensor(n, TensorProto.INT64, [1], v) for n, v in (("s", [0]), ("e", [10]), ("ax", [1]))
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["f"]),
        helper.make_node("Slice", ["f", "s", "e", "ax"], ["ten"]),
        helper.make_node("Concat", ["ten", "ten"], ["probs"], axis=0),
    ]
    return _graph(helper, TensorProto, nodes, ["rows", 10], inits=inits)


def _fixed9(helper, TensorProto):
    m = _slice9(helper, TensorProto)
    m.graph.output[0].type.tensor_type.shape.dim[1].ClearField("dim_param")
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 9
    return m


def _int64(helper, TensorProto):
    inits = [
        helper.make_tensor(n, TensorProto.INT64, [1], v) for n, v in (("s", [0]), ("e", [10]), ("ax", [1]))
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["f"]),
        helper.make_node("Slice", ["f", "s", "e", "ax"], ["ten"]),
        helper.make_node("Cast", ["ten"], ["probs"], to=TensorProto.INT64),
    ]
    return _graph(helper, TensorProto, nodes, ["batch", 10], TensorProto.INT64, inits)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (_slice9, BundleError, r"shape \['batch', 9\]"),  # ORT infers the 9: refused at load
        (_extra_row, OutputError, "axis 0 is 4, expected 2"),
        (_fixed9, BundleError, "shape"),
        (_int64, BundleError, "int64"),
    ],
    ids=["columns", "rows", "fixed-shape", "dtype"],
)
def test_forged_outputs_are_refused(tmp_path, build, error, match, capsys):
    b = _forge_onnx(write_bundle(tmp_path / "b", int8=False), build)
    with pytest.raises(error, match=match):
        with load_bundle(b).runner("onnxruntime") as r:
            r.run(np.zeros((2, 1, 28, 28), np.float32))
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "d.png")
    rc = main(["predict", str(b), str(tmp_path / "d.png")])
    assert rc == (1 if error is OutputError else 2)
    cap = capsys.readouterr()
    assert (
        cap.out == "" and cap.err.count("\n") == 1 and "Traceback" not in cap.err
    )  # nothing printed as a result


def test_extreme_inputs_giving_nan_are_refused(tmp_path):
    """Finite inputs, non-finite outputs: OutputError, never NaN probabilities handed back."""

    def exp_overflow(helper, TensorProto):
        inits = [
            helper.make_tensor(n, TensorProto.INT64, [1], v)
            for n, v in (("s", [0]), ("e", [10]), ("ax", [1]))
        ]
        nodes = [
            helper.make_node("Flatten", ["input"], ["f"]),
            helper.make_node("Slice", ["f", "s", "e", "ax"], ["ten"]),
            helper.make_node("Exp", ["ten"], ["big"]),
            helper.make_node("Softmax", ["big"], ["probs"], axis=1),
        ]
        return _graph(helper, TensorProto, nodes, ["batch", 10], inits=inits)

    b = _forge_onnx(write_bundle(tmp_path / "b", int8=False), exp_overflow)
    with load_bundle(b).runner("onnxruntime") as r:
        assert np.isfinite(r.run(np.zeros((1, 1, 28, 28), np.float32))).all()
        with pytest.raises(OutputError, match="NaN or infinite"):
            r.run(np.full((1, 1, 28, 28), 1e4, np.float32))
