"""Reliability round 3 (issue 22): one test group per defect class, named by its number there.

Each test feeds the hostile input and asserts the rule: no code runs without the opt-in, nothing
the user had is lost, one line (or an honest failing exit) instead of a traceback or a crash.
Memory tests measure a child's peak RSS; no test times anything.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import export_fixtures as fx
from edgeport.bundle import load_bundle
from edgeport.cli import main
from edgeport.errors import BundleError

EDGEPORT = str(Path(sys.executable).parent / "edgeport")


def one_line_error(capsys, rc, expected_rc=None, match=None) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and (expected_rc is None or rc == expected_rc), (rc, err)
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    if match:
        assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def plain(tmp_path_factory, tiny_run, synthetic_mnist):
    return fx.plain_bundle(tmp_path_factory, tiny_run, synthetic_mnist)


@pytest.fixture
def copy(plain, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(plain, dst)
    return dst


def forge(root: Path, rel: str, data: bytes) -> None:
    """Replace ``rel`` and rehash it into the manifest: a forged, self-consistent bundle."""
    (root / rel).write_bytes(data)
    m = json.loads((root / "manifest.json").read_text())
    entries = [e for a in m["artifacts"] for e in [a, *a.get("extra_files", [])]]
    entries += (m.get("golden") or {}).get("files", [])
    for e in entries:
        if e.get("file", e.get("path")) == rel:
            e["sha256"], e["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (root / "manifest.json").write_text(json.dumps(m))


def evil_module(tmp_path: Path, monkeypatch) -> Path:
    """``evil_factory:make`` on sys.path; importing it creates the returned canary file."""
    canary = tmp_path / "canary"
    (tmp_path / "evil_factory.py").write_text(
        f"open({str(canary)!r}, 'w').write('ran')\ndef make(**kw):\n    raise SystemExit(9)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("EDGEPORT_TRUST_MODEL_CODE", "0")
    sys.modules.pop("evil_factory", None)
    return canary


# ------------------------------------------------------------------ 1. report imports no model code


def test_1_report_does_not_import_the_factory_a_run_folder_names(tmp_path, monkeypatch):
    from edgeport.report.writer import _model_summary

    canary = evil_module(tmp_path, monkeypatch)
    text = _model_summary({"model": "evil_factory:make", "input_shape": [1, 1, 28, 28]})
    assert not canary.exists()
    assert "evil_factory:make" not in text or "Traceback" not in text


# ------------------------------------------------------------------ 2. --resume trusts no bundle on disk


def test_2_resume_does_not_trust_the_run_folders_bundle(tmp_path, plain, monkeypatch):
    from edgeport import pipeline
    from edgeport.export import api

    canary = evil_module(tmp_path, monkeypatch)
    run = tmp_path / "run"
    shutil.copytree(plain, run / "bundle")
    m = json.loads((run / "bundle" / "manifest.json").read_text())
    m["model"] = "evil_factory:make"
    (run / "bundle" / "manifest.json").write_text(json.dumps(m))

    class Reexported(Exception):
        pass

    def fake_export(**kw):
        raise Reexported

    monkeypatch.setattr(api, "export", fake_export)
    result = pipeline.PipelineResult(run_dir=run)
    # run, config, the user's model (none: the run's), data options, resume, result, progress
    args = (run, pipeline.PipelineConfig(int8=False), None, pipeline.DataInput(), True, result, False)
    with pytest.raises(Reexported):  # not reused: exported again (by this process)
        pipeline._export_stage(*args)
    bundle = pipeline._export_stage(*args, True)  # with the opt-in it is reused, trusted as the user said
    assert bundle.trusted and result.skipped == ["export"]
    assert not canary.exists()


# ------------------------------------------------------------------ 3. a .pt2 is unpickled only with the opt-in


def test_3_pt2_needs_the_opt_in_wherever_it_comes_from(tmp_path, monkeypatch, capsys):
    import torch

    calls = []
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: calls.append(a))
    monkeypatch.setenv("EDGEPORT_TRUST_MODEL_CODE", "0")
    (tmp_path / "m.pt2").write_bytes(b"PK\x03\x04 not really")
    rc = main(["export", "--model", str(tmp_path / "m.pt2"), "--out", str(tmp_path / "b"), "--quiet"])
    one_line_error(capsys, rc, 2, "--trust-model-code")
    assert calls == [] and not (tmp_path / "b").exists()


# ------------------------------------------------------------------ 4. a garbage .pte cannot abort the process


def _pte_cases(good: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(4)
    flipped = bytearray(good)
    idx = rng.choice(np.arange(64, len(good)), size=max(1, len(good) // 50), replace=False)
    for i in idx:
        flipped[i] = 0xFF
    return {
        "random bytes": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "header then garbage": good[:64] + rng.integers(0, 256, len(good) - 64, dtype=np.uint8).tobytes(),
        "bytes flipped": bytes(flipped),
    }


def test_4_garbage_pte_is_one_line_not_sigabrt(copy):
    m = json.loads((copy / "manifest.json").read_text())
    rel = next(a["file"] for a in m["artifacts"] if a["format"] == "executorch")
    good = (copy / rel).read_bytes()
    for name, data in _pte_cases(good).items():
        forge(copy, rel, data)
        done = subprocess.run(
            [EDGEPORT, "selfcheck", str(copy), "--backends", "executorch"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode > 0, (name, done.returncode, done.stderr[-2000:])  # < 0: killed by a signal
        text = done.stdout + done.stderr
        assert "Traceback" not in text and "internal error" not in text, (name, text[-2000:])
        assert "executorch" in text, (name, text[-2000:])


# ------------------------------------------------------------------ 5. --force never deletes an input


def test_5_pipeline_force_refuses_inputs_inside_out(tmp_path, tiny_run, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # a run folder edgeport made, so --force may replace it
    weights = run / "model.safetensors"
    before = weights.read_bytes()
    argv = ["pipeline", "--model", "mnist-mlp", "--weights", str(weights), "--out", str(run)]
    rc = main([*argv, "--data", "synthetic:8", "--force", "--quiet"])
    one_line_error(capsys, rc, 2, "--weights")
    assert weights.read_bytes() == before


def test_5_export_force_refuses_inputs_inside_out(tmp_path, copy, tiny_run, capsys):
    labels = copy / "labels.txt"
    labels.write_text("\n".join(str(i) for i in range(10)))
    rc = main(["export", "--run", str(tiny_run), "--out", str(copy), "--force", "--labels", str(labels)])
    one_line_error(capsys, rc, 2, "--labels")
    assert labels.is_file()


# ------------------------------------------------------------------ 6. zero evidence is a failure


def test_6_golden_files_with_zero_rows_fail_selfcheck(copy, capsys):
    b = load_bundle(copy)
    ins, outs = b.golden()
    import io

    for name, arrays in (("inputs", ins), ("outputs", outs)):
        buf = io.BytesIO()
        np.savez(buf, **{k: v[:0] for k, v in arrays.items()})
        forge(copy, f"golden/{name}.npz", buf.getvalue())
    rc = main(["selfcheck", str(copy), "--backends", "onnxruntime"])
    out = capsys.readouterr()
    assert rc != 0, out
    assert "all passed" not in out.out + out.err


# ------------------------------------------------------------------ 7. a tall PNG costs what its crop costs


from memory_probe import peak_kib as _peak_kib  # noqa: E402  (VmHWM of a fresh process)


def test_7_tall_png_memory_is_bounded_by_the_crop(copy, tmp_path):
    """The bundle resizes the shorter side to 28 and crops 28x28.  A 1x400000 PNG (a few hundred
    bytes) resized in full is 28 x 11.2 M = 313 M pixels (over 300 MB for the grey image alone,
    more with the float copies).  Margin: the tall image may cost at most 150 MB over a 28x28 one
    (the decoded 400 KB strip and Pillow's buffers are far below that)."""
    m = json.loads((copy / "manifest.json").read_text())
    steps = m["preprocessing"]["steps"]
    steps[0] = {"op": "decode", "mode": "L"}
    steps[1:1] = [
        {"op": "resize", "size": 28, "mode": "shorter", "interpolation": "bilinear", "antialias": True},
        {"op": "center_crop", "size": [28, 28]},
    ]
    m["preprocessing"]["preset"] = None
    (copy / "manifest.json").write_text(json.dumps(m))
    small, tall = tmp_path / "small.png", tmp_path / "tall.png"
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(small)
    Image.fromarray(np.full((1, 400_000), 200, np.uint8)).save(tall)
    assert tall.stat().st_size < 4096
    base, rc0 = _peak_kib(["predict", copy, small])
    peak, rc1 = _peak_kib(["predict", copy, tall])
    assert rc0 == 0 and rc1 == 0
    print("peak KiB: 28x28", base, "tall", peak)
    assert peak - base < 150 * 1024, (base, peak)


def test_7_resize_then_crop_matches_the_full_resize():
    """The bounded path (resize only the window the crop keeps) gives what resizing in full gives."""
    from PIL import Image as PILImage

    from edgeport import geometry

    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (40, 3000, 1), dtype=np.uint8)
    resize = {"op": "resize", "size": 64, "mode": "shorter"}
    crop = {"op": "center_crop", "size": [64, 64]}
    full = geometry.resize_crop(img, resize, crop, PILImage.Resampling.BILINEAR)
    old = geometry.FULL_RESIZE_LIMIT
    try:
        geometry.FULL_RESIZE_LIMIT = 1000  # force the windowed path
        windowed = geometry.resize_crop(img, resize, crop, PILImage.Resampling.BILINEAR)
    finally:
        geometry.FULL_RESIZE_LIMIT = old
    assert full.shape == windowed.shape == (64, 64, 1)
    assert np.abs(full.astype(int) - windowed.astype(int)).max() <= 1


# ------------------------------------------------------------------ 8. link loops in an image folder


def test_8_link_loops_do_not_multiply_samples(tmp_path):
    from edgeport.sources.files import walk_files

    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a" / "x.png")
    (root / "a" / "loop").symlink_to("..", target_is_directory=True)
    (root / "a" / "loop2").symlink_to(root, target_is_directory=True)
    files = walk_files(root, (".png",), "test")
    assert [p.name for p in files] == ["x.png"]


# ------------------------------------------------------------------ 13. an empty host is an error


@pytest.mark.parametrize("command", ["selfcheck", "verify", "bench"])
def test_13_empty_host_is_a_usage_error(command, plain, capsys):
    rc = main([command, str(plain), "--host", ""])
    one_line_error(capsys, rc, 2, "--host")


# ------------------------------------------------------------------ 14. nothing measured is a failure


def test_14_bench_with_nothing_measured_exits_nonzero(copy, capsys):
    m = json.loads((copy / "manifest.json").read_text())
    rel = next(a["file"] for a in m["artifacts"] if a["format"] == "onnx")
    forge(copy, rel, b"not an onnx model")
    argv = ["bench", str(copy), "--backends", "onnxruntime", "--batch-sizes", "1", "--quiet"]
    rc = main([*argv, "--min-seconds", "0", "--min-iters", "2", "--warmup-seconds", "0"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "measured nothing" in err and "Traceback" not in err


# ------------------------------------------------------------------ 15. turn-2 leftovers


@pytest.mark.parametrize("command", ["inspect", "predict"])
def test_15_a_huge_scale_factor_is_one_line(command, copy, tmp_path, capsys):
    text = (copy / "manifest.json").read_text()
    m = json.loads(text)
    m["preprocessing"]["steps"][1]["factor"] = 12345.0
    text = json.dumps(m).replace("12345.0", "1" + "0" * 400)
    (copy / "manifest.json").write_text(text)
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(png)
    rc = main([command, str(copy)] + ([str(png)] if command == "predict" else []))
    one_line_error(capsys, rc, 2)


def test_15_a_loaded_bundle_reads_its_own_files_after_a_force_export(copy, tiny_run, synthetic_mnist):
    """export --force committing between load_bundle and runner creation: the reader keeps the old
    bundle's files (held open since it was loaded), never a mix with the new one."""
    from edgeport.config import ExportConfig
    from edgeport.export.api import export

    before = (copy / "manifest.json").read_bytes()
    b = load_bundle(copy)
    old = b.read_verified(b.artifact("onnx"))
    model = json.loads((tiny_run / "train.json").read_text())["model"]
    export(
        model_ref=model,
        random_init=True,  # other weights: every artifact file differs from the old one
        out=copy,
        force=True,
        data_dir=synthetic_mnist,
        progress=False,
        config=ExportConfig(formats=("onnx",)),
    )
    assert (copy / "manifest.json").read_bytes() != before  # a new bundle was swapped in
    with b.runner("onnxruntime") as r:  # no hash mismatch: the old files are still read
        r.run(np.zeros((1, 1, 28, 28), np.float32))
    assert b.read_verified(b.artifact("onnx")) == old


# ------------------------------------------------------------------ 16-19. one line, and the right advice


def _export_model(tmp_path, *extra) -> list[str]:
    return [
        "export",
        "--random-init",
        "--out",
        str(tmp_path / "o"),
        "--data",
        "synthetic:8",
        "--quiet",
        *extra,
    ]


@pytest.mark.parametrize(
    "content, match",
    [('{"preset": [1]}', "preset must be a name"), ("[" * 100000 + "]" * 100000, "nested too deeply")],
    ids=["list preset", "deep JSON"],
)
def test_16_malformed_preprocess_json_is_one_line(content, match, tmp_path, capsys):
    (tmp_path / "p.json").write_text(content)
    rc = main(_export_model(tmp_path, "--model", "mnist-mlp", "--preprocess", str(tmp_path / "p.json")))
    one_line_error(capsys, rc, 2, match)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--model-arg", "num_classes=-5"], "fix --model-arg"),
        (["--model-arg", "num_classes=1e11"], "fix --model-arg"),
        (["--model-arg", "num_classes=0", "--input-shape", "1,3,32,32"], "--model-arg"),  # 17
        (["--input", "x:1,3,100000,100000"], "fix --input"),
    ],
    ids=["negative", "1e11", "zero classes", "huge input"],
)
def test_16_17_bad_factory_arguments_and_inputs_are_the_users_one_line(args, match, tmp_path, capsys):
    rc = main(_export_model(tmp_path, "--model", "torchvision:resnet18", *args))
    line = one_line_error(capsys, rc, 2, match)
    assert "re-export" not in line and "trusted copy" not in line
    assert not (tmp_path / "o").exists()


def test_18_truncated_pt2_is_one_line_naming_the_file(tmp_path, capsys):
    import torch

    import user_models

    ep = torch.export.export(user_models.logits_cnn().eval(), (torch.randn(1, 3, 16, 16),))
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    data = (tmp_path / "m.pt2").read_bytes()
    (tmp_path / "t.pt2").write_bytes(data[: len(data) // 2])
    argv = ["export", "--model", str(tmp_path / "t.pt2"), "--trust-model-code", "--out", str(tmp_path / "o")]
    rc = main([*argv, "--data", "synthetic:8", "--quiet"])
    line = one_line_error(capsys, rc, 2, "t.pt2")
    assert "BytesIO" not in line


def test_19_a_bad_model_arg_value_names_model_arg(tmp_path, capsys):
    rc = main(
        _export_model(
            tmp_path, "--model", "timm:resnet18", "--model-arg", "drop_rate=abc", "--input-shape", "1,3,32,32"
        )
    )
    one_line_error(capsys, rc, 2, "--model-arg")


# ------------------------------------------------------------------ also noticed


def test_also_verify_never_writes_into_the_bundle_it_reads(copy, capsys):
    before = (copy / "manifest.json").read_bytes()
    rc = main(["verify", str(copy), "--out", str(copy / "manifest.json"), "--force", "--quiet"])
    one_line_error(capsys, rc, 2, "never writes into")
    assert (copy / "manifest.json").read_bytes() == before


def test_also_staging_cleanup_takes_the_out_name_literally(tmp_path):
    from edgeport.fsutil import OWNER_FILE, clean_leftovers

    other = tmp_path / ".ab.tmp-999999-x1"  # a dead writer's staging folder of bundle "ab"
    other.mkdir()
    (other / OWNER_FILE).write_text("999999")
    clean_leftovers(tmp_path / "[a]b")  # "[a]b" as a glob matches "ab"
    clean_leftovers(tmp_path / "*")
    assert other.is_dir()
    clean_leftovers(tmp_path / "ab")
    assert not other.exists()


@pytest.mark.parametrize("key, value", [("checkpoint_path", "/etc/passwd"), ("pretrained_cfg", "x/y")])
def test_also_model_args_from_a_bundle_never_name_files(key, value, copy, monkeypatch):
    m = json.loads((copy / "manifest.json").read_text())
    m["model"], m["model_args"] = "timm:resnet18", {key: value}
    (copy / "manifest.json").write_text(json.dumps(m))
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    with pytest.raises(BundleError, match="names a file"):
        load_bundle(copy).runner("torch").load()
    assert "/etc/passwd" not in opened


# ------------------------------------------------------------------ 12. labels outside the classes


@pytest.mark.parametrize("bad", [99, 1e6, 3.7, float("nan")], ids=["99", "1e6", "3.7", "NaN"])
def test_12_labels_outside_the_classes_fail_verify(bad, plain, tmp_path, capsys):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    labels = (np.arange(16) % 10).astype(np.float64 if isinstance(bad, float) else np.int64)
    labels[5] = bad
    np.savez(tmp_path / "d.npz", input=x, labels=labels)
    rc = main(
        ["verify", str(plain), "--backends", "onnxruntime", "--data", f"npz:{tmp_path / 'd.npz'}", "--quiet"]
    )
    line = one_line_error(capsys, rc, 2)
    assert "label" in line


# ------------------------------------------------------------------ 15. ORT's own log stays off stderr


def test_15_a_run_time_failure_in_onnxruntime_is_one_line(copy, tmp_path):

    from onnx import TensorProto as tp
    from onnx import helper as h
    from onnx import numpy_helper as nh

    m = json.loads((copy / "manifest.json").read_text())
    (i,), (o,) = m["inputs"], m["outputs"]
    graph = h.make_graph(  # a Reshape that cannot hold: the session loads, the run fails
        [h.make_node("Reshape", [i["name"], "shape"], [o["name"]])],
        "g",
        [h.make_tensor_value_info(i["name"], tp.FLOAT, ["batch", 1, 28, 28])],
        [h.make_tensor_value_info(o["name"], tp.FLOAT, ["batch", 10])],
        [nh.from_array(np.array([-1, 10], np.int64), "shape")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    rel = next(a["file"] for a in m["artifacts"] if a["format"] == "onnx")
    forge(copy, rel, model.SerializeToString())
    png = tmp_path / "z.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(png)
    done = subprocess.run(
        [EDGEPORT, "predict", str(copy), str(png)], capture_output=True, text=True, timeout=600
    )
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "\x1b[" not in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------ 17. the user's input is not blamed on the bundle


def test_17_a_class_folder_named_with_a_newline_is_the_datas_one_line(tmp_path, capsys):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(17)
    for name in ("a\nb", "c"):
        (root / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    argv = ["--model", "torchvision:resnet18", "--model-arg", "num_classes=2", "--input-shape", "1,3,16,16"]
    argv += ["--formats", "onnx", "--data", f"imagefolder:{root}", "--calibration-size", "10"]
    rc = main(_export_model(tmp_path, *argv))  # this --data overrides the default synthetic one
    line = one_line_error(capsys, rc, 2, "control characters")
    assert "re-export" not in line and "trusted copy" not in line


@pytest.mark.parametrize("max_batch", [1, 7])
def test_also_a_batch_bound_below_64_exports_and_selfchecks(max_batch, tmp_path, capsys):
    out = tmp_path / "b"
    argv = ["export", "--model", "mnist-mlp", "--random-init", "--max-batch", str(max_batch)]
    rc = main([*argv, "--formats", "onnx", "--out", str(out), "--data", "synthetic:16", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert load_bundle(out).signature.max_batch == max_batch
    assert main(["selfcheck", str(out), "--backends", "onnxruntime"]) == 0


@pytest.mark.parametrize(
    "step", [{"op": "layout", "layout": "NHWC"}, {"op": "dtype", "dtype": "float16"}], ids=["layout", "dtype"]
)
def test_also_preprocess_steps_that_conflict_with_the_input_are_refused(step, tmp_path, capsys):
    steps = [{"op": "decode", "mode": "L"}, {"op": "scale", "factor": 1 / 255}, step]
    (tmp_path / "p.json").write_text(json.dumps(steps))
    rc = main(_export_model(tmp_path, "--model", "mnist-mlp", "--preprocess", str(tmp_path / "p.json")))
    one_line_error(capsys, rc, 2, f"sets {step['op']}")


def test_also_remote_cache_sweeps_staging_that_a_dropped_connection_left():
    import asyncio
    from types import SimpleNamespace

    from edgeport.device import remote

    now = 1_000_000_000.0
    old, young = "." + "a" * 64 + ".tmp-" + "0" * 12, "." + "b" * 64 + ".tmp-" + "1" * 12
    entries = {old: now - remote.STALE_STAGING_S - 1, young: now - 60, "c" * 64: now - 10**6, ".other": 0}

    class Sftp:
        removed: list = []

        async def readdir(self, root):
            return [SimpleNamespace(filename=n, attrs=SimpleNamespace(mtime=t)) for n, t in entries.items()]

        async def rmtree(self, path, ignore_errors=False):
            self.removed.append(path)

    sftp = Sftp()
    assert asyncio.run(remote._sweep_staging(sftp, "/cache", now)) == [old]
    assert sftp.removed == [f"/cache/{old}"]  # the young staging and the cached bundle stay


@pytest.mark.parametrize("batch", [1, 4])
def test_18_a_pt2_saved_with_a_fixed_batch(batch, tmp_path, capsys):
    import torch

    import user_models

    ep = torch.export.export(user_models.logits_cnn().eval(), (torch.randn(batch, 3, 16, 16),))
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    argv = ["export", "--model", str(tmp_path / "m.pt2"), "--trust-model-code", "--out", str(tmp_path / "o")]
    rc = main([*argv, "--data", "synthetic:8", "--formats", "onnx", "--quiet"])
    if batch == 1:  # exported with the batch bound it was traced with
        assert rc == 0, capsys.readouterr().err
        assert load_bundle(tmp_path / "o").signature.max_batch == 1
    else:
        one_line_error(capsys, rc, 2, "fixed batch of 4")


@pytest.mark.parametrize("variant", ["empty steps", "std 0", "10**400"])
def test_16_malformed_preprocessing_in_a_run_folder_is_one_line(variant, tmp_path, tiny_run, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    info = json.loads((run / "train.json").read_text())
    steps = info["preprocessing"]["steps"]
    if variant == "empty steps":
        steps.clear()
    elif variant == "std 0":
        next(s for s in steps if s["op"] == "normalize")["std"] = [0.0]
    text = json.dumps(info)
    if variant == "10**400":
        text = text.replace('"scale", "factor": ', '"scale", "factor": 1' + "0" * 400 + ', "x": ')
    (run / "train.json").write_text(text)
    rc = main(["export", "--run", str(run), "--out", str(tmp_path / "o"), "--formats", "onnx", "--quiet"])
    one_line_error(capsys, rc, 2, "train.json")


def test_17_a_dict_output_key_with_a_space_is_the_models_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "dict_out.py").write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.l = torch.nn.Linear(4, 3)\n"
        "    def forward(self, x):\n"
        "        return {'my out': self.l(x)}\n"
        "def make():\n"
        "    return M()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    rc = main(_export_model(tmp_path, "--model", "dict_out:make", "--input-shape", "1,4", "--task", "raw"))
    line = one_line_error(capsys, rc, 2, "--output")
    assert "re-export" not in line and "trusted copy" not in line
