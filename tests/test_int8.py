"""int8 artifacts: real quantization on every format, proven, reported per layer, accurate."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeport.calibration import proof
from edgeport.calibration.layer_report import format_layer_report
from edgeport.checkpoint import load_run
from edgeport.config import CalibrationConfig, TrainConfig
from edgeport.data import load_mnist
from edgeport.errors import ExportError
from edgeport.export.int8 import INT8_FILES, add_int8_artifacts, candidates

FORMATS = ("torchscript", "onnx", "openvino")
LAYERS = ["linear_stack.0", "linear_stack.3", "linear_stack.6"]


def write_fp32(model: torch.nn.Module, staging: Path) -> dict[str, Path]:
    """fp32 artifacts in the bundle layout, made directly (independent of export/)."""
    import openvino as ov

    example = torch.zeros(2, 1, 28, 28)
    paths = {
        "onnx": staging / "onnx/model.onnx",
        "openvino": staging / "openvino/model.xml",
        "torchscript": staging / "torchscript/model.pt",
    }
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(paths["onnx"]),
            input_names=["input"],
            output_names=["probs"],
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}},
            dynamo=False,
        )
        torch.jit.save(torch.jit.freeze(torch.jit.trace(model, example)), str(paths["torchscript"]))
    ov.save_model(ov.convert_model(str(paths["onnx"])), str(paths["openvino"]), compress_to_fp16=False)
    return paths


def run_int8(run_dir: Path, data_dir: Path, staging: Path, config: CalibrationConfig):
    model, _ = load_run(run_dir)
    data = load_mnist(data_dir, download=False)
    fp32 = write_fp32(model, staging)
    res = add_int8_artifacts(
        staging=staging, model=model, fp32=fp32, data=data, config=config, formats=FORMATS, progress=False
    )
    return res, fp32, model, data


@pytest.fixture(scope="module")
def tiny_int8(tiny_run, synthetic_mnist, tmp_path_factory):
    staging = tmp_path_factory.mktemp("int8") / "staging"
    return (
        staging,
        *run_int8(tiny_run, synthetic_mnist, staging, CalibrationConfig(size=100, method="auto")),
    )


def test_files_written_and_proven(tiny_int8):
    staging, res, fp32, *_ = tiny_int8
    assert [a["format"] for a in res.artifacts] == list(FORMATS)
    for art in res.artifacts:
        assert art["precision"] == "int8" and art["file"] == INT8_FILES[art["format"]]
        for rel in [art["file"], *art["extra_files"]]:
            assert (staging / rel).is_file(), rel
        d = art["details"]
        assert d["size_ratio"] <= proof.MAX_SIZE_RATIO
        assert set(d["candidates"]) == {n for n, _ in candidates(art["format"], "auto")}
        assert d["selected"] in d["candidates"]
        # The saved file passes every check when inspected again from disk.
        proof.prove(art["format"], staging / art["file"], fp32[art["format"]])
    assert res.artifacts[2]["extra_files"] == ["openvino/model.int8.bin"]
    assert not (staging / ".int8-candidates").exists()


def test_calibration_record(tiny_int8):
    _, res, _, _, data = tiny_int8
    cal = res.calibration
    assert cal["size"] == 100 and cal["method"] == "auto"
    assert set(cal["indices"]) <= set(data.train_indices.tolist())
    assert sorted(cal["class_counts"].values()) == [10] * 10


def test_layer_report_names_pytorch_modules(tiny_int8):
    _, res, *_ = tiny_int8
    rep = res.layer_report
    for fmt in FORMATS:
        rows = rep["formats"][fmt]
        assert [r["layer"] for r in rows] == [*LAYERS, "output"], (fmt, rows)
        assert all(r["sqnr_db"] is None or r["sqnr_db"] > 10 for r in rows), (fmt, rows)
    table = format_layer_report({"layer_report": rep})
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
        ("torchscript", "model.int8.pt", "torchscript quantized linear"),
    ],
)
def test_each_proof_fails_on_fp32_renamed_as_int8(tiny_int8, tmp_path, fmt, name, check):
    _, _, fp32, *_ = tiny_int8
    fake = _renamed(fp32[fmt], tmp_path, name)
    with pytest.raises(ExportError, match=check):
        proof.PROVERS[fmt](fake)
    with pytest.raises(ExportError, match="check 'size'"):
        proof.prove_size(fake, fp32[fmt])
    with pytest.raises(ExportError):
        proof.prove(fmt, fake, fp32[fmt])


def test_onnx_int8_weight_check(tiny_int8, tmp_path):
    """Q/DQ nodes alone are not enough: the weights themselves must be stored as int8."""
    import onnx

    staging, _, fp32, *_ = tiny_int8
    model = onnx.load(str(staging / INT8_FILES["onnx"]))
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) >= 2:
            arr = onnx.numpy_helper.to_array(init).astype(np.float32)
            init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(tmp_path / "model.int8.onnx"))
    with pytest.raises(ExportError, match="onnx int8 weights"):
        proof.prove_onnx(tmp_path / "model.int8.onnx")


def test_missing_fp32_artifact(tiny_run, synthetic_mnist, tmp_path):
    model, _ = load_run(tiny_run)
    with pytest.raises(ExportError, match="fp32 onnx"):
        add_int8_artifacts(
            staging=tmp_path,
            model=model,
            fp32={},
            data=load_mnist(synthetic_mnist, download=False),
            config=CalibrationConfig(size=20),
            formats=["onnx"],
            progress=False,
        )


@pytest.mark.mnist
def test_int8_accuracy_on_real_mnist(mnist_root, tmp_path_factory):
    """Every int8 artifact: test accuracy within 0.2 pt of fp32, top-1 agreement >= 99.5%."""
    from edgeport.runtime.parity import TOLERANCES
    from edgeport.train import train

    run = tmp_path_factory.mktemp("mnist_run") / "run"
    train(TrainConfig(epochs=4), data_dir=mnist_root, out=run, progress=False)
    staging = tmp_path_factory.mktemp("mnist_int8") / "staging"
    res, _, model, data = run_int8(run, mnist_root, staging, CalibrationConfig())
    x = torch.from_numpy(data.preprocessing.apply(data.test_images))
    with torch.no_grad():
        fp32_acc = float(np.mean(model(x).numpy().argmax(1) == data.test_labels))
    tol = TOLERANCES["int8"]
    for art in res.artifacts:
        d = art["details"]
        assert fp32_acc - d["test_accuracy"] <= tol.max_accuracy_drop + 1e-9, (art["format"], fp32_acc, d)
        assert d["test_agreement"] >= tol.min_agreement, (art["format"], d)
