"""The report rebuilt from a real run's saved JSON: every section, plots, self-contained HTML, missing stages."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from edgeport.errors import DataError
from edgeport.report.writer import write_report


def _real_run(synthetic_pipeline, dest: Path) -> Path:
    """A copy of a real pipeline run's JSON (train, verify, bench, devices, the bundle), without its report."""
    src, _ = synthetic_pipeline
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("report.md", "report.html", "plots"))
    return dest


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def test_full_report_from_a_real_run(synthetic_pipeline, tmp_path):
    """Every section, one table row per verified artifact with its verdict, size and latency taken from
    the run's own verify.json, bench.json and manifest; plots; a failing row named; self-contained HTML."""
    run = _real_run(synthetic_pipeline, tmp_path / "run")
    verify = json.loads((run / "verify.json").read_text())
    bad = next(r for r in verify["rows"] if r["backend"] == "openvino" and r["precision"] == "int8")
    bad["passed"], bad["reasons"] = False, ["accuracy_drop 1.07 pt > 0.50 pt"]  # as verify writes a failure
    (run / "verify.json").write_text(json.dumps(verify))
    bench = json.loads((run / "bench.json").read_text())
    manifest = json.loads((run / "bundle" / "manifest.json").read_text())

    md_path, html_path = write_report(run)
    md, page = md_path.read_text(), html_path.read_text()
    for title in (
        "Summary",
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
    table = [ln for ln in md.splitlines() if ln.count(" | ") == 10 and not ln.startswith("| backend")]
    keys = {(r["backend"], r["device"], r["precision"]) for r in verify["rows"] + bench["rows"]}
    assert len(table) == len(keys) >= 8
    sizes = {
        (a["format"], a["precision"]): a["bytes"] + sum(e["bytes"] for e in a.get("extra_files", []))
        for a in manifest["artifacts"]
    }
    for v in verify["rows"]:
        line = next(ln for ln in table if f"| {v['backend']} | {v['device']} | {v['precision']} |" in ln)
        assert ("| FAIL" if v is bad else "| pass") in line, line
        assert _size(sizes[(v["format"], v["precision"])]) in line, line
        b1 = [b for b in bench["rows"] if (b["backend"], b["device"], b["precision"], b["batch_size"])
              == (v["backend"], v["device"], v["precision"], 1)]  # fmt: skip
        assert len(b1) == 1 and f"| {b1[0]['latency_us']['p50']:,.1f} |" in line, line
    assert f"{bad['backend']}/{bad['device']}/int8: accuracy_drop 1.07 pt > 0.50 pt" in md
    pick = re.search(r"Recommended artifact: \*\*([^*/]+)/([^*/]+)/([^*/]+)\*\*", md)
    assert pick, md[:2000]
    chosen = next(ln for ln in table if ln.startswith(f"| {pick[1]} | {pick[2]} | {pick[3]} |"))
    assert "| pass" in chosen and "not recommended" not in chosen and pick.groups() != (
        bad["backend"], bad["device"], "int8")  # fmt: skip
    # self-contained HTML: every image embedded, no external references
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(imgs) >= 5 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"src='(?!data:)", page)


def test_missing_stages_say_not_run(synthetic_pipeline, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.json").write_text((synthetic_pipeline[0] / "train.json").read_text())
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
