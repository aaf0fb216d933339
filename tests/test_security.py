"""Hostile files (issue 7, checks 2 and 3): code in model files never runs, and
nothing outside the bundle is read.  Path escapes in the manifest and symlinks are
covered in test_bundle.py; ONNX external data and pickle payloads are covered here."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import export_fixtures as fx
from edgeport.bundle import load_bundle
from edgeport.bundle.onnx_graph import external_data_locations
from edgeport.cli import main
from edgeport.errors import BundleError

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


class Canary:
    """Unpickling this creates ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def forge(root: Path, rel: str, data: bytes) -> None:
    """Replace ``rel`` and rehash it into the manifest: a forged, self-consistent bundle."""
    (root / rel).write_bytes(data)
    m = json.loads((root / "manifest.json").read_text())
    for a in m["artifacts"]:
        for e in [a, *a.get("extra_files", [])]:
            if e.get("file", e.get("path")) == rel:
                e["sha256"], e["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    (root / "manifest.json").write_text(json.dumps(m))


def cli(argv) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


# ------------------------------------------------------------ code in model files


def _torch_saved_payload(canary: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": Canary(canary)}, buf)  # a zip archive whose data.pkl calls open()
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip", "pickle named .safetensors"])
def test_export_refuses_pickled_code_in_weights(kind, tmp_path):
    canary = tmp_path / "canary"
    data = _torch_saved_payload(canary) if kind == "torch.save zip" else pickle.dumps({"w": Canary(canary)})
    weights = tmp_path / ("evil.safetensors" if "safetensors" in kind else "evil.pt")
    weights.write_bytes(data)
    sys.path.insert(0, str(TESTS))
    rc, err = cli(
        ["export", "--model", "user_models:small_cnn", "--weights", weights,
         "--input-shape", "1,1,28,28", "--out", tmp_path / "b"]
    )  # fmt: skip
    assert rc != 0 and err.count("\n") == 1 and "error:" in err and "Traceback" not in err, err
    assert not canary.exists()
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("payload", ["data.pkl replaced", "torch.save file", "raw pickle"])
def test_torchscript_archive_with_pickle_payload_is_refused(payload, bundle_copy, tmp_path, monkeypatch):
    """Even with the trust opt-in (so the archive reaches the loader), a pickle payload is refused."""
    monkeypatch.setenv("EDGEPORT_TRUST_MODEL_CODE", "1")
    canary = tmp_path / "canary"
    rel = "torchscript/model.pt"
    if payload == "data.pkl replaced":
        src = zipfile.ZipFile(bundle_copy / rel)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                body = src.read(info)
                if info.filename.endswith("/data.pkl"):
                    body = pickle.dumps(Canary(canary), protocol=2)
                dst.writestr(info, body)
        data = buf.getvalue()
    elif payload == "torch.save file":
        data = _torch_saved_payload(canary)
    else:
        data = pickle.dumps(Canary(canary))
    forge(bundle_copy, rel, data)
    with pytest.raises(BundleError, match="torchscript/fp32") as info:
        load_bundle(bundle_copy).runner("torchscript").load()
    assert "\n" not in str(info.value)
    assert not canary.exists()


def test_checkpoint_that_is_a_pickle_is_refused(bundle_copy, tmp_path):
    canary = tmp_path / "canary"
    forge(bundle_copy, "checkpoint/model.safetensors", pickle.dumps({"w": Canary(canary)}))
    with pytest.raises(BundleError, match="not a readable safetensors"):
        load_bundle(bundle_copy).runner("torch").load()
    assert not canary.exists()


_TORCH_LOAD = re.compile(r"\btorch\.load\(")


def _call_text(src: str, start: int) -> str:
    """The source of the call whose '(' is at ``start``..., up to its matching ')'."""
    depth = 0
    for i in range(start, len(src)):
        depth += {"(": 1, ")": -1}.get(src[i], 0)
        if depth == 0 and src[i] == ")":
            return src[start : i + 1]
    return src[start:]


def test_source_never_unpickles_untrusted_data():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(SRC)
        if re.search(r"weights_only\s*=\s*False", text):
            bad.append(f"{rel}: weights_only=False")
        for m in re.finditer(r"\b(c?pickle|dill|joblib|marshal|shelve)\.(load|loads|Unpickler)\b", text):
            bad.append(f"{rel}: {m.group(0)}")
        if re.search(r"allow_pickle\s*=\s*True", text):
            bad.append(f"{rel}: allow_pickle=True")
        for m in _TORCH_LOAD.finditer(text):
            if not re.search(r"weights_only\s*=\s*True", _call_text(text, m.end() - 1)):
                bad.append(f"{rel}: torch.load without weights_only=True")
    assert not bad, "unsafe deserialization in src/: " + "; ".join(bad)


def test_torchscript_is_parsed_only_from_verified_bytes():
    src = (SRC / "edgeport/runtime/torchscript_backend.py").read_text()
    assert "read_verified" in src and "torch.jit.load(io.BytesIO(data)" in src


# ------------------------------------------------------------ escaping the bundle


def _external_onnx(full_bundle: Path, location: str) -> tuple[bytes, bytes]:
    """The bundle's ONNX model with its first initializer moved to external data at ``location``."""
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load_model_from_string((full_bundle / "onnx/model.onnx").read_bytes())
    init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    payload = bytes(init.raw_data)
    set_external_data(init, location=location, offset=0, length=len(payload))
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    return model.SerializeToString(), payload


def _no_ort(monkeypatch):
    from edgeport.runtime import onnxruntime_backend

    def boom(*a, **k):
        raise AssertionError("onnxruntime was handed a model with an escaping external-data path")

    monkeypatch.setattr(onnxruntime_backend.ort, "InferenceSession", boom)


@pytest.mark.parametrize("where", ["../secret.bin", "../../secret.bin", "ABSOLUTE", "cwd", "unlisted"])
def test_onnx_external_data_outside_the_bundle_is_refused(where, full_bundle, tmp_path, monkeypatch):
    root = fx.bundle_copy(full_bundle, tmp_path / "a")
    secret_dir = tmp_path / "a"
    location = {"ABSOLUTE": str(secret_dir / "secret.bin"), "cwd": "secret.bin", "unlisted": "w.bin"}.get(
        where, where
    )
    model, payload = _external_onnx(full_bundle, location)
    for d in (secret_dir, tmp_path, root / "onnx"):
        (d / "secret.bin").write_bytes(payload)  # a real, readable target: only edgeport can refuse
    (root / "onnx" / "w.bin").write_bytes(payload)
    monkeypatch.chdir(secret_dir)
    before = fx.tree_digest(tmp_path)
    forge(root, "onnx/model.onnx", model)
    b = load_bundle(root)
    assert location in external_data_locations(model)
    _no_ort(monkeypatch)
    with pytest.raises(BundleError, match="external data .*refusing to read it") as info:
        b.runner("onnxruntime").load()
    assert "\n" not in str(info.value)
    after = fx.tree_digest(tmp_path)
    assert {k: v for k, v in after.items() if k != "a/bundle/manifest.json" and "model.onnx" not in k} == {
        k: v for k, v in before.items() if k != "a/bundle/manifest.json" and "model.onnx" not in k
    }  # nothing written


def test_onnx_external_data_listed_in_the_bundle_loads_from_memory(
    bundle_copy, full_bundle, tmp_path, monkeypatch
):
    model, payload = _external_onnx(full_bundle, "weights.bin")
    (bundle_copy / "onnx" / "weights.bin").write_bytes(payload)
    forge(bundle_copy, "onnx/model.onnx", model)
    m = json.loads((bundle_copy / "manifest.json").read_text())
    art = next(a for a in m["artifacts"] if a["format"] == "onnx")
    art["extra_files"].append(
        {"path": "onnx/weights.bin", "sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    )
    (bundle_copy / "manifest.json").write_text(json.dumps(m))
    monkeypatch.chdir(tmp_path)  # not the model folder: ORT must take the data from memory
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    with load_bundle(bundle_copy).runner("onnxruntime") as r:
        y = r.run(x)
    with load_bundle(full_bundle).runner("onnxruntime") as r:
        np.testing.assert_array_equal(y, r.run(x))
    # The external file is hash-checked like any other.
    (bundle_copy / "onnx" / "weights.bin").write_bytes(payload[:-4] + b"\0\0\0\0")
    with pytest.raises(BundleError, match="weights.bin .*does not match its manifest hash"):
        load_bundle(bundle_copy)


def test_external_data_scanner_finds_nested_tensors():
    import onnx
    from onnx import TensorProto, helper
    from onnx.external_data_helper import set_external_data

    def ext(name, loc):
        t = helper.make_tensor(name, TensorProto.FLOAT, [1], np.ones(1, np.float32).tobytes(), raw=True)
        set_external_data(t, location=loc)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        return t

    then = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=ext("c", "../in_subgraph.bin"))],
        "then", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    g = helper.make_graph(
        [helper.make_node("If", ["b"], ["y"], then_branch=then, else_branch=then)],
        "g",
        [helper.make_tensor_value_info("b", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [ext("w", "/abs/init.bin")],
    )
    model = helper.make_model(g)
    found = external_data_locations(model.SerializeToString())
    assert sorted(found) == ["../in_subgraph.bin", "../in_subgraph.bin", "/abs/init.bin"]  # then + else
    data = (TESTS / "user_models.py").read_bytes()
    with pytest.raises(BundleError, match="not a well-formed protobuf"):
        external_data_locations(data)
    assert (
        external_data_locations(
            onnx.helper.make_model(helper.make_graph([], "e", [], [])).SerializeToString()
        )
        == []
    )


def test_openvino_refuses_a_non_ir_file(bundle_copy):
    forge(bundle_copy, "openvino/model.xml", (bundle_copy / "onnx/model.onnx").read_bytes())
    with pytest.raises(BundleError, match="not OpenVINO IR XML"):
        load_bundle(bundle_copy).runner("openvino").load()


def test_bundle_naming_model_code_is_not_imported_without_trust(tmp_path, monkeypatch):
    """A manifest's `module:factory` would run code on import: refused unless trusted."""
    import sys

    from edgeport.errors import ConfigError
    from edgeport.sources.models import TRUST_ENV, build_model

    canary = tmp_path / "canary"
    (tmp_path / "evil_mod.py").write_text(
        f"open({str(canary)!r}, 'w').write('x')\ndef f():\n    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(ConfigError, match=TRUST_ENV):
        build_model("evil_mod:f", trust_code=False)
    assert not canary.exists() and "evil_mod" not in sys.modules
