"""bench: every field of every row, the writers, the shared timing loop."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from edgeport.config import BenchConfig
from edgeport.errors import BackendUnavailableError, ConfigError
from edgeport.fsutil import write_json
from edgeport.runtime.benchmark import (
    CSV_FIELDS,
    bench,
    latency_stats,
    markdown_table,
    time_callable,
    write_csv,
    write_markdown,
)
from test_runtime_support import runtime_bundle, runtime_bundle_path  # noqa: F401

TINY = BenchConfig(batch_sizes=(1, 3), warmup_seconds=0.0, min_iters=5, min_seconds=0.0)
ROW_KEYS = {
    "backend",
    "device",
    "format",
    "precision",
    "batch_size",
    "threads",
    "iterations",
    "latency_us",
    "throughput_per_s",
    "load_seconds",
    "first_run_us",
    "peak_rss_mb",
    "rss_mb",
    "cov",
    "warnings",
    "details",
}


def test_time_callable_counts_iterations():
    calls = []
    times = time_callable(lambda: calls.append(1), warmup_seconds=0.0, min_iters=17, min_seconds=0.0)
    assert len(times) == 17 and len(calls) == 18  # one warm-up call
    stats = latency_stats(np.array([1000, 2000, 3000, 4000]))
    assert stats["p50"] == 2.5 and stats["min"] == 1.0 and stats["max"] == 4.0
    assert set(stats) == {"p50", "p90", "p95", "p99", "mean", "std", "min", "max"}


def test_bench_rows_hold_every_field(runtime_bundle_path, tmp_path):  # noqa: F811
    report = bench(runtime_bundle_path, devices=["cpu"], config=TINY, progress=False)
    combos = {(r["backend"], r["precision"]) for r in report["rows"]}
    assert {
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("openvino", "fp32"),
        ("executorch", "fp32"),
        ("executorch", "int8"),
    } <= combos
    assert not any(b == "torchscript" for b, _ in combos)  # not trusted: loaded from a path, not this process
    assert any(s["backend"] == "torchscript" and "arbitrary code" in s["reason"] for s in report["skipped"])
    assert len(report["rows"]) == 2 * len(combos)
    for row in report["rows"]:
        assert set(row) == ROW_KEYS
        assert row["iterations"] >= 5 and row["batch_size"] in (1, 3) and row["threads"] >= 1
        lat = row["latency_us"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert row["throughput_per_s"] > 0 and row["load_seconds"] > 0 and row["first_run_us"] > 0
        assert row["peak_rss_mb"] > 0 and row["cov"] >= 0
        if row["cov"] > 0.10:
            assert row["warnings"] and "CoV" in row["warnings"][0]
    assert "outside the timed region" in report["method"]["input"]
    env = report["device"]
    assert env["cpu"]["logical_cores"] >= 1 and "onnxruntime" in env["versions"] and "flags" in env["cpu"]
    assert env["hostname"] and env["arch"] and env["memory_mb"] > 0 and env["devices"]
    assert report["schema"] == "edgeport.bench/2"

    write_json(tmp_path / "bench.json", report)
    assert json.loads((tmp_path / "bench.json").read_text())["rows"][0]["latency_us"]["p50"] > 0
    write_csv(report, tmp_path / "bench.csv")
    with open(tmp_path / "bench.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(report["rows"]) and tuple(rows[0]) == CSV_FIELDS and float(rows[0]["p50_us"]) > 0
    write_markdown(report, tmp_path / "bench.md")
    md = markdown_table(report)
    assert md.count("\n| ") == len(report["rows"]) and md.startswith("| backend") and "p50" in md


def test_bench_threads_are_recorded(runtime_bundle):  # noqa: F811
    cfg = BenchConfig(batch_sizes=(1, 64), warmup_seconds=0.0, min_iters=3, min_seconds=0.0)
    auto = bench(runtime_bundle, backends=["onnxruntime"], precisions=["fp32"], config=cfg, progress=False)
    assert [r["threads"] for r in auto["rows"]][0] == 1  # batch 1 stays on the calling thread
    fixed = bench(
        runtime_bundle,
        backends=["onnxruntime"],
        precisions=["fp32"],
        progress=False,
        config=BenchConfig(batch_sizes=(1,), threads=2, warmup_seconds=0.0, min_iters=3, min_seconds=0.0),
    )
    assert fixed["rows"][0]["threads"] == 2


def test_bench_rejects_bad_options(runtime_bundle, monkeypatch):  # noqa: F811
    with pytest.raises(ConfigError):
        bench(runtime_bundle, config=BenchConfig(batch_sizes=(0,)), progress=False)
    with pytest.raises(ConfigError, match="unknown backend"):
        bench(runtime_bundle, backends=["nope"], config=TINY, progress=False)
    with pytest.raises(ConfigError, match="unknown precision"):
        bench(runtime_bundle, precisions=["int3"], config=TINY, progress=False)
    with pytest.raises(BackendUnavailableError, match="bundle has no onnx/int4 artifact"):  # decoders only
        bench(runtime_bundle, precisions=["int4"], config=TINY, progress=False)
    with pytest.raises(ConfigError, match="unknown device"):
        bench(runtime_bundle, devices=["tpu"], config=TINY, progress=False)
    from edgeport.runtime.onnxruntime_backend import OnnxRuntimeRunner

    monkeypatch.setattr(
        OnnxRuntimeRunner, "device_status", classmethod(lambda cls, d: (False, "no such GPU here"))
    )
    with pytest.raises(BackendUnavailableError, match="no backend.*onnxruntime:cuda: no such GPU here"):
        bench(runtime_bundle, backends=["onnxruntime"], devices=["cuda"], config=TINY, progress=False)
