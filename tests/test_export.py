"""Export: each format, parity at export, safe writing, user models of every source."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import export_fixtures as fx
from edgeport.bundle import load_bundle
from edgeport.config import ExportConfig
from edgeport.errors import BundleError, ConfigError, ParityError
from edgeport.export.api import export
from edgeport.fsutil import OWNER_FILE


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
        # the batch is bounded as the manifest says (1..--max-batch), not open-ended
        assert model.inputs[0].get_partial_shape().to_string() == "[1..4096,1,28,28]"
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
    fp16, fp32 = b.artifact("openvino", "fp16"), b.artifact("openvino")
    assert fp16.total_bytes < fp32.extra_files[0].bytes


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
    from torch.jit.mobile import _load_for_lite_interpreter

    lite = _load_for_lite_interpreter(str(b.path_of(art, "model.ptl")))
    np.testing.assert_allclose(lite(torch.from_numpy(x.copy())).numpy(), y, atol=1e-5, rtol=1e-5)


def test_executorch_artifact_runs_in_executorch_alone(full_bundle):
    pytest.importorskip("executorch")
    from executorch.runtime import Runtime

    b = load_bundle(full_bundle)
    art = b.artifact("executorch")
    d = art.details
    assert d["max_batch"] == 64 and d["delegation"]["delegated_ops"] > 0
    assert d["delegation"]["delegated_subgraphs"] >= 1
    method = Runtime.get().load_program(b.read_verified(art)).load_method("forward")
    x, y = _test_data(b)
    for bs in (1, 7, 16):
        out = method.execute([torch.from_numpy(np.ascontiguousarray(x[:bs]))])[0].numpy()
        np.testing.assert_allclose(out, y[:bs], atol=1e-5, rtol=1e-5)


def test_parity_figures_in_manifest(full_bundle):
    from edgeport.config import ExportConfig
    from edgeport.export.parity import N_FIXED_EDGE, N_NOISE

    p = load_bundle(full_bundle).manifest.parity
    real = ExportConfig().parity_samples
    n = real + N_FIXED_EDGE + N_NOISE  # the eval samples plus the edge inputs, each run once
    assert p["inputs"]["n"] == n and f"{real} samples of the eval data" in p["inputs"]["real"]
    assert set(p["artifacts"]) == {
        "torchscript/fp32",
        "onnx/fp32",
        "openvino/fp32",
        "openvino/fp16",
        "executorch/fp32",
    }
    for key, fig in p["artifacts"].items():
        assert set(fig["batch_sizes"]) == {"1", "2", "7", "64"}
        assert sum(row["n"] for row in fig["batch_sizes"].values()) == n  # every input once
        for row in fig["batch_sizes"].values():
            assert row["passed"] and row["agreement"] >= (1.0 if key.endswith("fp32") else 0.998)
            if key.endswith("fp32"):
                assert row["max_abs"] <= 1e-5


def test_parity_failure_lists_artifact_and_batch(tiny_run, synthetic_mnist, tmp_path, monkeypatch):
    from edgeport.runtime import onnxruntime_backend as ortb

    real = ortb.OnnxRuntimeRunner._run

    def broken(self, feeds):
        out = real(self, feeds)
        n = len(next(iter(feeds.values())))
        return {k: v + np.float32(1e-3) if n == 7 else v for k, v in out.items()}

    monkeypatch.setattr(ortb.OnnxRuntimeRunner, "_run", broken)
    with pytest.raises(ParityError) as info:  # asked for by name: its failure is the export's
        export(
            tiny_run,
            tmp_path / "b",
            config=ExportConfig(formats=("onnx",)),
            formats_explicit=True,
            data_dir=synthetic_mnist,
            progress=False,
        )
    msg = str(info.value)
    assert "onnx/fp32 batch 7" in msg and "max abs" in msg and "batch 64" not in msg
    assert info.value.failures and info.value.failures[0].batch_size == 7
    assert list(tmp_path.iterdir()) == []  # no bundle, no staging left behind
    # a default format that fails is left out; the others are written, and the failure is recorded
    b = export(
        tiny_run,
        tmp_path / "c",
        config=ExportConfig(formats=("onnx", "openvino")),
        data_dir=synthetic_mnist,
        progress=False,
    )
    assert not b.has("onnx") and b.has("openvino") and not (tmp_path / "c" / "onnx" / "model.onnx").exists()
    (f,) = b.failures
    assert (f["format"], f["precision"], f["stage"]) == ("onnx", "fp32", "parity") and "batch 7" in f[
        "reason"
    ]


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
    import edgeport.formats.onnx as onnx_mod

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_mod, "export", boom)
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
    with pytest.raises(ConfigError, match="--weights"):
        export(model_ref="user_models:small_cnn", out=tmp_path / "b", input_shape=(1, 1, 28, 28))
    with pytest.raises(ConfigError, match="--input"):
        export(model_ref="user_models:small_cnn", random_init=True, out=tmp_path / "b")
    with pytest.raises(ConfigError, match="needs data"):
        w = tmp_path / "w.safetensors"
        from safetensors.torch import save_file

        import user_models

        save_file(user_models.rgb_mlp().state_dict(), str(w))
        export(model_ref="user_models:rgb_mlp", weights=w, input_shape=(1, 3, 8, 8), out=tmp_path / "b")
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ user models


def test_user_cnn_from_safetensors_and_pt(tmp_path, synthetic_mnist):
    from safetensors.torch import save_file

    import user_models

    model = user_models.small_cnn()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # weights that differ from the factory's, so loading them is tested
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    for weights in ("w.safetensors", "w.pt"):
        b = export(
            model_ref="user_models:small_cnn",
            weights=tmp_path / weights,
            input_shape=(1, 1, 28, 28),
            out=tmp_path / f"bundle_{weights}",
            config=ExportConfig(formats=("onnx", "openvino")),
            data_dir=synthetic_mnist,
            progress=False,
        )
        assert b.manifest.model == "user_models:small_cnn" and not b.random_init
        assert "eval data (mnist" in b.manifest.parity["inputs"]["real"]
        assert b.manifest.provenance["weights_file"] == weights
        x, y = _test_data(b)
        with torch.no_grad():
            np.testing.assert_allclose(model.eval()(torch.from_numpy(x)).numpy(), y, atol=1e-6)


def test_random_init_is_marked_everywhere(tmp_path, capsys):
    from edgeport.cli import main

    b = export(
        model_ref="user_models:rgb_mlp",
        random_init=True,
        input_shape=(1, 3, 8, 8),
        out=tmp_path / "b",
        config=ExportConfig(formats=("onnx",)),
        progress=False,
    )
    assert b.random_init and "random weights: not for accuracy" in b.warnings
    assert b.signature.inputs[0].shape == ("batch", 3, 8, 8) and b.labels == ["0", "1", "2", "3", "4"]
    assert b.signature.outputs[0].shape == ("batch", 5) and b.signature.outputs[0].kind == "probs"
    assert "weak evidence" in b.manifest.parity["inputs"]["real"]  # no data given: synthetic, and it says so
    assert main(["inspect", str(tmp_path / "b")]) == 0
    assert "random weights: not for accuracy" in capsys.readouterr().out


def test_pickle_weights_are_refused(tmp_path):
    import pickle

    canary = tmp_path / "canary"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(BundleError, match="cannot be loaded safely"):
        export(
            model_ref="user_models:small_cnn",
            weights=tmp_path / "evil.pt",
            input_shape=(1, 1, 28, 28),
            out=tmp_path / "b",
            progress=False,
        )
    assert not canary.exists()


def test_two_inputs_two_outputs_every_format(tmp_path):
    """An image plus a vector in, logits plus an embedding out: every format, parity per output."""
    b = export(
        model_ref="user_models:two_in_two_out",
        random_init=True,
        inputs=["image:1,3,16,16", "vector:1,6:float32"],
        out=tmp_path / "b",
        progress=False,
    )
    sig = b.signature
    assert sig.input_names == ["image", "vector"] and sig.output_names == ["logits", "embedding"]
    assert [o.kind for o in sig.outputs] == ["logits", "raw"] and sig.inputs[0].layout == "NCHW"
    assert sig.inputs[1].layout is None and b.preprocessing.input == "image"
    parity = b.manifest.parity["artifacts"]
    assert {k.split("/")[0] for k in parity} >= {"torchscript", "onnx", "openvino"}
    for fig in parity.values():
        assert set(fig["batch_sizes"]) == {"1", "2", "7", "64"}
        for row in fig["batch_sizes"].values():
            assert set(row["outputs"]) == {"logits", "embedding"} and all(
                o["passed"] for o in row["outputs"].values()
            )
            assert row["agreement"] == 1.0  # the task metric: top-1 agreement of the logits
            assert "agreement" not in row["outputs"]["embedding"]  # an aux output: tolerance only
    rng = np.random.default_rng(0)
    feeds = {
        "image": rng.standard_normal((3, 3, 16, 16)).astype(np.float32),
        "vector": rng.standard_normal((3, 6)).astype(np.float32),
    }
    with b.runner("torch") as ref_runner:
        ref = ref_runner.run(feeds)
    for backend in ("torchscript", "onnxruntime", "openvino", "executorch"):
        if not b.has({"onnxruntime": "onnx"}.get(backend, backend)):
            continue
        with b.runner(backend) as r:
            out = r.run(feeds)
        assert set(out) == {"logits", "embedding"} and out["embedding"].shape == (3, 12)
        for k in out:
            np.testing.assert_allclose(out[k], ref[k], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("ref", ["torchvision:resnet18", "timm:test_resnet"])
def test_library_models(ref, tmp_path):
    """torchvision:NAME and timm:NAME with factory arguments, random weights, ImageNet-style preprocessing."""
    if ref.startswith("timm"):
        pytest.importorskip("timm")
    b = export(
        model_ref=ref,
        random_init=True,
        model_args={"num_classes": 7},
        input_shape=(1, 3, 64, 64),
        out=tmp_path / "b",
        config=ExportConfig(formats=("onnx", "openvino")),
        progress=False,
    )
    assert b.manifest.model == ref and b.manifest.model_args == {"num_classes": 7}
    assert b.signature.outputs[0].shape == ("batch", 7) and b.signature.outputs[0].kind == "logits"
    pre = b.preprocessing
    assert pre.mode == "RGB" and pre.step("center_crop")["size"] == [64, 64] and pre.preset == "imagenet"
    if ref.startswith("torchvision"):
        assert "batchnorm_reestimated" in b.manifest.provenance  # random weights, BN statistics re-estimated
    with b.runner("torch") as r:
        assert r.run(np.zeros((2, 3, 64, 64), np.float32)).shape == (2, 7)
    with pytest.raises(ConfigError, match="fix --model-arg"):
        export(
            model_ref=ref,
            random_init=True,
            model_args={"no_such_arg": 1},
            input_shape=(1, 3, 64, 64),
            out=tmp_path / "c",
            progress=False,
        )


def test_exported_program_source(tmp_path):
    import user_models

    model = user_models.logits_cnn().eval()
    ep = torch.export.export(
        model, (torch.randn(2, 3, 16, 16),), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},)
    )
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    with pytest.raises(ConfigError, match="trust-model-code"):  # a .pt2 is a pickle: the opt-in, always
        export(model_ref=str(tmp_path / "m.pt2"), out=tmp_path / "b", data="synthetic", progress=False)
    assert not (tmp_path / "b").exists()
    b = export(
        model_ref=str(tmp_path / "m.pt2"),
        out=tmp_path / "b",
        data="synthetic",
        config=ExportConfig(formats=("onnx",)),
        progress=False,
        trust_model_code=True,
    )
    assert b.manifest.model == "exported_program" and b.artifact("torch").details["format"] == "pt2"
    assert b.signature.inputs[0].shape == ("batch", 3, 16, 16)
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with b.runner("onnxruntime") as r:
        with torch.no_grad():
            np.testing.assert_allclose(r.run(x), model(torch.from_numpy(x)).numpy(), atol=1e-5)
    # the reference is a pickle: from a bundle this process did not write, it needs explicit trust
    fresh = load_bundle(tmp_path / "b")
    with pytest.raises(ConfigError, match="EDGEPORT_TRUST_MODEL_CODE"):
        fresh.runner("torch").load()


@pytest.mark.mnist
def test_export_on_real_mnist(mnist_root, tmp_path):
    from safetensors.torch import save_file

    from edgeport.sources.models import build_model

    save_file(build_model("mnist-mlp").state_dict(), str(tmp_path / "w.safetensors"))
    b = export(
        model_ref="mnist-mlp",
        weights=tmp_path / "w.safetensors",
        out=tmp_path / "b",
        data_dir=mnist_root,
        config=ExportConfig(formats=("onnx",)),
        progress=False,
    )
    assert b.manifest.parity["passed"] and b.manifest.parity["inputs"]["n"] == 256 + 12
    x, _ = _test_data(b)
    assert x.min() == pytest.approx(b.signature.inputs[0].value_range[0], abs=1e-5)


def test_executorch_cnn_runs_at_every_batch_up_to_its_plan(tmp_path):
    """The batch-cap regression: lowering a conv model narrowed the planned batch (64 -> 15); restored here."""
    pytest.importorskip("executorch")
    b = export(
        model_ref="user_models:logits_cnn",
        random_init=True,
        input_shape=(1, 3, 16, 16),
        out=tmp_path / "b",
        config=ExportConfig(formats=("executorch",)),
        progress=False,
    )
    art = b.artifact("executorch")
    assert art.details["max_batch"] == 64 and b.signature.max_batch == 4096
    parity = b.manifest.parity["artifacts"]["executorch/fp32"]["batch_sizes"]
    assert set(parity) == {"1", "2", "7", "64"} and all(r["passed"] for r in parity.values())
    model = b.runner("torch")
    with model, b.runner("executorch") as r:
        assert r.max_batch == 64
        for bs in (1, 7, 16, 64):
            x = np.random.default_rng(bs).standard_normal((bs, 3, 16, 16)).astype(np.float32)
            np.testing.assert_allclose(r.run(x), model.run(x), atol=1e-5, rtol=1e-5, err_msg=f"batch {bs}")
        from edgeport.errors import InputError

        with pytest.raises(InputError, match="outside 1..64"):
            r.run(np.zeros((65, 3, 16, 16), np.float32))


def test_corrupted_pte_is_refused_before_parsing(tmp_path, full_bundle, monkeypatch):
    pytest.importorskip("executorch")
    import executorch.runtime

    root = fx.bundle_copy(full_bundle, tmp_path)
    verified = load_bundle(root)
    p = root / "executorch" / "model.pte"
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0x40
    p.write_bytes(bytes(data))
    monkeypatch.setattr(executorch.runtime.Runtime, "load_program", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(BundleError, match="executorch/model.pte.*does not match its manifest hash"):
        load_bundle(root)
    with pytest.raises(BundleError, match="executorch/model.pte"):
        verified.runner("executorch").load()  # swapped after loading: the runner re-checks


def test_stage_seconds_in_manifest_and_inspect(full_bundle):
    """Per-stage seconds: load, each format's conversion and parity, the shared reference, golden I/O and
    hashing are each recorded, and `inspect` shows them."""
    from edgeport.bundle.describe import describe

    b = load_bundle(full_bundle)
    t = b.manifest.timings
    fmts = ("torchscript", "onnx", "openvino", "executorch")
    want = {"load model", "golden I/O", "hashing", "parity reference (PyTorch)", "checkpoint"}
    want |= {f"export {f}" for f in fmts} | {f"parity {f}/fp32" for f in fmts}
    assert want <= set(t), sorted(want - set(t))
    assert all(np.isfinite(v) and v >= 0 for v in t.values())
    text = describe(b)
    assert "export stages" in text and "parity reference (PyTorch)" in text


def test_nested_stages_are_not_counted_twice(monkeypatch, tmp_path):
    """A stage inside another (hashing inside a format's export) is taken out of the outer one's seconds."""
    from edgeport.export import context as cx

    clock = iter([0.0, 1.0, 3.0, 4.0, 4.5, 10.0])  # outer in; inner 1..3; inner 4..4.5; outer out
    monkeypatch.setattr(cx.time, "perf_counter", lambda: next(clock))
    ctx = cx.ExportContext(staging=tmp_path, model=torch.nn.Identity(), signature=None, example=(),
                           config=ExportConfig())  # fmt: skip
    with ctx.stage("export onnx"):
        with ctx.stage("hashing"):
            pass
        with ctx.stage("hashing"):
            pass
    assert ctx.timings == {"hashing": 2.5, "export onnx": 7.5}


def test_torchscript_convolutions_are_traced_without_tf32():
    """The tracer bakes cuDNN's TF32 switch into each aten::_convolution: fp32 must be traced as fp32, or
    the artifact runs TF32 convolutions on a GPU (4.7e-3 from PyTorch on an H200, seen)."""
    from edgeport.formats.torchscript import _trace_freeze

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)).eval()
    before = torch.backends.cudnn.allow_tf32
    frozen = _trace_freeze(model, (torch.zeros(1, 3, 8, 8),))
    convs = [n for n in frozen.inlined_graph.nodes() if n.kind() in ("aten::_convolution", "aten::conv2d")]
    assert convs, "no convolution in the traced graph"
    for n in convs:
        if n.kind() == "aten::_convolution":
            assert list(n.inputs())[-1].toIValue() is False, n
    assert torch.backends.cudnn.allow_tf32 == before  # restored
