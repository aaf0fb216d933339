"""Bad user input (issue 7, check 8): runners, predict and every CLI command.

Wrong rank/shape/dtype, NaN/inf, empty and huge batches, non-image and missing
files, unwritable outputs and unknown backend/precision/device names each give
one line that says what to do, exit 2 for usage errors and 1 for failed
checks, and never a traceback.  (The runner contract in test_runtime.py and
the hypothesis fuzz in test_fuzz_inputs.py cover runner inputs in depth.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeport.cli import main
from edgeport.errors import ConfigError, DataError, EdgeportError, InputError
from test_runtime_support import runtime_bundle, runtime_bundle_path, write_bundle  # noqa: F401

# Every message names a way forward.
ADVICE = re.compile(
    r"choose|pass |check|see `|give|create|export|re-save|use |convert|add |split|free|train|run `|restore|downscale|PYTHONPATH",
)


def assert_one_line(stderr: str, rc: int, expected_rc: int) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == expected_rc, f"exit {rc}, expected {expected_rc}: {stderr!r}"
    assert len(lines) == 1, f"expected one line, got {len(lines)}: {stderr!r}"
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert lines[0].startswith("edgeport"), lines[0]
    assert ADVICE.search(lines[0]), f"message does not say what to do: {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("bad_input")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(d / "ok.png")
    (d / "text.png").write_text("not an image")
    png = (d / "ok.png").read_bytes()
    (d / "truncated.png").write_bytes(png[: len(png) // 2])
    (d / "empty.jpg").write_bytes(b"")
    (d / "afile").write_text("a regular file: nothing can be created under it")
    (d / "emptydir").mkdir()
    return d


# ----------------------------------------------------------------------------- runners and predict()
def test_runner_huge_and_empty_batches(runtime_bundle):  # noqa: F811
    with runtime_bundle.runner("onnxruntime") as r:
        huge = np.zeros((r.max_batch + 1, 1, 28, 28), np.float32)
        with pytest.raises(InputError, match="outside 1..4096; split it"):
            r.run(huge)
        with pytest.raises(InputError, match="outside 1..4096"):
            r.run(np.zeros((0, 1, 28, 28), np.float32))
        # predict() splits a huge batch of images into max_batch chunks instead.
        labels, probs = r.predict(np.zeros((r.max_batch + 5, 28, 28), np.uint8))
        assert labels.shape == (r.max_batch + 5,) and probs.shape == (r.max_batch + 5, 10)
        for bad, match in [
            (np.zeros((0, 28, 28), np.uint8), "no images"),
            (np.zeros((2, 28, 27), np.uint8), "axis 3 must be 28"),
            (np.zeros((2, 2, 2, 28, 28), np.uint8), "shape"),
            (np.zeros((2, 28, 28, 3), np.uint8), "1 channel"),  # RGB to a grey model: refused, not averaged
            (np.full((1, 28, 28), "a"), "uint8"),
            ([[1, 2], [3]], "numpy cannot convert|shape|uint8"),
            (np.full((1, 28, 28), np.nan), "uint8"),
            (np.full((1, 28, 28), np.inf), "uint8"),
        ]:
            with pytest.raises(InputError, match=match):
                r.predict(bad)


def test_predict_files_api(runtime_bundle_path, files):  # noqa: F811
    from edgeport.predict import predict_files

    ok = files / "ok.png"
    cases = [
        (dict(files=[]), ConfigError, "no image files"),
        (dict(files=[ok], top_k=0), ConfigError, "top_k"),
        (dict(files=[files / "text.png"]), DataError, "not an image"),
        (dict(files=[files / "truncated.png"]), DataError, "not an image|corrupt or truncated"),
        (dict(files=[files / "empty.jpg"]), DataError, "not an image"),
        (dict(files=[files / "missing.png"]), DataError, "not found"),
        (dict(files=[files]), DataError, "not a file"),
        (dict(files=[ok], backend="tensorrt"), ConfigError, "unknown backend"),
        (dict(files=[ok], precision="int4"), EdgeportError, "int4"),
        (dict(files=[ok], device="tpu"), ConfigError, "no device"),
    ]
    for kwargs, exc_type, match in cases:
        with pytest.raises(exc_type, match=match) as info:
            predict_files(runtime_bundle_path, **kwargs)
        assert "\n" not in str(info.value) and ADVICE.search(str(info.value)), str(info.value)
    with pytest.raises(EdgeportError, match="not found"):
        predict_files(files / "nobundle", [ok])


# ----------------------------------------------------------------------------- every CLI command
def _cli_cases(b: str, f: Path, run: str, data: str) -> list[tuple[str, list[str], int]]:
    ok, afile = str(f / "ok.png"), str(f / "afile")
    under_file = f"{afile}/out"
    quick = ["--min-iters", "1", "--min-seconds", "0", "--warmup-seconds", "0", "--quiet"]
    return [
        # predict
        ("predict-non-image", ["predict", b, str(f / "text.png")], 2),
        ("predict-truncated", ["predict", b, str(f / "truncated.png")], 2),
        ("predict-missing-file", ["predict", b, str(f / "missing.png")], 2),
        ("predict-folder-as-image", ["predict", b, str(f)], 2),
        ("predict-missing-bundle", ["predict", str(f / "nobundle"), ok], 2),
        ("predict-file-as-bundle", ["predict", afile, ok], 2),
        ("predict-unknown-backend", ["predict", b, ok, "--backend", "tensorrt"], 2),
        ("predict-unknown-precision", ["predict", b, ok, "--precision", "int4"], 2),
        ("predict-unknown-device", ["predict", b, ok, "--device", "tpu"], 2),
        ("predict-absent-precision", ["predict", b, ok, "--precision", "fp16"], 2),
        ("predict-top-k-0", ["predict", b, ok, "--top-k", "0"], 2),
        ("predict-no-images", ["predict", b], 2),
        # verify
        ("verify-unknown-backend", ["verify", b, "--backends", "tensorrt"], 2),
        ("verify-unknown-precision", ["verify", b, "--precisions", "int4"], 2),
        ("verify-unknown-device", ["verify", b, "--devices", "tpu"], 2),
        ("verify-out-under-file", ["verify", b, "--out", under_file + ".json"], 2),
        ("verify-out-proc", ["verify", b, "--out", "/proc/edgeport-verify.json"], 2),
        ("verify-out-is-folder", ["verify", b, "--out", str(f)], 2),
        ("verify-nan-drop", ["verify", b, "--max-accuracy-drop", "nan"], 2),
        ("verify-negative-atol", ["verify", b, "--atol", "-1"], 2),
        ("verify-missing-bundle", ["verify", str(f / "nobundle")], 2),
        ("verify-empty-folder", ["verify", str(f / "emptydir")], 2),
        # bench
        ("bench-unknown-backend", ["bench", b, "--backends", "tensorrt", *quick], 2),
        ("bench-unknown-precision", ["bench", b, "--precisions", "int4", *quick], 2),
        ("bench-unknown-device", ["bench", b, "--devices", "tpu", *quick], 2),
        ("bench-empty-batch", ["bench", b, "--batch-sizes", "0", *quick], 2),
        ("bench-huge-batch", ["bench", b, "--batch-sizes", "1000000000", *quick], 2),
        ("bench-bad-batch", ["bench", b, "--batch-sizes", "1,x", *quick], 2),
        ("bench-nan-seconds", ["bench", b, "--warmup-seconds", "nan"], 2),
        ("bench-inf-seconds", ["bench", b, "--min-seconds", "inf"], 2),
        ("bench-zero-threads", ["bench", b, "--threads", "0"], 2),
        ("bench-out-under-file", ["bench", b, "--out", under_file + ".json", *quick], 2),
        ("bench-out-proc", ["bench", b, "--out", "/proc/edgeport-bench.json", *quick], 2),
        ("bench-missing-bundle", ["bench", str(f / "nobundle"), *quick], 2),
        # inspect / quantize
        ("inspect-missing", ["inspect", str(f / "nobundle")], 2),
        ("inspect-file", ["inspect", afile], 2),
        ("inspect-empty-folder", ["inspect", str(f / "emptydir")], 2),
        ("quantize-missing", ["quantize", str(f / "nobundle"), "--data-dir", data], 2),
        ("quantize-bad-method", ["quantize", b, "--calibration-method", "magic"], 2),
        ("quantize-unknown-format", ["quantize", b, "--formats", "tflite", "--data-dir", data], 2),
        ("quantize-zero-size", ["quantize", b, "--calibration-size", "0"], 2),
        # export
        ("export-no-source", ["export", "--out", str(f / "e1")], 2),
        ("export-missing-run", ["export", "--run", str(f / "norun"), "--out", str(f / "e1")], 2),
        ("export-out-under-file", ["export", "--run", run, "--out", under_file, "--data-dir", data], 2),
        ("export-out-proc", ["export", "--run", run, "--out", "/proc/edgeport-e", "--data-dir", data], 2),
        ("export-out-exists", ["export", "--run", run, "--out", b, "--data-dir", data], 2),
        ("export-out-is-file", ["export", "--run", run, "--out", afile, "--data-dir", data], 2),
        ("export-unknown-format", ["export", "--run", run, "--out", str(f / "e1"), "--formats", "tflite"], 2),
        ("export-old-opset", ["export", "--run", run, "--out", str(f / "e1"), "--opset", "3"], 2),
        ("export-bad-shape", ["export", "--run", run, "--out", str(f / "e1"), "--input-shape", "1,0"], 2),
        ("export-bad-model", ["export", "--model", "nosuch.mod:f", "--out", str(f / "e1")], 2),
        # train
        ("train-out-under-file", ["train", "--out", under_file, "--data-dir", data], 2),
        ("train-out-proc", ["train", "--out", "/proc/edgeport-t", "--data-dir", data], 2),
        ("train-zero-epochs", ["train", "--out", str(f / "t"), "--epochs", "0"], 2),
        ("train-nan-lr", ["train", "--out", str(f / "t"), "--lr", "nan"], 2),
        ("train-unknown-model", ["train", "--out", str(f / "t"), "--model", "nosuch", "--data-dir", data], 2),
        # summary / predict-grid / pipeline / report / devices
        ("summary-unknown-model", ["summary", "--model", "nosuch"], 2),
        ("summary-bad-import", ["summary", "--model", "nosuch.mod:f"], 2),
        ("grid-missing-run", ["predict-grid", "--run", str(f / "norun"), "--out", str(f / "g.png")], 2),
        ("grid-out-under-file", ["predict-grid", "--run", run, "--out", under_file + ".png"], 2),
        ("grid-out-proc", ["predict-grid", "--run", run, "--out", "/proc/edgeport-g.png"], 2),
        ("pipeline-out-under-file", ["pipeline", "--out", under_file, "--data-dir", data], 2),
        ("pipeline-unknown-backend", ["pipeline", "--out", str(f / "p"), "--backends", "tensorrt"], 2),
        ("pipeline-nan-drop", ["pipeline", "--out", str(f / "p"), "--max-accuracy-drop", "nan"], 2),
        ("pipeline-empty-batch", ["pipeline", "--out", str(f / "p"), "--batch-sizes", "0"], 2),
        ("report-missing", ["report", str(f / "norun")], 2),
        ("report-file", ["report", afile], 2),
        ("devices-unknown-flag", ["devices", "--bogus"], 2),
        ("no-command", [], 2),
        ("unknown-command", ["deploy"], 2),
    ]


def pytest_generate_tests(metafunc):
    if "cli_case" in metafunc.fixturenames:
        names = [c[0] for c in _cli_cases("B", Path("F"), "R", "D")]
        metafunc.parametrize("cli_case", names)


@pytest.fixture(scope="module")
def cli_env(runtime_bundle_path, files, tiny_run, synthetic_mnist):  # noqa: F811
    return str(runtime_bundle_path), files, str(tiny_run), str(synthetic_mnist)


def test_cli_bad_input(cli_env, cli_case, capsys, monkeypatch):
    b, f, run, data = cli_env
    monkeypatch.setenv("EDGEPORT_MNIST_ROOT", data)  # never reach for the network
    cases = {name: (argv, rc) for name, argv, rc in _cli_cases(b, f, run, data)}
    argv, expected = cases[cli_case]
    before = sorted(os.listdir(f))
    rc = main(argv)
    captured = capsys.readouterr()
    assert_one_line(captured.err, rc, expected)
    assert sorted(os.listdir(f)) == before, "a failed command left files behind"


def test_cli_failed_check_exits_1(tmp_path, capsys, synthetic_mnist):
    bad = write_bundle(tmp_path / "bad", perturb_onnx=0.5, int8=False)
    rc = main(
        ["verify", str(bad), "--backends", "onnxruntime", "--data-dir", str(synthetic_mnist), "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" not in err and len([ln for ln in err.splitlines() if ln.startswith("edgeport")]) == 1


@pytest.mark.parametrize(
    "args, expected",
    [
        (["predict", "{b}", "{f}/text.png"], 2),
        (["bench", "{b}", "--backends", "tensorrt"], 2),
        (["verify", "{b}", "--out", "{f}/afile/out.json"], 2),
        (["bench", "{b}", "--batch-sizes", "0"], 2),
        (["deploy"], 2),
    ],
    ids=["non-image", "unknown-backend", "unwritable-out", "empty-batch", "unknown-command"],
)
def test_console_script(runtime_bundle_path, files, args, expected):  # noqa: F811
    exe = Path(sys.executable).with_name("edgeport")
    if not exe.exists():
        pytest.skip(f"console script {exe} not installed (pip install -e .)")
    argv = [a.format(b=runtime_bundle_path, f=files) for a in args]
    res = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=120)
    stderr = "\n".join(
        ln for ln in res.stderr.splitlines() if "Warning" not in ln and "warnings.warn" not in ln
    )
    assert_one_line(stderr, res.returncode, expected)
