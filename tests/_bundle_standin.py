"""A bundle for the predict / edge-app tests.

When ``edgeport.export.api.export`` exists, :func:`make_bundle` exports the
session's tiny run with it.  Until then it writes a stand-in: an ONNX model
of the seed network's shape with seeded random weights plus a small
manifest, and :func:`install` puts a minimal ``edgeport.export.bundle``
(``load_bundle`` -> bundle -> ONNX Runtime runner) into ``sys.modules``.
A subprocess gets the same via ``sitecustomize`` (:func:`subprocess_env`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
_CACHE: dict[str, Path] = {}


def real_export_available() -> bool:
    try:
        return importlib.util.find_spec("edgeport.export.api") is not None
    except ImportError:
        return False


def make_bundle(tmp_path_factory, request) -> Path:
    """One bundle per session: the real export when it exists, else the stand-in."""
    if "bundle" not in _CACHE:
        out = tmp_path_factory.mktemp("bundle") / "mnist"
        if real_export_available():
            from edgeport.export.api import export

            run = request.getfixturevalue("tiny_run")
            data_dir = request.getfixturevalue("synthetic_mnist")
            export(run=run, out=out, data_dir=data_dir, progress=False)
        else:
            write_standin(out)
        _CACHE["bundle"] = out
    return _CACHE["bundle"]


# --------------------------------------------------------------------------- writing


def write_standin(out: Path, seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    dims = [784, 96, 256, 10]
    inits, nodes, prev = [], [helper.make_node("Flatten", ["input"], ["h0"], axis=1)], "h0"
    acts = ["Tanh", "Sigmoid", "Softmax"]
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        w = (rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32) * 3
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
        ]
        out_name = "probs" if i == 2 else f"h{i + 1}"
        kw = {"axis": 1} if acts[i] == "Softmax" else {}
        nodes.append(helper.make_node(acts[i], [f"a{i}"], [out_name], **kw))
        prev = out_name
    graph = helper.make_graph(
        nodes,
        "standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out / "model.onnx"))
    manifest = {
        "schema": "edgeport-standin/1",
        "labels": [str(i) for i in range(10)],
        "input_shape": [1, 28, 28],
        "preprocessing": {"scale": 1 / 255, "mean": 0.1307, "std": 0.3081},
        "artifacts": [
            {
                "format": "onnx",
                "precision": "fp32",
                "file": "model.onnx",
                "bytes": (out / "model.onnx").stat().st_size,
            },
        ],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class _Artifact:
    format: str
    precision: str
    file: str
    bytes: int


class _Runner:
    def __init__(self, path: Path, preprocessing):
        import onnxruntime as ort

        self._sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._pre = preprocessing

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sess = None

    def run(self, x):
        return self._sess.run(None, {"input": np.asarray(x, np.float32)})[0]

    def predict(self, images):
        probs = self.run(self._pre.apply(images))
        return probs.argmax(1), probs


class _Bundle:
    def __init__(self, path: Path):
        from edgeport.errors import BundleError
        from edgeport.preprocessing import Preprocessing

        mf = path / "manifest.json"
        if not mf.is_file():
            raise BundleError(f"{mf} not found; pass a bundle folder")
        m = json.loads(mf.read_text())
        self.path = path
        self.labels = m["labels"]
        self.input_shape = tuple(m["input_shape"])
        self.preprocessing = Preprocessing.from_dict(m["preprocessing"])
        self.artifacts = [_Artifact(**a) for a in m["artifacts"]]

    def runner(self, backend="onnxruntime", precision="fp32", device="cpu"):
        from edgeport.errors import BackendUnavailableError

        if backend != "onnxruntime" or precision != "fp32" or device != "cpu":
            raise BackendUnavailableError(
                f"stand-in bundle has onnxruntime/fp32/cpu only, not {backend}/{precision}/{device}"
            )
        return _Runner(self.path / "model.onnx", self.preprocessing)


def load_bundle(path) -> _Bundle:
    return _Bundle(Path(path))


def install() -> None:
    """Provide ``edgeport.export.bundle`` with this stand-in while the real export is missing."""
    if real_export_available():
        return
    mod = types.ModuleType("edgeport.export.bundle")
    mod.load_bundle = load_bundle
    sys.modules["edgeport.export.bundle"] = mod
    import edgeport.export

    edgeport.export.bundle = mod


def subprocess_env(tmp_path: Path) -> dict:
    """Environment for a subprocess that sees the stand-in when the real bundle module is missing."""
    env = dict(os.environ)
    site = tmp_path / "standin_site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import _bundle_standin\n_bundle_standin.install()\n")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(HERE), env.get("PYTHONPATH", "")])
    return env
