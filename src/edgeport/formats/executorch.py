"""ExecuTorch: ``torch.export`` with a dynamic batch, lowered to XNNPACK, saved as a ``.pte``;
int8 through PT2E (``XNNPACKQuantizer``, per-channel symmetric weights) calibrated on the
calibration split, then exported and lowered again.

Two gotchas, measured here (executorch 1.5.1, torch 2.14.1):

- **Silent batch cap.** During lowering, a convolution shape check narrows the
  batch symbol's range on the shape environment it shares with the
  ExportedProgram (MobileNetV3 at max 64 came out planned for 15).  Every
  symbol's ``var_to_range`` is saved before lowering and restored before
  ``to_executorch()``; the manifest records the batch bounds.
- **Always delegate.** The portable (non-delegated) program is ~40x slower;
  delegation coverage (ops inside and outside XNNPACK) is recorded.

The int8 proof reads the ``.pte`` itself: each XNNPACK payload's flatbuffer is
decompiled with ExecuTorch's bundled ``flatc`` and its tensors' datatypes
counted; quantized (qint8/qcint8) tensors must be there.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import torch

from ..bundle.writer import write_bytes
from ..errors import ExportError, first_line

FILE = "executorch/model.pte"
INT8_FILE = "executorch/model.int8.pte"
# XNNDatatype values (executorch/backends/xnnpack/serialization/xnnpack_graph_schema.py)
QUANTIZED_TYPES = {3: "qint8", 4: "quint8", 5: "qint32", 6: "qcint8", 7: "qcint32", 8: "qcint4", 9: "qdint8"}


@contextlib.contextmanager
def _quiet():
    from ..runtime.executorch_backend import quiet_stderr

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), quiet_stderr():
        warnings.simplefilter("ignore")
        import logging

        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger().setLevel(level)


def _dynamic_shapes(ctx):
    """Every named dim bounded as the manifest says; the batch up to ``--executorch-max-batch`` (memory is
    planned for the largest size of every dim)."""
    return ctx.torch_dims(batch_max=ctx.config.executorch_max_batch)


def _example(ctx) -> tuple:
    hi = ctx.config.executorch_max_batch
    return tuple(t[: max(1, min(2, hi))] for t in ctx.example)


class _Renamed(torch.nn.Module):
    """The model one level down, so a submodule named like a GraphModule attribute (``meta``, ``graph``,
    ``code``...) no longer shadows it: torch.export's module would otherwise resolve ``meta.weight``
    against ``GraphModule.meta`` (a dict) and ExecuTorch lowering fails."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args):
        return self.model(*args)


def _collides(model: torch.nn.Module) -> list[str]:
    reserved = set(dir(torch.fx.GraphModule)) | {"meta", "graph", "code"}
    return [n for n, _ in model.named_children() if n in reserved]


def _shape_env(ep):
    for node in ep.graph.nodes:
        val = node.meta.get("val")
        mode = getattr(val, "fake_mode", None)
        if mode is not None and getattr(mode, "shape_env", None) is not None:
            return mode.shape_env
    return None


def _quiet_imports() -> None:
    import logging

    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torchao's import-time notice


def _lower(ep) -> tuple[bytes, dict, bool]:
    """(program bytes, delegation coverage, whether a narrowed batch range had to be restored)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    env = _shape_env(ep)
    saved = dict(env.var_to_range) if env is not None else {}
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    restored = bool(env is not None and any(env.var_to_range.get(k) != v for k, v in saved.items()))
    if env is not None:
        env.var_to_range.update(saved)  # undo the lowering's narrowing of the batch range
    info = get_delegation_info(edge.exported_program().graph_module)
    outside = {
        k: v.non_delegated
        for k, v in info.delegation_by_operator.items()
        if v.non_delegated and k not in ("getitem", "sym_size")
    }
    inside_q = sum(v.delegated for k, v in info.delegation_by_operator.items() if "quantize" in k)
    delegation = {
        "backend": "XnnpackBackend",
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "delegated_ops": info.num_delegated_nodes,
        "non_delegated_ops": sum(outside.values()),
        "outside": ", ".join(f"{k} x{v}" for k, v in sorted(outside.items())),
        "quantize_ops_inside": inside_q,
    }
    program = edge.to_executorch()
    plans = program.executorch_program.execution_plan
    delegation["planned_memory_bytes"] = int(sum(sum(p.non_const_buffer_sizes) for p in plans))
    return bytes(program.buffer), delegation, restored


def _export_program(module, ctx):
    _quiet_imports()
    from .onnx import no_fastpath

    shapes = _dynamic_shapes(ctx)
    if _collides(module):
        module = _Renamed(module)
        shapes = None if shapes is None else (shapes,)
    try:
        with _quiet(), no_fastpath():
            return torch.export.export(module, _example(ctx), dynamic_shapes=shapes, strict=False)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"torch.export of the model failed (needed for ExecuTorch): {first_line(exc)}"
        ) from None


def _planned_for(ctx) -> dict:
    """The sizes memory is planned for: every dim at its max (the batch at --executorch-max-batch)."""
    from ..specs import BATCH

    out = {}
    for name, d in ctx.signature.input_dims.items():
        out[name] = min(d.max, ctx.config.executorch_max_batch) if name == BATCH else d.max
    return out


def export(ctx) -> list:
    ep = _export_program(ctx.model.eval(), ctx)
    try:
        with _quiet():
            data, delegation, restored = _lower(ep)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ExecuTorch lowering to XNNPACK failed: {first_line(exc)}") from None
    write_bytes(ctx.staging, FILE, data)
    details = {
        "exporter": "torch.export + executorch.exir.to_edge_transform_and_lower (XnnpackPartitioner)",
        "max_batch": ctx.config.executorch_max_batch,
        "batch_range_restored": restored,
        "delegation": delegation,
        "planned_memory_bytes": delegation["planned_memory_bytes"],
        "planned_for": _planned_for(ctx),
    }
    if _collides(ctx.model):
        details["renamed"] = (
            f"wrapped: submodule(s) {', '.join(_collides(ctx.model))} shadow GraphModule attributes"
        )
    return [ctx.artifact("executorch", "fp32", FILE, (), details)]


# --------------------------------------------------------------------------- int8


def int8_candidates(method: str, ctx=None) -> list[tuple[str, dict]]:
    """XNNPACK's symmetric int8 config; activations observed by min/max (fast), or, for the percentile
    and entropy methods, XNNPACK's default HistogramObserver (its range search is slow on big models)."""
    observer = "minmax" if method in ("auto", "minmax") else "histogram"
    return [
        (f"per-channel/{observer}", {"per_channel": True, "observer": observer}),
        (f"per-tensor/{observer}", {"per_channel": False, "observer": observer}),
    ]


def _xnnpack_config(per_channel: bool, observer: str):
    import dataclasses

    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
    from torchao.quantization.pt2e import MinMaxObserver

    cfg = get_symmetric_quantization_config(is_per_channel=per_channel)
    if observer == "minmax":
        act = dataclasses.replace(
            cfg.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12)
        )
        cfg = dataclasses.replace(cfg, input_activation=act, output_activation=act)
    return cfg


def quantize(
    ctx,
    fp32,
    calibration,
    out_rel: str,
    *,
    per_channel: bool = True,
    observer: str = "minmax",
    float_modules=(),
) -> tuple[list[str], dict]:
    """``float_modules``: PyTorch module names XNNPACKQuantizer leaves unannotated (float)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    names = ctx.signature.input_names
    batch = min(ctx.calibration.batch_size, ctx.config.executorch_max_batch)
    try:
        with _quiet():
            gm = _export_program(ctx.model.eval(), ctx).module()
            quantizer = XNNPACKQuantizer().set_global(_xnnpack_config(per_channel, observer))
            if float_modules:
                quantizer.set_filter_function(_not_in(float_modules))
            prepared = prepare_pt2e(gm, quantizer)
            with torch.no_grad():
                for feeds, _ in calibration.batches(batch):
                    prepared(*[torch.from_numpy(feeds[n]) for n in names])
            converted = convert_pt2e(prepared)
            ep = _export_program(converted, ctx)
            data, delegation, restored = _lower(ep)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ExecuTorch int8 (PT2E, XNNPACK) failed: {first_line(exc)}") from None
    write_bytes(ctx.staging, out_rel, data)
    return [out_rel], {
        "quantizer": "torchao PT2E with executorch XNNPACKQuantizer",
        "config": f"symmetric int8, {'per-channel' if per_channel else 'per-tensor'} weights, "
        f"{'MinMaxObserver' if observer == 'minmax' else 'HistogramObserver'} activations",
        "max_batch": ctx.config.executorch_max_batch,
        "batch_range_restored": restored,
        "delegation": delegation,
        "planned_memory_bytes": delegation["planned_memory_bytes"],
        "planned_for": _planned_for(ctx),
        "float_modules": list(float_modules),
    }


def _not_in(modules):
    """A PT2E node filter: False for nodes that belong to one of ``modules`` (their nn_module_stack)."""

    def keep(node) -> bool:
        stack = node.meta.get("nn_module_stack") or {}
        for path, _type in stack.values():
            name = re.sub(
                r"\[(\d+)\]", r".\1", str(path).removeprefix("L['self'].").removeprefix("L['self']")
            )
            name = name.replace("._modules['", ".").replace("']", "").lstrip(".")
            if any(name == m or name.startswith(m + ".") or name.endswith("." + m) for m in modules):
                return False
        return True

    return keep


def _xnnpack_graphs(path: Path) -> list[dict]:
    """Each XNNPACK payload of the ``.pte`` as JSON, decompiled with ExecuTorch's bundled ``flatc``."""
    from executorch.backends.xnnpack.serialization import xnnpack_graph_serialize as xgs
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _get_flatc_path
    from executorch.exir._serialize._program import _extract_delegate_payload

    data = Path(path).read_bytes()
    schema = Path(xgs.__file__).parent / "schema.fbs"
    graphs = []
    with tempfile.TemporaryDirectory() as tmp:
        while True:
            payload = _extract_delegate_payload(data, "xnnpack", len(graphs))
            if payload is None:
                break
            k = len(graphs) + 1
            header = XNNHeader.from_bytes(payload[: XNNHeader.EXPECTED_LENGTH])
            fb = payload[header.flatbuffer_offset : header.flatbuffer_offset + header.flatbuffer_size]
            bin_path = Path(tmp) / f"g{k}.bin"
            bin_path.write_bytes(fb)
            subprocess.run(
                [_get_flatc_path(), "--json", "--strict-json", "--defaults-json", "--raw-binary", "-o", tmp,
                 str(schema), "--", str(bin_path)],
                check=True,
                capture_output=True,
                timeout=120,
            )  # fmt: skip
            text = (Path(tmp) / f"g{k}.json").read_text()
            # flatc writes non-finite floats (quantization scales of all-zero channels) as bare nan/inf
            text = re.sub(r"(?<=[\s:\[,])[-+]?(nan|inf)(?=[\s,\]}])", "0", text)
            graphs.append(json.loads(text))
    return graphs


def inspect_pte(path: Path) -> dict:
    """Delegates in the ``.pte`` and, per XNNPACK payload, the datatypes of its tensors (read from the file)."""
    types: Counter = Counter()
    graphs = _xnnpack_graphs(path)
    for graph in graphs:
        for v in graph.get("xvalues", []):
            tensor = v.get("xvalue_union", {})
            dt = tensor.get("datatype", tensor.get("tensor_value", {}).get("datatype"))
            if isinstance(dt, str):
                types[dt.removeprefix("xnn_datatype_")] += 1
            elif isinstance(dt, int):
                types[QUANTIZED_TYPES.get(dt, str(dt))] += 1
    quantized = sum(c for t, c in types.items() if t in QUANTIZED_TYPES.values())
    return {"xnnpack_delegates": len(graphs), "tensor_datatypes": dict(types), "quantized_tensors": quantized}


def prove_int8(ctx, path: Path) -> dict:
    from .proof import fail

    try:
        found = inspect_pte(path)
    except Exception as exc:  # noqa: BLE001 - flatc or the payload layout may differ in other releases
        raise fail(
            path,
            "executorch payload",
            f"a .pte whose XNNPACK payload cannot be read ({first_line(exc)})",
            "a readable XNNPACK delegate",
        ) from None
    if found["xnnpack_delegates"] == 0:
        raise fail(path, "executorch delegate", "no XNNPACK delegate", "at least one")
    if found["quantized_tensors"] == 0:
        raise fail(
            path,
            "executorch int8 tensors",
            "no quantized tensors in the XNNPACK graphs",
            "qint8/qcint8 tensors",
        )
    return found


def int8_layers(path: Path) -> list[dict]:
    """Every static weight tensor (rank >= 2) inside the ``.pte``'s XNNPACK graphs, with its size and
    whether it is stored quantized, read from the payloads' flatbuffers."""
    rows = []
    for g, graph in enumerate(_xnnpack_graphs(path)):
        for i, v in enumerate(graph.get("xvalues", [])):
            u = v.get("xvalue_union", {})
            t = u.get("tensor_value", u)
            dims = t.get("dims") or []
            static = (t.get("constant_buffer_idx") or 0) > 0 or bool(t.get("external_tensor_key"))
            if not static or len(dims) < 2:
                continue
            dt = t.get("datatype")
            name = (
                dt.removeprefix("xnn_datatype_") if isinstance(dt, str) else QUANTIZED_TYPES.get(dt, str(dt))
            )
            rows.append(
                {
                    "layer": f"xnnpack{g}/value{i}",
                    "op": name,
                    "params": int(math.prod(dims)),
                    "int8": name in QUANTIZED_TYPES.values(),
                }
            )
    return rows
