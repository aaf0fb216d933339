"""Export speed: the whole `edgeport export` process on ResNet18 against a raw script doing the work an
export cannot avoid, both as fresh processes, in one run.

edgeport: ``edgeport export --model torchvision:resnet18 --weights w.safetensors --input-shape 1,3,224,224
--data synthetic`` with the default formats (TorchScript, ONNX, OpenVINO IR, ExecuTorch).  It also writes
the checkpoint, golden I/O, the ONNX test data set and the manifest, checks parity at batch sizes 1, 2, 7
and 64 and at the edge inputs, and hashes every file.

raw (``--raw``, run as its own process, imports included): load the weights, ``torch.jit.trace`` +
``freeze`` + save, ``torch.onnx.export``, ``openvino.convert_model`` + ``save_model``, ``torch.export`` +
``to_edge_transform_and_lower(XnnpackPartitioner)`` + ``to_executorch`` + save, and one forward pass of
torch, TorchScript, ONNX Runtime, OpenVINO and the ExecuTorch runtime (loading and compiling included)
over as many inputs as edgeport's parity uses, in the same batches.  Target: edgeport <= 1.5x raw.

Usage: python benchmarks/export_time.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SIZES = (1, 2, 7, 64)  # edgeport's parity batch sizes (edgeport.export.parity)
SHAPE = (3, 224, 224)


def _chunks(n: int):
    i, k = 0, 0
    while i < n:
        b = SIZES[k % len(SIZES)]
        yield i, min(n, i + b)
        i += b
        k += 1


def raw_work(weights: Path, n: int, tmp: Path) -> dict[str, float]:
    """The raw tool calls, timed step by step from the first import."""
    t = {}
    t0 = time.perf_counter()
    import numpy as np
    import onnxruntime as ort
    import openvino as ov
    import torch
    import torchvision
    from safetensors.torch import load_file

    model = torchvision.models.resnet18(num_classes=10).eval()
    model.load_state_dict(load_file(str(weights)))
    x = np.random.default_rng(0).standard_normal((n, *SHAPE)).astype(np.float32)
    t["imports + load weights"] = time.perf_counter() - t0
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

    t0 = time.perf_counter()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch", min=1, max=64)
        ep = torch.export.export(model, example, dynamic_shapes=({0: batch},), strict=False)
        # the lowering narrows the batch's range to the example's; the .pte then refuses other batches
        env = next(
            n.meta["val"].fake_mode.shape_env
            for n in ep.graph.nodes
            if hasattr(n.meta.get("val"), "fake_mode")
        )
        saved = dict(env.var_to_range)
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        env.var_to_range.update(saved)
        pte = edge.to_executorch()
        (tmp / "m.pte").write_bytes(pte.buffer)
    t["torch.export + XNNPACK lowering + save"] = time.perf_counter() - t0

    def eager():
        return lambda v: model(torch.from_numpy(v))

    def torchscript():
        m = torch.jit.load(str(tmp / "m.pt"))
        return lambda v: m(torch.from_numpy(v))

    def onnxruntime():
        sess = ort.InferenceSession(str(tmp / "m.onnx"), providers=["CPUExecutionProvider"])
        return lambda v: sess.run(None, {"input": v})

    def openvino():
        compiled = ov.Core().compile_model(str(tmp / "m.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        req = compiled.create_infer_request()
        return lambda v: req.infer({0: v})

    def executorch():
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(tmp / "m.pte").load_method("forward")
        return lambda v: method.execute([torch.from_numpy(v)])

    for name, fn in (
        ("torch", eager),
        ("torchscript", torchscript),
        ("onnxruntime", onnxruntime),
        ("openvino", openvino),
        ("executorch", executorch),
    ):
        t0 = time.perf_counter()
        with torch.inference_mode():
            run = fn()
            for a, b in _chunks(n):
                run(np.ascontiguousarray(x[a:b]))
        t[f"forward: {name}"] = time.perf_counter() - t0
    return t


def _timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    took = time.perf_counter() - t0
    if proc.returncode not in (0,):
        sys.exit(
            f"export_time: {' '.join(cmd[:3])}... exited {proc.returncode}: {proc.stderr.strip()[-800:]}"
        )
    return took, proc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the fastest of each side kept")
    ap.add_argument("--raw", nargs=3, metavar=("WEIGHTS", "N", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.raw:
        print(json.dumps(raw_work(Path(args.raw[0]), int(args.raw[1]), Path(args.raw[2]))))
        return 0
    import torch
    import torchvision
    from safetensors.torch import save_file

    edgeport_cli = shutil.which("edgeport", path=str(Path(sys.executable).parent)) or shutil.which("edgeport")
    if not edgeport_cli:
        sys.exit("export_time: the edgeport command is not installed in this environment: pip install -e .")
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-export-time-"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        torch.manual_seed(0)
        save_file(torchvision.models.resnet18(num_classes=10).state_dict(), str(tmp / "w.safetensors"))
        edge, raw = [], []
        for r in range(args.rounds):
            out = tmp / f"b{r}"
            cmd = [edgeport_cli, "export", "--model", "torchvision:resnet18", "--weights", str(tmp / "w.safetensors"),
                   "--model-arg", "num_classes=10", "--input-shape", "1,3,224,224", "--data", "synthetic",
                   "--out", str(out)]  # fmt: skip
            took, _ = _timed(cmd, env=env)
            manifest = json.loads((out / "manifest.json").read_text())
            edge.append((took, manifest))
            n = manifest["parity"]["inputs"]["n"]
            work = tmp / f"raw{r}"
            work.mkdir()
            took, proc = _timed(
                [sys.executable, __file__, "--raw", str(tmp / "w.safetensors"), str(n), str(work)], env=env
            )
            raw.append((took, json.loads(proc.stdout.strip().splitlines()[-1])))
            shutil.rmtree(out)
            shutil.rmtree(work)
        e, manifest = min(edge, key=lambda p: p[0])
        w, steps = min(raw, key=lambda p: p[0])
        formats = sorted({a["format"] for a in manifest["artifacts"]} - {"torch"})
        print(f"ResNet18 (11.7 M parameters), 224x224, formats {', '.join(formats)}; parity on {n} inputs in "
              f"batches cycling {', '.join(map(str, SIZES))}")  # fmt: skip
        print(f"raw script, whole process: {w:.2f} s (rounds: {', '.join(f'{v:.2f}' for v, _ in raw)})")
        for k, v in steps.items():
            print(f"  {k:<42} {v:6.2f} s")
        print(f"edgeport export, whole process: {e:.2f} s (rounds: {', '.join(f'{v:.2f}' for v, _ in edge)})")
        for k, v in sorted(manifest.get("timings", {}).items(), key=lambda kv: -kv[1]):
            print(f"  {k:<42} {v:6.2f} s")
        print(f"ratio {e / w:.2f}x (target <= 1.5x): {'ok' if e / w <= 1.5 else 'MISSED'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
