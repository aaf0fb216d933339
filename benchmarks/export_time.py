"""Export speed: `edgeport export` of ResNet18 against the raw work an export cannot avoid, in one run.

edgeport: ``export(model_ref="torchvision:resnet18", weights=..., --formats torchscript,onnx,openvino)``
with parity on the same inputs every raw step below uses (it also writes the checkpoint, golden I/O,
the ONNX test data set and the manifest, and hashes every file).

raw: ``torch.jit.trace`` + ``freeze`` + save, ``torch.onnx.export``, ``openvino.convert_model`` +
``save_model``, and one forward pass of torch, TorchScript, ONNX Runtime and OpenVINO (session
creation included) over the parity inputs, in the same batches.  Target: edgeport <= 1.5x raw.

Usage: python benchmarks/export_time.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from edgeport.config import ExportConfig
from edgeport.export.api import export
from edgeport.export.parity import chunks

FORMATS = ("torchscript", "onnx", "openvino")


def raw_work(model, x: np.ndarray, tmp: Path) -> dict[str, float]:
    import onnxruntime as ort
    import openvino as ov

    t = {}
    example = (torch.from_numpy(x[:2]),)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        ts = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False).eval())
        buf = io.BytesIO()
        torch.jit.save(ts, buf)
        (tmp / "m.pt").write_bytes(buf.getvalue())
    t["torch.jit.trace + freeze + save"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            example,
            buf,
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=False,
        )
    (tmp / "m.onnx").write_bytes(buf.getvalue())
    t["torch.onnx.export"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ov.save_model(ov.convert_model(str(tmp / "m.onnx")), str(tmp / "m.xml"), compress_to_fp16=False)
    t["openvino.convert_model + save_model"] = time.perf_counter() - t0
    sizes = [(a, b) for a, b, _ in chunks(len(x), (1, 2, 7, 64))]

    def forward(name, fn):
        t0 = time.perf_counter()
        run = fn()
        for a, b in sizes:
            run(np.ascontiguousarray(x[a:b]))
        t[f"forward: {name}"] = time.perf_counter() - t0

    def eager():
        def run(v):
            with torch.inference_mode():
                model(torch.from_numpy(v))

        return run

    def torchscript():
        m = torch.jit.load(str(tmp / "m.pt"))

        def run(v):
            with torch.inference_mode():
                m(torch.from_numpy(v))

        return run

    def onnxruntime():
        sess = ort.InferenceSession(str(tmp / "m.onnx"), providers=["CPUExecutionProvider"])
        return lambda v: sess.run(None, {"input": v})

    def openvino():
        compiled = ov.Core().compile_model(str(tmp / "m.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        req = compiled.create_infer_request()
        return lambda v: req.infer({0: v})

    for name, fn in (
        ("torch", eager),
        ("torchscript", torchscript),
        ("onnxruntime", onnxruntime),
        ("openvino", openvino),
    ):
        forward(name, fn)
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the fastest of each kept")
    args = ap.parse_args(argv)
    import torchvision
    from safetensors.torch import save_file

    tmp = Path(tempfile.mkdtemp(prefix="edgeport-export-time-"))
    try:
        torch.manual_seed(0)
        model = torchvision.models.resnet18(num_classes=10).eval()
        save_file(model.state_dict(), str(tmp / "w.safetensors"))
        edge, raw = [], []
        for r in range(args.rounds):
            out = tmp / f"b{r}"
            t0 = time.perf_counter()
            b = export(
                model_ref="torchvision:resnet18",
                weights=tmp / "w.safetensors",
                model_args={"num_classes": 10},
                input_shape=(1, 3, 224, 224),
                data="synthetic",
                out=out,
                config=ExportConfig(formats=FORMATS),
                progress=False,
            )
            edge.append(time.perf_counter() - t0)
            n = b.manifest.parity["inputs"]["n"]
            x = np.random.default_rng(r).standard_normal((n, 3, 224, 224)).astype(np.float32)
            (tmp / "raw").mkdir(exist_ok=True)
            raw.append(raw_work(model, x, tmp / "raw"))
            shutil.rmtree(out)
        best_raw = min(raw, key=lambda d: sum(d.values()))
        print(
            f"ResNet18 (11.7 M parameters), 224x224, formats {', '.join(FORMATS)}, parity on {n} inputs in "
            "batches cycling 1, 2, 7, 64"
        )
        for k, v in best_raw.items():
            print(f"  raw {k:<40} {v:6.2f} s")
        total = sum(best_raw.values())
        e = min(edge)
        print(f"raw work, sum: {total:.2f} s")
        print(f"edgeport export: {e:.2f} s (rounds: {', '.join(f'{v:.2f}' for v in edge)})")
        print(f"ratio {e / total:.2f}x (target <= 1.5x): {'ok' if e / total <= 1.5 else 'MISSED'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
