"""Each format of a decoder, fp32: ONNX and OpenVINO from one ExportedProgram of :class:`~.wrappers.CacheIO`,
ExecuTorch from :class:`~.wrappers.StaticCacheLM` lowered to XNNPACK.

- ONNX: ``torch.onnx.export`` of the ExportedProgram (dynamo), named inputs and
  outputs, bounded dynamic ``seq``/``keep``/``past``.
- OpenVINO: ``ov.convert_model`` of the same program, then stateful: each
  ``past_*`` input becomes a variable fed by its ``present_*`` output
  (``apply_make_stateful_transformation``), initialised empty; ``reset_state()``
  empties it.  The stateful model fuses the cache into the CPU plugin's
  attention, and no cache crosses the API per token.
- ExecuTorch: ``torch.export(strict=True)`` (``strict=False`` fails later, in
  lowering), XNNPACK partitioner, ``.pte``; the memory plan is read back from
  the program.
"""

from __future__ import annotations

import copy
import time
import warnings

import numpy as np
import torch

from ..errors import ExportError
from .wrappers import CacheIO, StaticCacheLM, cache_names, examples

INPUTS = ["input_ids", "position_ids", "logits_index"]


def _first(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def cache_io_program(model, arch: dict, max_context: int):
    """The ExportedProgram ONNX and OpenVINO are made from."""
    example, shapes, _ = examples(arch, max_context)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.export.export(CacheIO(model).eval(), example, dynamic_shapes=shapes)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"torch.export of the decoder with its KV cache failed: {_first(exc)}") from None


def write_onnx(program, arch: dict, path) -> None:
    past, present = cache_names(arch["layers"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(
                program,
                (),
                input_names=INPUTS + past,
                output_names=["logits", *present],
                dynamo=True,
                optimize=True,
                verbose=False,
            )
        onnx_program.save(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ONNX export of the decoder failed: {_first(exc)}") from None


def make_stateful(ov_model, arch: dict) -> None:
    """Hide the cache inside ``ov_model``: past inputs become variables, present outputs their updates."""
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    past, present = cache_names(arch["layers"])
    for port, name in zip(ov_model.inputs, INPUTS + past, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(ov_model.outputs, ["logits", *present], strict=True):
        port.get_tensor().set_names({name})
    apply_make_stateful_transformation(ov_model, dict(zip(past, present, strict=True)))
    empty = np.array([1, arch["kv_heads"], 0, arch["head_dim"]], np.int64)
    for op in ov_model.get_ops():
        if op.get_type_name() == "ReadValue":  # start every sequence from an empty cache
            op.set_arguments([ops.broadcast(ops.constant(np.float32(0)), ops.constant(empty))])
    ov_model.validate_nodes_and_infer_types()


def openvino_model(program, arch: dict):
    import openvino as ov

    try:
        model = ov.convert_model(program)
        make_stateful(model, arch)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"OpenVINO conversion of the decoder failed: {_first(exc)}") from None
    return model


def save_openvino(model, path) -> None:
    import openvino as ov

    ov.save_model(model, str(path), compress_to_fp16=False)


def executorch_program(model, arch: dict, max_context: int, quantize=None) -> tuple[bytes, dict]:
    """(.pte bytes, details: delegation, memory plan, seconds) of the static-cache decoder."""
    from ..formats.executorch import _lower, _quiet, _quiet_imports

    _quiet_imports()
    t0 = time.perf_counter()
    model = copy.deepcopy(model) if quantize is not None else model
    if quantize is not None:
        quantize(model)
    wrapper = StaticCacheLM(model, max_context, arch["kv_heads"], arch["head_dim"]).eval()
    _, _, example = examples(arch, max_context)
    seq = torch.export.Dim("seq", min=1, max=max_context)
    keep = torch.export.Dim("keep", min=1, max=max_context)
    shapes = {"input_ids": {1: seq}, "position_ids": {1: seq}, "logits_index": {1: keep}}
    try:
        with _quiet(), torch.no_grad():
            ep = torch.export.export(wrapper, example, dynamic_shapes=shapes, strict=True)
            data, delegation, _ = _lower(ep)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ExecuTorch export of the decoder failed: {_first(exc)}") from None
    return data, {
        "delegation": delegation,
        "memory_plan_bytes": plan_bytes(data),
        "export_seconds": round(time.perf_counter() - t0, 1),
    }


def plan_bytes(pte: bytes) -> int:
    """Bytes of the memory-planned (non-constant) buffers of the program's first method: activations + cache."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    plan = deserialize_pte_binary(pte).program.execution_plan[0]
    return int(sum(plan.non_const_buffer_sizes))
