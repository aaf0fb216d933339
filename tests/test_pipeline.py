import json

import pytest

from edgeport.cli import main
from edgeport.config import TrainConfig
from edgeport.pipeline import PipelineConfig, run_pipeline

FAST = dict(bench_min_seconds=0.05, bench_min_iters=5, bench_warmup_seconds=0.01)


def test_pipeline_end_to_end_on_synthetic_data(synthetic_pipeline):
    out, result = synthetic_pipeline
    assert result.passed, result.gates
    for name in (
        "train.json",
        "model.safetensors",
        "bundle/manifest.json",
        "verify.json",
        "bench.json",
        "devices.json",
        "grid.png",
        "report.md",
        "report.html",
        "pipeline.json",
    ):
        assert (out / name).is_file(), name
    verify = json.loads((out / "verify.json").read_text())
    precisions = {(r["backend"], r["precision"]) for r in verify["rows"]}
    assert {
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("openvino", "int8"),
        ("torchscript", "int8"),
        ("executorch", "fp32"),
        ("executorch", "int8"),
    } <= precisions
    for r in verify["rows"]:  # every int8 row judged by the task's int8 gates, and within them
        if r["precision"] == "int8":
            assert r["passed"] and r["gates"].get("accuracy_drop") is not None, r
            assert r["metrics"]["agreement"] >= r["gates"]["agreement@labelled"], r
            assert r["metrics"]["accuracy_drop"] <= r["gates"]["accuracy_drop"] + 1e-12, r
    bench = json.loads((out / "bench.json").read_text())
    assert {r["batch_size"] for r in bench["rows"]} == set(PipelineConfig().batch_sizes) == {1, 8, 64, 256}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5  # training, latency, pareto, scaling, grid
    summary = json.loads((out / "pipeline.json").read_text())
    assert summary["passed"] and set(summary["stages_seconds"]) >= {
        "train",
        "export",
        "verify",
        "bench",
        "report",
    }


def test_pipeline_refuses_existing_run_and_resumes(synthetic_pipeline, synthetic_mnist, capsys):
    out, _ = synthetic_pipeline
    before = (out / "model.safetensors").read_bytes()
    assert main(["pipeline", "--data-dir", str(synthetic_mnist), "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    config = PipelineConfig(train=TrainConfig(epochs=3, batch_size=64), **FAST)  # the default int8 gate
    # the bundle holds TorchScript (code): it is reused only with the opt-in (issue 22, class 2)
    result = run_pipeline(
        out=out, data_dir=synthetic_mnist, config=config, resume=True, progress=False, trust_model_code=True
    )
    assert result.skipped == ["train", "export"] and result.passed
    assert (out / "model.safetensors").read_bytes() == before


def test_failing_gate_exits_nonzero_with_one_line_per_gate(tmp_path, synthetic_mnist, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "pipeline",
            "--data-dir",
            str(synthetic_mnist),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--atol",
            "1e-12",
            "--no-int8",
            "--formats",
            "onnx",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "gate failed: export parity" in err and "Traceback" not in err
    assert "pipeline FAILED" in err
    # the stages that ran stay on disk for inspection
    assert (out / "model.safetensors").is_file() and (out / "pipeline.json").is_file()
    assert json.loads((out / "pipeline.json").read_text())["passed"] is False


def test_report_rebuilds_from_saved_json(synthetic_pipeline, capsys):
    out, _ = synthetic_pipeline
    before = (out / "report.md").read_bytes()
    assert main(["report", str(out)]) == 2  # the report exists: refused without --force, kept
    assert "--force" in capsys.readouterr().err and (out / "report.md").read_bytes() == before
    (out / "report.html").unlink()
    assert main(["report", str(out), "--force"]) == 0
    assert (out / "report.html").is_file()
    assert "report.html" in capsys.readouterr().out


# ------------------------------------------------------------------ your model, your data


@pytest.fixture(scope="module")
def rgb_weights(tmp_path_factory, rgb_folder):
    """user_models:logits_cnn trained briefly on the RGB folder, with the preprocessing the export will record."""
    import torch
    from safetensors.torch import save_file

    import user_models
    from edgeport.preprocessing import build
    from edgeport.sources.data import open_source
    from edgeport.specs import BATCH, Dim, Signature, TensorSpec

    spec = TensorSpec("input", "float32", (BATCH, 3, 16, 16), layout="NCHW")
    sig = Signature(
        (spec,), (TensorSpec("logits", "float32", (BATCH, 5), kind="logits"),), {BATCH: Dim(BATCH, 1, 64)}
    )
    src = open_source(f"imagefolder:{rgb_folder}", signature=sig, preprocessing=build(input_spec=spec))
    feeds, labels = next(src.batches(len(src)))
    x, y = torch.from_numpy(feeds["input"]), torch.from_numpy(labels)
    torch.manual_seed(0)
    model = user_models.logits_cnn_10()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("w") / "cnn.safetensors"
    save_file(model.state_dict(), str(path))
    return path


def test_pipeline_on_your_model_and_image_folder(tmp_path, rgb_folder, rgb_weights, capsys):
    """--model + --weights + --data imagefolder:DIR: export -> int8 -> verify -> bench -> report, same gates."""
    out = tmp_path / "run"
    rc = main(
        [
            "pipeline",
            "--model",
            "user_models:logits_cnn_10",
            "--weights",
            str(rgb_weights),
            "--input-shape",
            "1,3,16,16",
            "--data",
            f"imagefolder:{rgb_folder}",
            "--out",
            str(out),
            "--calibration-size",
            "100",
            "--formats",
            "onnx,openvino",
            "--batch-sizes",
            "1,8",
            "--quiet",
            "--max-accuracy-drop",
            "1.0",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert not (out / "train.json").exists()  # your model: no training
    verify = json.loads((out / "verify.json").read_text())
    assert verify["data"]["kind"] == "imagefolder" and verify["data"]["evidence"] == "real labelled"
    assert verify["data"]["n"] == 600 - 100  # the calibration split never meets the verdict
    assert {(r["format"], r["precision"]) for r in verify["rows"]} >= {("onnx", "int8"), ("openvino", "int8")}
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert manifest["labels"] == [f"class_{i}" for i in range(10)]
    assert (out / "samples.png").is_file() and not (out / "grid.png").exists()
    md = (out / "report.md").read_text()
    assert "Sample images of your eval data" in md and "real labelled" in md


@pytest.mark.mnist
def test_real_pipeline_passes_all_gates(mnist_root, tmp_path):
    out = tmp_path / "run"
    result = run_pipeline(out=out, data_dir=mnist_root, config=PipelineConfig(**FAST), progress=False)
    assert result.passed, result.gates
    info = json.loads((out / "train.json").read_text())
    assert info["test_accuracy"] >= 0.98
    verify = json.loads((out / "verify.json").read_text())
    int8 = [r for r in verify["rows"] if r["precision"] == "int8"]
    assert len(int8) >= 3 and all(r["passed"] for r in verify["rows"])
