"""int8 artifacts: real quantization on every format, chosen by measurement, proven, reported per layer."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import export_fixtures as fx
from edgeport import format_registry as registry
from edgeport.bundle import load_bundle
from edgeport.bundle.describe import format_layer_report
from edgeport.config import CalibrationConfig, ExportConfig, TrainConfig
from edgeport.errors import ConfigError, ExportError
from edgeport.formats.proof import MIN_COVERAGE, prove_layers
from edgeport.sources.mnist import load_mnist

LAYERS = ["linear_stack.0", "linear_stack.3", "linear_stack.6"]


@pytest.fixture(scope="module")
def b(int8_bundle_path):
    return load_bundle(int8_bundle_path)


def int8_formats(bundle) -> list[str]:
    return [a.format for a in bundle.artifacts if a.precision == "int8"]


def test_every_format_has_a_proven_int8_artifact(b):
    assert set(int8_formats(b)) >= {"torchscript", "onnx", "openvino"}
    for art in (a for a in b.artifacts if a.precision == "int8"):
        mod = registry.module(art.format)
        assert art.file == mod.INT8_FILE
        d = art.details
        assert d["proof"] and d["size_ratio"] < 1.0
        lay = d["layers"]  # every weighted layer of the seed MLP is int8 in every format
        assert lay["weighted_layers"] == lay["int8_layers"] == 3 and lay["int8_weight_share"] == 1.0
        assert d["selected"] in d["candidates"] and d["selection_rule"]
        assert set(d["candidates"]) == {n for n, _ in mod.int8_candidates("minmax")}
        for c in d["candidates"].values():
            assert c["throughput_per_s"] > 0 and 0 <= c["agreement"] <= 1 and "within_gate" in c
        within = {n: c for n, c in d["candidates"].items() if c["within_gate"]}
        if within:  # the quantization paradox: of those within the gate, the fastest ships
            assert d["selected"] == max(within, key=lambda n: within[n]["throughput_per_s"])
        m = d["speed_noise_margin"]  # slower only beyond the noise, at batch 1 and at the throughput batch
        slower = d["speedup_vs_fp32"] < 1 - m and d["speedup_vs_fp32_batch1"] < 1 - m
        assert d["speedup_vs_fp32"] > 0 and d["slower_than_fp32"] == slower and 0.03 <= m <= 0.25
        mod.prove_int8(None, b.path_of(art))  # the saved file passes when inspected again from disk
    assert b.artifact("openvino", "int8").extra_files[0].path == "openvino/model.int8.bin"
    assert not (b.path / "int8-candidates").exists()


def test_calibration_record(b, synthetic_mnist):
    data = load_mnist(synthetic_mnist, download=False)
    cal = b.manifest.calibration
    src = cal["source"]
    assert cal["size"] == 100 and cal["method"] == "minmax" and src["split"] == "train"
    assert set(src["file_indices"]) <= set(data.train_indices.tolist())  # never validation or test
    labels = data.train_labels[np.searchsorted(data.train_indices, src["file_indices"])]
    assert np.bincount(labels, minlength=10).tolist() == [10] * 10
    assert cal["selection"]["split"] == "val" and len(src["sha256"]) == 64
    g = b.manifest.golden
    assert set(g["int8_agreement"]) == {f"{f}/int8" for f in int8_formats(b)} and 0 < g["margin"] < 0.1


def test_layer_report_names_pytorch_modules(b):
    rep = b.manifest.layer_report
    for fmt in ("onnx", "openvino", "torchscript"):
        rows = rep["formats"][fmt]
        assert [r["layer"] for r in rows] == [*LAYERS, "output"], (fmt, rows)
        # None only for an exact match (infinite SQNR); a failed tap (shape mismatch) has max_abs_error NaN
        assert all(
            r["sqnr_db"] > 10 if r["sqnr_db"] is not None else r["max_abs_error"] == 0.0 for r in rows
        ), (fmt, rows)
    if "executorch" in rep["formats"]:
        assert [r["layer"] for r in rep["formats"]["executorch"]] == [
            "output"
        ]  # the delegate cannot be tapped
    table = format_layer_report(b)
    assert "linear_stack.3" in table and "openvino/int8" in table
    assert "no int8" in format_layer_report({"layer_report": None})


def _renamed(src: Path, dst_dir: Path, name: str) -> Path:
    dst = dst_dir / name
    shutil.copy(src, dst)
    if src.suffix == ".xml":
        shutil.copy(src.with_suffix(".bin"), dst.with_suffix(".bin"))
    return dst


@pytest.mark.parametrize(
    ("fmt", "name", "check"),
    [
        ("onnx", "model.int8.onnx", "onnx quantize nodes"),
        ("openvino", "model.int8.xml", "openvino int8 ops"),
        ("torchscript", "model.int8.pt", "torchscript quantized ops"),
        ("executorch", "model.int8.pte", "executorch int8 tensors"),
    ],
)
def test_each_proof_fails_on_fp32_renamed_as_int8(b, tmp_path, fmt, name, check):
    if not b.has(fmt):
        pytest.skip(f"no {fmt} artifact (package missing)")
    fp32 = b.artifact(fmt)
    fake = _renamed(b.path_of(fp32), tmp_path, name)
    with pytest.raises(ExportError, match=check):
        registry.module(fmt).prove_int8(None, fake)
    layers = registry.module(fmt).int8_layers(fake)  # read from the file: three float linear layers
    assert [r["int8"] for r in layers] == [False] * 3 and [r["params"] for r in layers] == [
        75264,
        24576,
        2560,
    ]
    with pytest.raises(ExportError, match="check 'int8 layers'.*all 3 weighted layers store float"):
        prove_layers(fake, layers)


def test_onnx_int8_weight_check(b, tmp_path):
    """Q/DQ nodes alone are not enough: the weights themselves must be stored as int8."""
    import onnx

    from edgeport.formats.onnx import prove_int8

    model = onnx.load(str(b.path_of(b.artifact("onnx", "int8"))))
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) >= 2:
            arr = onnx.numpy_helper.to_array(init).astype(np.float32)
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(tmp_path / "model.int8.onnx"))
    with pytest.raises(ExportError, match="onnx int8 weights"):
        prove_int8(None, tmp_path / "model.int8.onnx")


def test_quantize_adds_int8_to_an_fp32_bundle(tiny_run, synthetic_mnist, tmp_path_factory, tmp_path):
    from edgeport.export.api import export
    from edgeport.export.quantize import quantize

    out = tmp_path / "b"
    export(tiny_run, out, config=ExportConfig(formats=("onnx",)), data_dir=synthetic_mnist, progress=False)
    fp32_parity = load_bundle(out).manifest.parity
    cfg = CalibrationConfig(size=50, method="minmax")
    q = quantize(out, calibration=cfg, data_dir=synthetic_mnist, progress=False)
    assert q.has("onnx", "int8") and q.manifest.calibration["size"] == 50 and q.manifest.parity == fp32_parity
    before = fx.tree_digest(out)
    with pytest.raises(ConfigError, match="--force"):
        quantize(out, calibration=cfg, data_dir=synthetic_mnist, progress=False)
    assert fx.tree_digest(out) == before
    q2 = quantize(
        out,
        calibration=CalibrationConfig(size=20, method="minmax"),
        data_dir=synthetic_mnist,
        force=True,
        progress=False,
    )
    assert q2.manifest.calibration["size"] == 20 and sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    with pytest.raises(ConfigError, match="read-only"):
        quantize(fx.SCHEMA1, data_dir=synthetic_mnist, progress=False)


def test_missing_fp32_artifact(tiny_run, synthetic_mnist, tmp_path):
    from edgeport.export.api import export

    with pytest.raises(ConfigError, match="not among the exported"):
        export(
            tiny_run,
            tmp_path / "b",
            config=ExportConfig(formats=("onnx",), int8=True),
            int8_formats=["openvino"],
            data_dir=synthetic_mnist,
            progress=False,
        )


@pytest.mark.mnist
def test_int8_accuracy_on_real_mnist(mnist_root, tmp_path_factory):
    """Every int8 artifact of the seed MLP passes verify, within the int8 gate (0.5 pt of accuracy, 98%
    top-1 agreement with labels) and, as measured on MNIST, within 0.2 pt of fp32 accuracy."""
    from edgeport.export.api import export
    from edgeport.runtime.verify import verify
    from edgeport.seed.train import train
    from edgeport.tasks import classify

    run = tmp_path_factory.mktemp("mnist_run") / "run"
    train(TrainConfig(epochs=6), data_dir=mnist_root, out=run, progress=False)
    out = tmp_path_factory.mktemp("mnist_int8") / "b"
    bundle = export(run, out, config=ExportConfig(int8=True), data_dir=mnist_root, progress=False)
    report = verify(bundle, data_dir=mnist_root, precisions=["int8"], devices=["cpu"], progress=False)
    # export ships int8 only within the gate (judged on the test split, as verify judges it) and
    # names every format it refused; what it ships, verify passes
    shipped = {r["format"] for r in report["rows"]}
    refused = {f["format"]: f["reason"] for f in bundle.failures if f["precision"] == "int8"}
    assert shipped | set(refused) >= {"torchscript", "onnx", "openvino", "executorch"} and len(shipped) >= 2
    assert all("within the gate" in why for why in refused.values()), refused
    for row in report["rows"]:
        assert row["passed"], row
        agree, drop = (g for g in classify.GATES)  # the documented defaults reached verify unchanged
        assert row["gates"] == {"agreement": agree.defaults["int8"], "agreement@labelled": agree.labelled["int8"],
                                "accuracy_drop": drop.defaults["int8"]}, row["gates"]  # fmt: skip
        assert row["accuracy_drop"] <= 0.002 + 1e-9 and row["agreement"] >= agree.labelled["int8"], row


def test_layer_proof_checks_the_plan_not_the_file_size():
    """Mixed precision passes when the planned layers are int8; a plan left unapplied or a quantizer that
    skipped most weights fails, naming the layers."""

    def row(name, params, int8):
        return {"layer": name, "op": "Conv", "params": params, "int8": int8}

    mixed = [row("/stem/Conv", 500, False), row("/blocks.0/Conv", 9000, True), row("/head/Gemm", 600, True)]
    got = prove_layers("m.int8.onnx", mixed)  # a quantizer kept the stem float: listed, still proven
    assert got["float_layers_by_quantizer"] == ["/stem/Conv"] and got["int8_weight_share"] == pytest.approx(
        9600 / 10100, abs=1e-4
    )
    planned = prove_layers("m.int8.onnx", mixed, plan=["stem"])  # the stem planned float: share of the rest
    assert planned["float_layers_planned"] == ["/stem/Conv"] and planned["int8_weight_share"] == 1.0
    with pytest.raises(ExportError, match="check 'float plan'.*blocks.0"):
        prove_layers("m.int8.onnx", mixed, plan=["blocks.0"])
    skipped = [row("/a/Conv", 9000, False), row("/b/Conv", 1000, True)]
    with pytest.raises(ExportError, match=rf"check 'int8 coverage'.*10.0%.*>= {MIN_COVERAGE * 100:.0f}%"):
        prove_layers("m.int8.onnx", skipped)


@pytest.mark.parametrize("model", ["mnist-mlp", "mnist-cnn"])
def test_layer_report_reads_qoperator_graphs(model, tmp_path, synthetic_mnist, monkeypatch):
    """QOperator int8 graphs (QGemm, QLinearConv; ReLU folded into the output range) are tapped too."""
    from edgeport.export.api import export
    from edgeport.formats import onnx as onnx_format

    every = onnx_format.int8_candidates
    monkeypatch.setattr(
        onnx_format, "int8_candidates", lambda m, ctx=None: [c for c in every(m, ctx) if "qoperator" in c[0]]
    )
    q = export(
        model_ref=model,
        random_init=True,
        out=tmp_path / "b",
        data_dir=synthetic_mnist,
        config=ExportConfig(formats=("onnx",), int8=True),
        calibration=CalibrationConfig(size=50, selection_size=64, speed_seconds=0.0),
        progress=False,
    )
    assert q.artifact("onnx", "int8").details["selected"] == "minmax/qoperator"
    rows = q.manifest.layer_report["formats"]["onnx"]
    assert len(rows) >= 4 and rows[-1]["layer"] == "output", rows
    assert all(r["sqnr_db"] is not None and r["sqnr_db"] > 15 for r in rows), rows
