"""Each format of a decoder, fp32: ONNX and OpenVINO from one ExportedProgram of :class:`~.wrappers.CacheIO`,
ExecuTorch from :class:`~.wrappers.StaticCacheLM` lowered to XNNPACK.

- ONNX: ``torch.onnx.export`` of the ExportedProgram (dynamo), named inputs and
  outputs, bounded dynamic ``seq``/``keep``/``past``.
- OpenVINO: ``ov.convert_model`` of the same program, then stateful: each
  ``past_*`` input becomes a variable fed by its ``present_*`` output
  (``apply_make_stateful_transformation``), initialised empty; ``reset_state()``
  empties it; each variable is read through an identity ``Gather`` over the
  batch rows so the CPU plugin fuses the cache into its attention node (see
  :func:`make_stateful`), and no cache crosses the API per token.  The batch is dynamic, so
  that the CPU runner can page the cache (:mod:`edgeport.runtime.openvino_paged`).
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

from ..errors import ExportError, first_line
from .wrappers import CacheIO, StaticCacheLM, cache_names, examples

INPUTS = ["input_ids", "position_ids", "logits_index"]


def cache_io_program(model, arch: dict, max_context: int):
    """The ExportedProgram ONNX and OpenVINO are made from."""
    example, shapes, _ = examples(arch, max_context)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.export.export(CacheIO(model).eval(), example, dynamic_shapes=shapes)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(
            f"torch.export of the decoder with its KV cache failed: {first_line(exc)}"
        ) from None


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
        raise ExportError(f"ONNX export of the decoder failed: {first_line(exc)}") from None


def make_stateful(ov_model, arch: dict) -> None:
    """Hide the cache inside ``ov_model``: past inputs become variables, present outputs their updates.

    Each variable is read through ``Gather(cache, range(batch), axis 0)`` (an identity: rows in order),
    the ``ReadValue -> Gather(beam_idx) -> Concat -> ScaledDotProductAttention -> Assign`` form that
    optimum-intel's stateful IR has: the CPU plugin's ``StatefulSDPAFusion`` matches only that form and
    turns it into one attention node that appends to its own cache in place.  Without the Gather the
    attention is decomposed into MatMul/Softmax and the whole cache is concatenated and copied every
    token.  The row indices come from ``input_ids``' shape inside the graph, so the model keeps its three
    inputs (no ``beam_idx`` to feed).
    """
    from openvino import PartialShape, Type
    from openvino import opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    past, present = cache_names(arch["layers"])
    for port, name in zip(ov_model.inputs, INPUTS + past, strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(ov_model.outputs, ["logits", *present], strict=True):
        port.get_tensor().set_names({name})
    for param in ov_model.get_parameters()[len(INPUTS) :]:  # static heads and head_dim in the variables
        param.set_partial_shape(PartialShape([-1, arch["kv_heads"], -1, arch["head_dim"]]))
    ov_model.validate_nodes_and_infer_types()
    apply_make_stateful_transformation(ov_model, dict(zip(past, present, strict=True)))
    empty = np.array([1, arch["kv_heads"], 0, arch["head_dim"]], np.int64)
    ids = ov_model.get_parameters()[0]
    batch = ops.gather(ops.shape_of(ids, Type.i32), ops.constant(np.int32(0)), ops.constant(np.int32(0)))
    rows = ops.range(ops.constant(np.int32(0)), batch, ops.constant(np.int32(1)), Type.i32)
    axis = ops.constant(np.int64(0))
    for op in ov_model.get_ops():
        if op.get_type_name() == "ReadValue":  # start every sequence from an empty cache
            op.set_arguments([ops.broadcast(ops.constant(np.float32(0)), ops.constant(empty))])
            readers = list(op.output(0).get_target_inputs())
            cache = ops.gather(op, rows, axis)
            for reader in readers:
                reader.replace_source_output(cache.output(0))
    ov_model.validate_nodes_and_infer_types()


def additive_masks(ov_model) -> int:
    """Give every ``ScaledDotProductAttention`` a float additive mask (0 where it may attend, -inf where
    not) instead of the boolean one torch.export's program carries; the same attention.  The CPU plugin's
    fused attention runs about twice as fast on a float mask: on the 110M benchmark model a 512-token
    prefill spent 1041 ms in attention with the boolean mask and 496 ms with the float one (optimum-intel's
    IR also feeds a float mask).  Returns how many distinct masks were converted."""
    from openvino import Type
    from openvino import opset13 as ops

    made: dict = {}
    for op in ov_model.get_ops():
        if op.get_type_name() != "ScaledDotProductAttention" or op.get_input_size() < 4:
            continue
        mask = op.input_value(3)
        if mask.get_element_type() != Type.boolean:
            continue
        key = (mask.get_node().get_friendly_name(), mask.get_index())
        if key not in made:
            made[key] = ops.select(
                mask, ops.constant(np.float32(0)), ops.constant(np.float32(-np.inf))
            ).output(0)
        op.input(3).replace_source_output(made[key])
    ov_model.validate_nodes_and_infer_types()
    return len(made)


def openvino_model(program, arch: dict):
    import openvino as ov

    try:
        model = ov.convert_model(program)
        additive_masks(model)
        make_stateful(model, arch)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"OpenVINO conversion of the decoder failed: {first_line(exc)}") from None
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
        raise ExportError(f"ExecuTorch export of the decoder failed: {first_line(exc)}") from None
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
