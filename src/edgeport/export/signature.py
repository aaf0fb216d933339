"""The tensor specs of a model being exported: declared inputs, observed outputs.

Inputs come from ``--input NAME:SHAPE[:DTYPE[:LAYOUT]]`` (``--input-shape`` is
shorthand for one float32 input called ``input``), from the registry, or from
a saved ExportedProgram's example inputs.  The model is then run once on an
example batch of 2 (a batch of 1 lets exporters specialise the batch) and its
outputs named and classified: ``--output NAME[:KIND]``, else the keys of a
dict output, else ``probs``/``logits`` for one output and ``output_K`` for
several; the first 2-D float output is the classifier (``probs`` if its rows
are distributions, else ``logits``), the rest ``raw``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError, ExportError
from ..sources.models import ModelSource
from ..specs import (
    BATCH,
    DEFAULT_MAX_BATCH,
    KINDS,
    LAYOUTS,
    Dim,
    Signature,
    TensorSpec,
    parse_dtype,
    valid_name,
)

MAX_RANK = 8


def parse_input(text: str) -> tuple[str, tuple[int, ...], str, str | None]:
    """``NAME:SHAPE[:DTYPE[:LAYOUT]]`` -> (name, shape with the batch first, dtype, layout or None/"raw")."""
    parts = str(text).split(":")
    if len(parts) < 2 or not parts[0]:
        raise ConfigError(f"--input {text!r}: expected NAME:SHAPE[:DTYPE[:LAYOUT]], e.g. image:1,3,224,224")
    name = parts[0]
    if not valid_name(name):
        raise ConfigError(f"--input {text!r}: {name!r} is not a valid tensor name (letters, digits, _ . -)")
    shape = parse_shape(parts[1], f"--input {name}")
    dtype = parse_dtype(parts[2], f"--input {name}") if len(parts) > 2 and parts[2] else "float32"
    layout = None
    if len(parts) > 3 and parts[3]:
        layout = parts[3].upper()
        if layout not in (*LAYOUTS, "RAW"):
            raise ConfigError(f"--input {name}: layout must be NCHW, NHWC or raw, got {parts[3]!r}")
    if len(parts) > 4:
        raise ConfigError(f"--input {text!r}: too many ':' fields")
    return name, shape, dtype, layout


def parse_shape(text: str, where: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(t) for t in str(text).replace("x", ",").split(",") if t.strip())
    except ValueError:
        raise ConfigError(
            f"{where}: shape {text!r} must be comma-separated whole numbers, e.g. 1,3,224,224"
        ) from None
    if not 2 <= len(shape) <= MAX_RANK or any(not 1 <= s <= 1 << 20 for s in shape):
        raise ConfigError(
            f"{where}: shape {text!r} needs 2 to {MAX_RANK} sizes between 1 and 1048576 (batch first)"
        )
    return shape


def parse_output(text: str) -> tuple[str, str | None]:
    name, _, kind = str(text).partition(":")
    if not valid_name(name):
        raise ConfigError(f"--output {text!r}: {name!r} is not a valid tensor name")
    if kind and kind not in KINDS:
        raise ConfigError(f"--output {text!r}: kind must be one of {', '.join(KINDS)}")
    return name, kind or None


def infer_layout(shape: tuple[int, ...], dtype: str) -> str | None:
    """NCHW or NHWC for a rank-4 floating input with 1 or 3 channels on one side, else None."""
    if len(shape) != 4 or dtype not in ("float32", "float16"):
        return None
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3) and shape[1] not in (1, 3):
        return "NHWC"
    return "NCHW" if shape[1] in (1, 3) else None


def declared_inputs(source: ModelSource, inputs=None, input_shape=None) -> list[tuple]:
    """[(name, shape, dtype, layout)] from the flags, the registry or the ExportedProgram."""
    if inputs and input_shape:
        raise ConfigError("pass --input (repeatable) or --input-shape, not both")
    if inputs:
        decls = [parse_input(t) for t in inputs]
    elif input_shape:
        shape = tuple(int(s) for s in input_shape)
        if not 2 <= len(shape) <= MAX_RANK or any(s < 1 for s in shape):
            raise ConfigError(f"--input-shape must be batch,dims... with positive sizes, got {list(shape)}")
        decls = [("input", shape, "float32", None)]
    elif source.spec is not None:
        decls = [("input", (1, *source.spec.input_shape), "float32", None)]
    elif source.example_shapes:
        decls = [
            (f"input_{i}" if len(source.example_shapes) > 1 else "input", s, d, None)
            for i, (s, d) in enumerate(source.example_shapes)
        ]
    else:
        raise ConfigError(
            f"--model {source.ref}: say what the model takes with --input NAME:SHAPE[:DTYPE] "
            "(repeatable), or --input-shape 1,3,224,224 for one float32 input"
        )
    names = [d[0] for d in decls]
    if len(set(names)) != len(names):
        raise ConfigError(f"--input: names must be unique, got {names}")
    return decls


def example_inputs(decls, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _name, shape, dtype, _layout in decls:
        full = (batch, *shape[1:])
        tdt = getattr(torch, {"bool": "bool"}.get(dtype, dtype))
        if dtype.startswith("float"):
            out.append(torch.rand(full, generator=g).to(tdt))
        elif dtype == "bool":
            out.append(torch.randint(0, 2, full, generator=g).bool())
        else:
            out.append(torch.randint(0, 10, full, generator=g).to(tdt))
    return tuple(out)


def _flatten(y) -> tuple[list[torch.Tensor], list[str] | None]:
    if isinstance(y, torch.Tensor):
        return [y], None
    if isinstance(y, dict):
        return list(y.values()), [str(k) for k in y]
    if isinstance(y, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in y):
        return list(y), None
    raise ExportError(
        f"the model returned a {type(y).__name__}; edgeport exports models that return a tensor, a tuple of "
        "tensors or a dict of tensors"
    )


def _is_distribution(t: torch.Tensor) -> bool:
    t = t.detach().double()
    return bool(
        (t >= -1e-6).all() and torch.allclose(t.sum(-1), torch.ones(t.shape[:-1], dtype=t.dtype), atol=1e-4)
    )


def build_signature(
    model: torch.nn.Module,
    source: ModelSource,
    *,
    inputs=None,
    input_shape=None,
    outputs=None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> tuple[Signature, tuple[torch.Tensor, ...]]:
    """The model's signature and an example input tuple (batch 2, in input order)."""
    decls = declared_inputs(source, inputs, input_shape)
    example = example_inputs(decls)
    try:
        with torch.no_grad():
            y = model(*example)
    except Exception as exc:  # noqa: BLE001 - any model error means the declared inputs do not fit
        shapes = ", ".join(f"{d[0]}:{list(d[1])}:{d[2]}" for d in decls)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(
            f"the model fails on inputs {shapes} ({type(exc).__name__}: {first}); fix --input"
        ) from None
    tensors, keys = _flatten(y)
    declared = [parse_output(t) for t in outputs or ()]
    if declared and len(declared) != len(tensors):
        raise ConfigError(f"--output names {len(declared)} outputs, but the model returns {len(tensors)}")
    names = [d[0] for d in declared] if declared else keys
    if names is None:
        names = ["output"] if len(tensors) == 1 else [f"output_{i}" for i in range(len(tensors))]
    kinds = _kinds(tensors, [d[1] for d in declared] if declared else [None] * len(tensors), source)
    if names == ["output"]:
        names = [kinds[0] if kinds[0] in ("probs", "logits") else "output"]
    in_names = [d[0] for d in decls]
    if len(set(names)) != len(names) or set(names) & set(in_names):
        raise ConfigError(f"output names {names} must be unique and differ from the input names {in_names}")
    in_specs = []
    for name, shape, dtype, layout in decls:
        lay = None if layout == "RAW" else (layout or infer_layout(shape, dtype))
        in_specs.append(TensorSpec(name=name, dtype=dtype, shape=(BATCH, *shape[1:]), layout=lay))
    out_specs = []
    for name, t, kind in zip(names, tensors, kinds, strict=True):
        if t.ndim < 1 or t.shape[0] != example[0].shape[0]:
            raise ExportError(
                f"output {name!r} has shape {list(t.shape)} for a batch of {example[0].shape[0]}; every output "
                "must keep the batch as its first dimension"
            )
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in ("float32", "float16", "int64", "int32", "uint8", "int8", "bool"):
            raise ExportError(f"output {name!r} has dtype {dtype}, which edgeport cannot describe")
        out_specs.append(TensorSpec(name=name, dtype=dtype, shape=(BATCH, *t.shape[1:]), kind=kind))
    sig = Signature(tuple(in_specs), tuple(out_specs), {BATCH: Dim(BATCH, 1, max_batch)})
    return sig, example


def _kinds(tensors, declared, source: ModelSource) -> list[str]:
    kinds = list(declared)
    if all(k is not None for k in kinds):
        return kinds
    classifier_taken = any(k in ("probs", "logits") for k in kinds)
    for i, t in enumerate(tensors):
        if kinds[i] is not None:
            continue
        is_cls = not classifier_taken and t.ndim == 2 and t.shape[1] > 1 and t.dtype.is_floating_point
        if is_cls:
            classifier_taken = True
            if source.spec is not None and len(tensors) == 1:
                kinds[i] = source.spec.output_kind
            else:
                kinds[i] = "probs" if _is_distribution(t) else "logits"
        else:
            kinds[i] = "raw"
    return kinds


def to_numpy_feeds(signature: Signature, example: tuple[torch.Tensor, ...]) -> dict:
    return {s.name: np.ascontiguousarray(t.numpy()) for s, t in zip(signature.inputs, example, strict=True)}
