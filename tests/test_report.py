"""The report rebuilt from saved JSON: every section, plots, self-contained HTML, missing stages."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from edgeport.errors import DataError
from edgeport.report.writer import write_report

ENV = {"python": "3.12.3", "onnxruntime": "1.32.0", "openvino": "2025.3.0", "cpu": "Intel Xeon", "threads": 2}


def fake_train() -> dict:
    hist = [
        {
            "epoch": e,
            "train_loss": 0.5 / e,
            "val_loss": 0.4 / e,
            "val_accuracy": 0.95 + 0.006 * e,
            "seconds": 4.0 * e,
        }
        for e in range(1, 6)
    ]
    return {
        "model": "mnist-mlp",
        "params": 102762,
        "epochs": 5,
        "seed": 0,
        "train_seconds": 20.1,
        "val_accuracy": 0.98,
        "test_accuracy": 0.9812,
        "history": hist,
        "preprocessing": {"scale": 1 / 255, "mean": 0.1307, "std": 0.3081},
        "labels": [str(i) for i in range(10)],
        "input_shape": [1, 1, 28, 28],
        "environment": {"torch": "2.14.1", "python": "3.12.3", "threads": 2},
    }


COMBOS = [
    ("torch", "cpu", "torch", "fp32", 172.0),
    ("torchscript", "cpu", "torchscript", "fp32", 77.0),
    ("onnxruntime", "cpu", "onnx", "fp32", 24.0),
    ("onnxruntime", "cpu", "onnx", "int8", 21.0),
    ("openvino", "CPU", "openvino", "fp32", 60.0),
    ("openvino", "CPU", "openvino", "int8", 50.0),
]


def fake_verify(fail_int8_ov: bool = True) -> dict:
    res = []
    for backend, device, fmt, prec, _ in COMBOS:
        acc = 0.9812 if prec == "fp32" else 0.9805
        bad = fail_int8_ov and backend == "openvino" and prec == "int8"
        res.append(
            {
                "backend": backend,
                "device": device,
                "format": fmt,
                "precision": prec,
                "accuracy": acc - (0.01 if bad else 0),
                "ref_accuracy": 0.9812,
                "max_abs": 3e-7 if prec == "fp32" else 0.02,
                "max_rel": 1e-6,
                "agreement": 0.999 if prec == "int8" else 1.0,
                "passed": not bad,
                "reasons": ["accuracy drop 1.07 pt > 0.20 pt"] if bad else [],
            }
        )
    return {"results": res, "environment": ENV}


def fake_bench() -> dict:
    rows = []
    for backend, device, fmt, prec, p50 in COMBOS:
        for bs in (1, 32, 256):
            lat = p50 * (1 + bs / 8)
            rows.append(
                {
                    "backend": backend,
                    "device": device,
                    "format": fmt,
                    "precision": prec,
                    "batch_size": bs,
                    "threads": 2,
                    "iterations": 1000,
                    "latency_us": {
                        "p50": lat,
                        "p90": lat * 1.1,
                        "p95": lat * 1.2,
                        "p99": lat * 1.5,
                        "mean": lat,
                        "std": lat * 0.05,
                        "min": lat * 0.9,
                        "max": lat * 3,
                    },
                    "throughput_per_s": bs / lat * 1e6,
                    "load_seconds": 0.05,
                    "first_run_us": lat * 5,
                    "peak_rss_mb": 120.0,
                    "cov": 0.05,
                }
            )
    return {"rows": rows, "environment": dict(ENV, cpu_flags=["avx2", "avx512f", "avx512_vnni"])}


def fake_manifest() -> dict:
    arts = [
        {"format": f, "precision": p, "file": f"model.{p}.{f}", "bytes": b}
        for f, p, b in [
            ("torchscript", "fp32", 414000),
            ("onnx", "fp32", 411000),
            ("onnx", "int8", 108000),
            ("openvino", "fp32", 2000),
            ("openvino", "int8", 12000),
        ]
    ]
    arts[3]["extra_files"] = [{"path": "openvino/fp32.bin", "sha256": "0" * 64, "bytes": 410000}]
    arts[4]["extra_files"] = [{"path": "openvino/int8.bin", "sha256": "0" * 64, "bytes": 100000}]
    return {"artifacts": arts, "environment": {"onnx": "1.23.2", "nncf": "2.18"}}


def write_run(run, *, grid=True):
    run.mkdir(parents=True, exist_ok=True)
    (run / "bundle").mkdir(exist_ok=True)
    (run / "train.json").write_text(json.dumps(fake_train()))
    (run / "verify.json").write_text(json.dumps(fake_verify()))
    (run / "bench.json").write_text(json.dumps(fake_bench()))
    (run / "bundle" / "manifest.json").write_text(json.dumps(fake_manifest()))
    (run / "devices.json").write_text(
        json.dumps(
            [
                {"backend": "onnxruntime", "device": "cpu", "usable": True, "reason": ""},
                {
                    "backend": "onnxruntime",
                    "device": "cuda",
                    "usable": False,
                    "reason": "onnxruntime CUDA provider not installed: pip install onnxruntime-gpu",
                },
            ]
        )
    )
    if grid:
        from edgeport.seed.grid import prediction_grid

        rng = np.random.default_rng(0)
        prediction_grid(
            rng.integers(0, 255, (16, 28, 28)), np.arange(16) % 10, np.arange(16) % 10, run / "grid.png"
        )
    return run


def test_full_report(tmp_path):
    run = write_run(tmp_path / "run")
    md_path, html_path = write_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    for title in (
        "Model and training",
        "Results",
        "Latency per backend",
        "Task metrics: Classification",
        "Quality vs latency",
        "Batch-size scaling",
        "Timing noise",
        "Predictions",
        "Environment",
    ):
        assert f"## {title}" in md and title in page
    for name in ("training", "latency", "pareto", "scaling"):
        assert (run / "plots" / f"{name}.png").stat().st_size > 1000
        assert f"(plots/{name}.png)" in md
    assert "(grid.png)" in md
    # one table row per backend x precision x device, with the pass/fail, size and latency columns
    table = [ln for ln in md.splitlines() if ln.count(" | ") == 10 and not ln.startswith("| backend")]
    assert len(table) == 6
    ort_int8 = next(ln for ln in table if "| onnxruntime | cpu | int8" in ln)
    assert (
        "98.05%" in ort_int8 and "108.0 kB" in ort_int8 and "| pass |" in ort_int8 and "| 23.6 |" in ort_int8
    )
    ov_int8 = next(ln for ln in table if "| openvino | CPU | int8" in ln)
    assert "| FAIL |" in ov_int8 and "112.0 kB" in ov_int8  # .xml + .bin
    assert "accuracy drop 1.07 pt" in md
    assert "Ship **onnxruntime/cpu/int8**" in md  # fastest within 0.2 pt of the best, on the front
    assert "pip install onnxruntime-gpu" in md and "avx512_vnni" in md and "2.14.1" in md
    # self-contained HTML: every image embedded, no external references
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(imgs) == 5 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"src='(?!data:)", page)


def test_missing_stages_say_not_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.json").write_text(json.dumps(fake_train()))
    (run / "verify.json").write_text("{ not json")
    md_path, html_path = write_report(run)
    md = md_path.read_text()
    assert "verify.json is unreadable" in md and "not run (bench.json not found)" in md
    assert "no grid.png or samples.png" in md and "Not run: needs bench results." in md
    assert (run / "plots" / "training.png").is_file() and html_path.is_file()


def test_empty_run_and_tolerant_fields(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    md = write_report(run)[0].read_text()
    assert md.count("not run") + md.count("Not run") >= 5
    # renamed or missing fields show as a dash instead of crashing
    (run / "bench.json").write_text(json.dumps({"rows": [{"backend": "onnxruntime", "batch_size": 1}]}))
    (run / "verify.json").write_text(json.dumps({"rows": [{"backend": "onnxruntime", "passed": "?"}]}))
    from edgeport.errors import ConfigError

    with pytest.raises(ConfigError, match="--force"):  # the report files exist: refused, kept
        write_report(run)
    md = write_report(run, force=True)[0].read_text()
    assert "| onnxruntime | cpu | fp32 | onnx | – |" in md


@pytest.mark.parametrize(
    "name, text",
    [
        ("verify.json", '{"rows": [{"backend": ["x"], "accuracy": "high", "reasons": 5}], "data": 3}'),
        ("train.json", '{"history": [{"epoch": "one", "val_accuracy": "x"}, 7], "params": "many"}'),
        ("bench.json", '{"rows": [{"latency_us": [1, 2], "batch_size": "b", "throughput_per_s": {}}]}'),
        ("verify.json", "[1, 2, 3]"),
        ("bundle/manifest.json", '{"artifacts": [{"format": 1, "extra_files": "x"}]}'),
    ],
)
def test_malformed_run_json_is_never_an_internal_error(tmp_path, name, text, capsys):
    """`report` on a malformed run JSON: a report that shows dashes, or one line naming the problem."""
    from edgeport.cli import main

    run = tmp_path / "run"
    (run / "bundle").mkdir(parents=True)
    (run / name).write_text(text)
    rc = main(["report", str(run)])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "internal error" not in err and "Traceback" not in err
    if rc == 0:
        assert (run / "report.html").is_file()
    else:
        assert err.count("\n") == 1 and "malformed" in err


def test_missing_run_folder(tmp_path):
    with pytest.raises(DataError, match="not found"):
        write_report(tmp_path / "nope")
