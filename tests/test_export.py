"""Export: each format, parity at export, safe writing, int8 hook, user models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import export_fixtures as fx
from edgeport.config import ExportConfig
from edgeport.errors import BundleError, ConfigError, ParityError
from edgeport.export import parity as export_parity
from edgeport.export.api import OWNER_FILE, export, quantize
from edgeport.export.bundle import load_bundle

TESTS = Path(__file__).resolve().parent


def _test_data(bundle):
    import onnx
    from onnx import numpy_helper

    d = bundle.path / "onnx" / "test_data_set_0"
    x = numpy_helper.to_array(onnx.load_tensor_from_string((d / "input_0.pb").read_bytes()))
    y = numpy_helper.to_array(onnx.load_tensor_from_string((d / "output_0.pb").read_bytes()))
    return x, y


def test_onnx_artifact(full_bundle):
    import onnx
    import onnxruntime as ort

    b = load_bundle(full_bundle)
    art = b.artifact("onnx")
    model = onnx.load_from_string(b.read_verified(art))
    onnx.checker.check_model(model, full_check=True)
    assert art.details["opset"] >= 17
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == [
        "probs"
    ]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["edgeport.labels"]) == b.labels
    assert json.loads(meta["edgeport.preprocessing"]) == b.manifest.preprocessing
    x, y = _test_data(b)
    assert x.shape == (16, 1, 28, 28) and y.shape == (16, 10)
    sess = ort.InferenceSession(b.read_verified(art), providers=["CPUExecutionProvider"])
    for bs in (1, 7, 16):
        np.testing.assert_allclose(sess.run(None, {"input": x[:bs]})[0], y[:bs], atol=1e-5, rtol=1e-5)


def test_openvino_artifacts(full_bundle):
    import openvino as ov

    b = load_bundle(full_bundle)
    x, y = _test_data(b)
    core = ov.Core()
    for precision, atol in (("fp32", 1e-5), ("fp16", 2e-3)):
        art = b.artifact("openvino", precision)
        assert art.details["compress_to_fp16"] is (precision == "fp16")
        model = core.read_model(b.path_of(art))
        assert model.inputs[0].get_partial_shape().to_string() == "[?,1,28,28]"
        assert model.outputs[0].get_names() == {"probs"}
        weight_types = {
            op.get_output_element_type(0).get_type_name()
            for op in model.get_ops()
            if op.get_type_name() == "Constant"
        }
        assert ("f16" in weight_types) is (precision == "fp16")
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        for bs in (1, 7, 16):
            np.testing.assert_allclose(compiled(x[:bs])[0], y[:bs], atol=atol, rtol=atol)
    assert b.artifact("openvino", "fp16").bytes + b.artifact("openvino", "fp16").extra_files[0].bytes < (
        b.artifact("openvino").extra_files[0].bytes
    )


def test_torchscript_loads_without_edgeport(full_bundle, tmp_path):
    b = load_bundle(full_bundle)
    art = b.artifact("torchscript")
    assert not [op for op in art.details["ops"] if "dropout" in op]
    assert art.details["frozen"] and art.extra_files[0].path == "torchscript/model.ptl"
    x, y = _test_data(b)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, warnings, numpy as np, torch; warnings.simplefilter('ignore');"
        f"m = torch.jit.load({str(b.path_of(art))!r});"
        "assert not any('dropout' in n.kind() for n in m.graph.nodes());"
        f"out = m(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).detach().numpy();"
        f"np.save({str(tmp_path / 'y.npy')!r}, out);"
        "bad = [k for k in sys.modules if k.startswith('edgeport')]; assert not bad, bad"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", "-c", code], check=True, cwd=tmp_path, env=env)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), y, atol=1e-5, rtol=1e-5)
    # the mobile file loads with the lite interpreter
    from torch.jit.mobile import _load_for_lite_interpreter

    lite = _load_for_lite_interpreter(str(b.path_of(art, "model.ptl")))
    np.testing.assert_allclose(lite(torch.from_numpy(x.copy())).numpy(), y, atol=1e-5, rtol=1e-5)


def test_parity_figures_in_manifest(full_bundle):
    p = load_bundle(full_bundle).manifest.parity
    assert p["inputs"]["n"] == 1000 + 64 and "1000" in p["inputs"]["real"]
    assert set(p["artifacts"]) == {"torchscript/fp32", "onnx/fp32", "openvino/fp32", "openvino/fp16"}
    for key, fig in p["artifacts"].items():
        assert set(fig["batch_sizes"]) == {"1", "2", "7", "64"}
        for row in fig["batch_sizes"].values():
            assert row["passed"] and row["agreement"] >= (1.0 if key.endswith("fp32") else 0.998)
            if key.endswith("fp32"):
                assert row["max_abs"] <= 1e-5


def test_parity_failure_lists_artifact_and_batch(tiny_run, synthetic_mnist, tmp_path, monkeypatch):
    real = export_parity.RUNNERS["onnx"]

    def broken(path):
        run = real(path)
        return lambda x: run(x) + (np.float32(1e-3) if len(x) == 7 else 0)

    monkeypatch.setitem(export_parity.RUNNERS, "onnx", broken)
    with pytest.raises(ParityError) as info:
        export(
            tiny_run,
            tmp_path / "b",
            config=ExportConfig(formats=("onnx",)),
            data_dir=synthetic_mnist,
            progress=False,
        )
    msg = str(info.value)
    assert "onnx/fp32 batch 7" in msg and "max abs" in msg and "batch 64" not in msg
    assert info.value.failures and info.value.failures[0].batch_size == 7
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging left behind


def test_refuses_to_overwrite_and_keeps_old_bundle(bundle_copy, tiny_run, synthetic_mnist):
    before = fx.tree_digest(bundle_copy)
    with pytest.raises(ConfigError, match="--force"):
        export(tiny_run, bundle_copy, data_dir=synthetic_mnist, progress=False)
    assert fx.tree_digest(bundle_copy) == before
    assert [p.name for p in bundle_copy.parent.iterdir()] == ["bundle"]


def test_force_replaces_and_cleans_leftovers(bundle_copy, tiny_run, synthetic_mnist):
    parent = bundle_copy.parent
    stale = parent / ".bundle.tmp-dead"  # a killed export's staging folder
    (stale / "onnx").mkdir(parents=True)
    (stale / OWNER_FILE).write_text("999999999")
    noowner = parent / ".bundle.tmp-x"
    noowner.mkdir()
    live = parent / ".bundle.tmp-live"  # another export still running
    live.mkdir()
    (live / OWNER_FILE).write_text(str(os.getppid()))
    b = export(
        tiny_run,
        bundle_copy,
        config=ExportConfig(formats=("onnx",)),
        data_dir=synthetic_mnist,
        force=True,
        progress=False,
    )
    assert {a.key for a in b.artifacts} == {"torch/fp32", "onnx/fp32"}
    assert not (bundle_copy / "openvino").exists()
    assert sorted(p.name for p in parent.iterdir()) == [".bundle.tmp-live", "bundle"]
    assert not (bundle_copy / OWNER_FILE).exists()


def test_killed_commit_restores_the_old_bundle(bundle_copy, tiny_run, synthetic_mnist):
    before = fx.tree_digest(bundle_copy)
    aside = bundle_copy.parent / ".bundle.old-abc"  # killed between atomic_commit's two renames
    os.rename(bundle_copy, aside)
    with pytest.raises(ConfigError, match="--force"):
        export(tiny_run, bundle_copy, data_dir=synthetic_mnist, progress=False)
    assert fx.tree_digest(bundle_copy) == before and not aside.exists()


def test_failure_removes_staging(tiny_run, synthetic_mnist, tmp_path, monkeypatch):
    import edgeport.export.onnx as onnx_mod

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_mod, "export_onnx", boom)
    with pytest.raises(KeyboardInterrupt):
        export(tiny_run, tmp_path / "b", data_dir=synthetic_mnist, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_bad_options(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="formats"):
        export(tiny_run, tmp_path / "b", config=ExportConfig(formats=("tflite",)))
    with pytest.raises(ConfigError, match="opset"):
        export(tiny_run, tmp_path / "b", config=ExportConfig(opset=13))
    with pytest.raises(ConfigError, match="not both"):
        export(tiny_run, tmp_path / "b", model_ref="mnist-mlp")
    with pytest.raises(ConfigError, match="nothing to export"):
        export(None, tmp_path / "b")
    with pytest.raises(ConfigError, match="--input-shape"):
        export(model_ref="user_models:small_cnn", out=tmp_path / "b")


# ------------------------------------------------------------------ int8 hook


def _fake_int8(monkeypatch, calls):
    def add_int8_artifacts(*, staging, model, fp32, data, config, formats, progress):
        calls.append(sorted(formats))
        shutil.copyfile(fp32["onnx"], staging / "onnx" / "model.int8.onnx")
        return types.SimpleNamespace(
            artifacts=[
                {
                    "format": "onnx",
                    "precision": "int8",
                    "file": "onnx/model.int8.onnx",
                    "extra_files": [],
                    "details": {"proof": "fake"},
                }
            ],
            calibration={"size": config.size, "method": config.method},
            layer_report={"onnx/int8": {"linear_stack.0": 40.0}},
        )

    monkeypatch.setitem(
        sys.modules, "edgeport.export.int8", types.SimpleNamespace(add_int8_artifacts=add_int8_artifacts)
    )


def test_int8_hook_and_quantize(tiny_run, synthetic_mnist, tmp_path, monkeypatch):
    from edgeport.config import CalibrationConfig

    calls = []
    _fake_int8(monkeypatch, calls)
    out = tmp_path / "b"
    b = export(
        tiny_run,
        out,
        config=ExportConfig(formats=("onnx",), int8=True),
        calibration=CalibrationConfig(size=50, method="minmax"),
        data_dir=synthetic_mnist,
        progress=False,
    )
    assert b.artifact("onnx", "int8").details == {"proof": "fake"}
    assert b.manifest.calibration == {"size": 50, "method": "minmax"} and b.manifest.layer_report
    before = fx.tree_digest(out)
    with pytest.raises(ConfigError, match="--force"):
        quantize(out, data_dir=synthetic_mnist, progress=False)
    assert fx.tree_digest(out) == before
    b2 = quantize(
        out,
        calibration=CalibrationConfig(size=20, method="minmax"),
        data_dir=synthetic_mnist,
        force=True,
        progress=False,
    )
    assert b2.manifest.calibration["size"] == 20 and calls == [["onnx"], ["onnx"]]
    assert b2.manifest.parity == b.manifest.parity
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


# ------------------------------------------------------------------ user models


def test_user_cnn_from_safetensors_and_pt(tmp_path, synthetic_mnist):
    from safetensors.torch import save_file

    sys.path.insert(0, str(TESTS))
    import user_models

    model = user_models.small_cnn()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # weights that differ from the factory's, so loading them is tested
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    for weights in ("w.safetensors", "w.pt"):
        out = tmp_path / f"bundle_{weights}"
        b = export(
            model_ref="user_models:small_cnn",
            weights=tmp_path / weights,
            input_shape=(1, 1, 28, 28),
            out=out,
            data_dir=synthetic_mnist,
            progress=False,
        )
        assert b.manifest.model == "user_models:small_cnn"
        assert "MNIST test images" in b.manifest.parity["inputs"]["real"]
        assert b.manifest.provenance["weights_file"] == weights
        x, y = _test_data(b)
        with torch.no_grad():
            np.testing.assert_allclose(model.eval()(torch.from_numpy(x)).numpy(), y, atol=1e-6)


def test_user_model_with_other_input_shape(tmp_path):
    sys.path.insert(0, str(TESTS))
    b = export(model_ref="user_models:rgb_mlp", input_shape=(1, 3, 8, 8), out=tmp_path / "b", progress=False)
    assert b.input_shape == (3, 8, 8) and b.labels == ["0", "1", "2", "3", "4"]
    assert b.manifest.output["shape"] == ["batch", 5]
    assert "random" in b.manifest.parity["inputs"]["real"]


def test_pickle_weights_are_refused(tmp_path):
    import pickle

    canary = tmp_path / "canary"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    sys.path.insert(0, str(TESTS))
    with pytest.raises(BundleError, match="cannot be loaded safely"):
        export(
            model_ref="user_models:small_cnn",
            weights=tmp_path / "evil.pt",
            input_shape=(1, 1, 28, 28),
            out=tmp_path / "b",
            progress=False,
        )
    assert not canary.exists()


@pytest.mark.mnist
def test_export_on_real_mnist(mnist_root, tmp_path):
    b = export(model_ref="mnist-mlp", out=tmp_path / "b", data_dir=mnist_root, progress=False)
    assert b.manifest.parity["passed"] and b.manifest.parity["inputs"]["n"] == 1064
    x, _ = _test_data(b)
    assert x.min() == pytest.approx(b.manifest.input["value_range"][0], abs=1e-5)
