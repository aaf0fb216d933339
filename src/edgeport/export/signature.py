"""The tensor specs of a model being exported: declared inputs and dims, observed outputs, the task.

Inputs come from ``--input NAME:SHAPE[:DTYPE[:LAYOUT]]`` (``--input-shape`` is
shorthand for one float32 input called ``input``), from the registry, or from
a saved ExportedProgram's example inputs.  A SHAPE token is a size, a dim
name (``seq``, bounded by ``--dim seq=4..512``) or a dim with its bounds inline
(``seq=4..512``, optionally ``@16`` for the size to export at); the first token
is the batch (``1``, ``batch`` or ``batch=1..64``).

The model is then run at the example sizes (batch 2; a batch of 1 lets
exporters specialise it) and, when it has dynamic dims, once more at other
sizes, so each output axis is named after the input dim it follows (``[batch,
seq, vocab]``), fixed, or given an output-only dim.  Outputs are named by
``--output NAME[:KIND|ROLE]``, else the keys of a dict output, else
``probs``/``logits``/``output_K``; the task (``--task``, else inferred by the
classifier rule) assigns each output its role.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from ..errors import ConfigError, ExportError
from ..sources.models import ModelSource
from ..specs import (
    BATCH,
    DEFAULT_MAX_BATCH,
    KINDS,
    LAYOUTS,
    MAX_DIM,
    ROLES,
    Dim,
    Signature,
    TensorSpec,
    parse_dtype,
    valid_name,
)
from ..tasks import registry as tasks

MAX_RANK = 8
_DIM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]{0,63})(?:=(\d{1,7})\.\.(\d{1,7})(?:@(\d{1,7}))?)?$")


def parse_dim(text: str, where: str = "--dim") -> Dim:
    """``NAME=MIN..MAX[@EXAMPLE]`` -> a :class:`Dim`."""
    m = _DIM.match(str(text).strip())
    if not m or m.group(2) is None:
        raise ConfigError(f"{where} {str(text)[:60]!r}: expected NAME=MIN..MAX[@EXAMPLE], e.g. seq=4..512")
    name, lo, hi = m.group(1), int(m.group(2)), int(m.group(3))
    ex = int(m.group(4)) if m.group(4) else None
    if not 1 <= lo <= hi <= MAX_DIM:
        raise ConfigError(f"{where} {text}: bounds must satisfy 1 <= MIN <= MAX <= {MAX_DIM}")
    if ex is not None and not lo <= ex <= hi:
        raise ConfigError(f"{where} {text}: the example {ex} is outside {lo}..{hi}")
    return Dim(name, lo, hi, ex)


def parse_shape(text: str, where: str) -> tuple[tuple, dict[str, Dim]]:
    """SHAPE -> (shape with ints and dim names, inline dims).  The first token is the batch."""
    shape, dims = [], {}
    tokens = [t.strip() for t in str(text).replace("x", ",").split(",") if t.strip()]
    if not 2 <= len(tokens) <= MAX_RANK:
        raise ConfigError(
            f"{where}: shape {text!r} needs 2 to {MAX_RANK} sizes (batch first), e.g. 1,3,224,224"
        )
    for i, tok in enumerate(tokens):
        if tok.isdigit():
            v = int(tok)
            if not 1 <= v <= MAX_DIM:
                raise ConfigError(f"{where}: size {v} in {text!r} must be between 1 and {MAX_DIM}")
            shape.append(BATCH if i == 0 else v)
            continue
        m = _DIM.match(tok)
        if not m:
            raise ConfigError(
                f"{where}: {tok[:40]!r} in {text!r} is neither a size nor a dim (NAME or NAME=MIN..MAX)"
            )
        name = m.group(1)
        if i == 0 and name != BATCH:
            raise ConfigError(
                f"{where}: the first size is the batch: write 1, batch or batch=1..N, not {name}"
            )
        if i > 0 and name == BATCH:
            raise ConfigError(f"{where}: only the first axis can be the batch")
        if m.group(2) is not None:
            dims[name] = parse_dim(tok, where)
        shape.append(name)
    return tuple(shape), dims


def parse_input(text: str) -> tuple[str, tuple, str, str | None, dict[str, Dim]]:
    """``NAME:SHAPE[:DTYPE[:LAYOUT]]`` -> (name, shape, dtype, layout or None/"RAW", inline dims)."""
    parts = str(text).split(":")
    if len(parts) < 2 or not parts[0]:
        raise ConfigError(f"--input {text!r}: expected NAME:SHAPE[:DTYPE[:LAYOUT]], e.g. image:1,3,224,224")
    name = parts[0]
    if not valid_name(name):
        raise ConfigError(f"--input {text!r}: {name!r} is not a valid tensor name (letters, digits, _ . -)")
    shape, dims = parse_shape(parts[1], f"--input {name}")
    dtype = parse_dtype(parts[2], f"--input {name}") if len(parts) > 2 and parts[2] else "float32"
    layout = None
    if len(parts) > 3 and parts[3]:
        layout = parts[3].upper()
        if layout not in (*LAYOUTS, "RAW"):
            raise ConfigError(f"--input {name}: layout must be NCHW, NHWC or raw, got {parts[3]!r}")
    if len(parts) > 4:
        raise ConfigError(f"--input {text!r}: too many ':' fields")
    return name, shape, dtype, layout, dims


def parse_output(text: str) -> tuple[str, str | None, str | None]:
    """``NAME[:KIND|ROLE[:ROLE]]`` -> (name, kind or None, role or None)."""
    parts = str(text).split(":")
    name, rest = parts[0], parts[1:]
    if not valid_name(name):
        raise ConfigError(f"--output {text!r}: {name!r} is not a valid tensor name")
    kind = role = None
    for p in rest:
        if p in KINDS and kind is None:
            kind = p
        elif p in ROLES and role is None:
            role = p
        elif p:
            raise ConfigError(
                f"--output {text!r}: {p[:30]!r} is neither a kind ({', '.join(KINDS)}) nor a role "
                f"({', '.join(ROLES)})"
            )
    return name, kind, role


def infer_layout(shape: tuple, dtype: str) -> str | None:
    """NCHW or NHWC for a rank-4 floating input with 1 or 3 channels on one side, else None."""
    if len(shape) != 4 or dtype not in ("float32", "float16"):
        return None
    c1, c3 = shape[1], shape[3]
    if c1 in (1, 3) and c3 not in (1, 3):
        return "NCHW"
    if c3 in (1, 3) and c1 not in (1, 3):
        return "NHWC"
    return "NCHW" if c1 in (1, 3) else None


def declared_inputs(source: ModelSource, inputs=None, input_shape=None) -> tuple[list[tuple], dict[str, Dim]]:
    """([(name, shape, dtype, layout)], inline dims) from the flags, the registry or the ExportedProgram."""
    if inputs and input_shape:
        raise ConfigError("pass --input (repeatable) or --input-shape, not both")
    dims: dict[str, Dim] = {}
    if inputs:
        decls = []
        for t in inputs:
            name, shape, dtype, layout, inline = parse_input(t)
            for d in inline.values():
                if d.name in dims and dims[d.name] != d:
                    raise ConfigError(f"--input: dim {d.name} is given two different bounds")
                dims[d.name] = d
            decls.append((name, shape, dtype, layout))
    elif input_shape:
        shape = tuple(int(s) for s in input_shape)
        if not 2 <= len(shape) <= MAX_RANK or any(not 1 <= s <= MAX_DIM for s in shape):
            raise ConfigError(
                f"--input-shape must be batch,dims... with sizes 1..{MAX_DIM}, got {list(shape)}"
            )
        decls = [("input", (BATCH, *shape[1:]), "float32", None)]
    elif source.spec is not None and source.spec.inputs:
        return declared_inputs(source, list(source.spec.inputs))
    elif source.spec is not None:
        decls = [("input", (BATCH, *source.spec.input_shape), "float32", None)]
    elif source.example_shapes:
        decls = [
            (f"input_{i}" if len(source.example_shapes) > 1 else "input", (BATCH, *s[1:]), d, None)
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
    return decls, dims


def resolve_dims(decls, inline: dict[str, Dim], flags, max_batch: int) -> dict[str, Dim]:
    """Every dim the inputs name, with bounds (``--dim`` over inline) and a distinct export example."""
    given = dict(inline)
    for text in flags or ():
        d = parse_dim(text)
        given[d.name] = d
    used = [s for _, shape, _, _ in decls for s in shape if isinstance(s, str)]
    unknown = sorted(set(given) - set(used) - {BATCH})
    if unknown:
        raise ConfigError(
            f"--dim {unknown[0]}: no --input shape uses it (inputs use {', '.join(sorted(set(used)))})"
        )
    b = given.get(BATCH)
    dims = {BATCH: Dim(BATCH, b.min if b else 1, min(b.max, max_batch) if b else max_batch)}
    taken = {2}  # the batch is exported at 2: an equal size would be unified with it by torch.export
    for name in dict.fromkeys(used):
        if name == BATCH:
            continue
        if name not in given:
            raise ConfigError(f"dim {name!r} has no bounds: add --dim {name}=MIN..MAX (e.g. {name}=1..512)")
        d = given[name]
        ex = d.example if d.example is not None else _pick_example(d, taken)
        taken.add(ex)
        dims[name] = Dim(name, d.min, d.max, ex)
    return dims


def _pick_example(d: Dim, taken: set[int]) -> int:
    """A size within the bounds, small, not 1 (exporters specialise it) and not used by another dim."""
    start = min(max(d.min, 8 if d.max >= 8 else 2), d.max)
    for v in list(range(start, d.max + 1)) + list(range(start - 1, d.min - 1, -1)):
        if v not in taken and (v != 1 or d.max == 1):
            return v
    return start


def example_inputs(decls, values: dict[str, int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _name, shape, dtype, _layout in decls:
        full = tuple(values[s] if isinstance(s, str) else s for s in shape)
        tdt = getattr(torch, dtype)
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
    if isinstance(y, dict) and all(isinstance(t, torch.Tensor) for t in y.values()):
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


# The most elements one example input may hold (1 GiB of float32): a larger --input is a typo,
# and allocating it would fail deep inside torch.
MAX_EXAMPLE_ELEMENTS = 1 << 28


def _run(model, decls, values) -> list[torch.Tensor]:
    for name, shape, _dtype, *_ in decls:
        sizes = [values.get(s, s) if isinstance(s, str) else s for s in shape]
        if math.prod(int(x) for x in sizes) > MAX_EXAMPLE_ELEMENTS:
            raise ConfigError(
                f"input {name} of shape {sizes} holds more than {MAX_EXAMPLE_ELEMENTS:,} elements at the "
                "example size; fix --input (or lower the dims' example sizes)"
            )
    example = example_inputs(decls, values)
    try:
        with torch.no_grad():
            return example, model(*example)
    except Exception as exc:  # noqa: BLE001 - any model error means the declared inputs do not fit
        shapes = ", ".join(
            f"{d[0]}:{[values.get(s, s) if isinstance(s, str) else s for s in d[1]]}:{d[2]}" for d in decls
        )
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(
            f"the model fails on inputs {shapes} ({type(exc).__name__}: {first}); fix --input, or the "
            "--model-arg values it was built with"
        ) from None


def _alternative(dims: dict[str, Dim], values: dict[str, int]) -> dict[str, int]:
    """Other sizes for every dynamic dim (distinct from the examples and from each other)."""
    alt, taken = {}, set(values.values())
    for name, d in dims.items():
        for v in (values[name] + 1, values[name] + 2, values[name] - 1, values[name] - 2):
            if d.min <= v <= d.max and v not in taken and v != 1:
                alt[name] = v
                taken.add(v)
                break
        else:
            alt[name] = values[name]
    return alt


def _output_shape(name, y1, y2, values, alt, dims, out_dims) -> tuple:
    shape = []
    for k, (a, b) in enumerate(zip(y1.shape, y2.shape if y2 is not None else y1.shape)):
        follows = [d for d in dims if values[d] == a and alt[d] == b and values[d] != alt[d]]
        if k == 0:
            if BATCH not in follows and y2 is not None:
                raise ExportError(
                    f"output {name!r} has shape {list(y1.shape)} for a batch of {values[BATCH]}; every output "
                    "must keep the batch as its first dimension"
                )
            shape.append(BATCH)
        elif len(follows) == 1 and follows[0] != BATCH:
            shape.append(follows[0])
        elif a == b:
            shape.append(int(a))
        else:
            dn = f"{name}_{k}"[:64]
            out_dims[dn] = Dim(dn, 0, MAX_DIM)
            shape.append(dn)
    return tuple(shape)


def build_signature(
    model: torch.nn.Module,
    source: ModelSource,
    *,
    inputs=None,
    input_shape=None,
    outputs=None,
    dims=None,
    task: str | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> tuple[Signature, tuple[torch.Tensor, ...], str]:
    """(signature, example inputs at the example sizes, task name)."""
    decls, inline = declared_inputs(source, inputs, input_shape)
    spec = source.spec
    if spec is not None and not (inputs or input_shape):  # the registry's own dims, outputs and task
        dims = [*spec.dims, *(dims or ())]
        outputs = outputs or list(spec.outputs) or None
        task = task or spec.task
    if getattr(source, "max_batch", None) is not None:  # a .pt2 traced at a fixed batch of 1
        max_batch = min(max_batch, source.max_batch)
    decls, all_dims = _fix_single_sizes(decls, resolve_dims(decls, inline, dims, max_batch))
    values = {n: (2 if n == BATCH else d.example) for n, d in all_dims.items()}
    values[BATCH] = max(1, min(2, all_dims[BATCH].max))
    example, y = _run(model, decls, values)
    tensors, keys = _flatten(y)
    alt = _alternative(all_dims, values)
    y2 = _flatten(_run(model, decls, alt)[1])[0] if alt != values else None
    declared = [parse_output(t) for t in outputs or ()]
    names = _output_names(declared, keys, tensors)
    out_dims: dict[str, Dim] = {}
    shapes = [
        _output_shape(n, t, None if y2 is None else y2[i], values, alt, all_dims, out_dims)
        for i, (n, t) in enumerate(zip(names, tensors, strict=True))
    ]
    _check_outputs(names, tensors, values[BATCH])
    info = [
        {"name": n, "shape": tuple(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
         "kind": declared[i][1] if declared else None, "role": declared[i][2] if declared else None}
        for i, (n, t) in enumerate(zip(names, tensors, strict=True))
    ]  # fmt: skip
    task = _task_of(
        task, info, [{"name": d[0], "shape": tuple(e.shape), "dtype": d[2]} for d, e in zip(decls, example)]
    )
    roles = tasks.task_class(task).assign_roles(info)
    kinds = _kinds(tensors, info, roles, source)
    if names == ["output"] and kinds[0] in ("probs", "logits") and roles[0] == "class_scores":
        names = [kinds[0]]
    in_names = [d[0] for d in decls]
    if len(set(names)) != len(names) or set(names) & set(in_names):
        raise ConfigError(f"output names {names} must be unique and differ from the input names {in_names}")
    in_specs = [
        TensorSpec(name=n, dtype=dt, shape=sh, layout=None if lay == "RAW" else (lay or infer_layout(sh, dt)))
        for n, sh, dt, lay in decls
    ]
    out_specs = [_output_spec(*row) for row in zip(names, tensors, kinds, roles, shapes, strict=True)]
    return Signature(tuple(in_specs), tuple(out_specs), all_dims | out_dims), example, task


def _fix_single_sizes(decls, all_dims: dict) -> tuple[list, dict]:
    """A dim whose bounds allow one size is no dim: its axes become that fixed size."""
    fixed = {n: d.min for n, d in all_dims.items() if n != BATCH and d.min == d.max}
    if not fixed:
        return decls, all_dims
    decls = [(n, tuple(fixed.get(s, s) for s in sh), dt, lay) for n, sh, dt, lay in decls]
    return decls, {n: d for n, d in all_dims.items() if n not in fixed}


def _output_names(declared: list, keys, tensors) -> list[str]:
    if declared and len(declared) != len(tensors):
        raise ConfigError(f"--output names {len(declared)} outputs, but the model returns {len(tensors)}")
    names = [d[0] for d in declared] if declared else keys
    if names is None:
        names = ["output"] if len(tensors) == 1 else [f"output_{i}" for i in range(len(tensors))]
    for n in names:
        if not valid_name(n):
            raise ConfigError(
                f"output name {n[:40]!r} is not a valid tensor name (letters, digits, _ . : / -); rename it with --output"
            )
    return names


def _check_outputs(names: list[str], tensors, batch: int) -> None:
    for n, t in zip(names, tensors, strict=True):
        if 0 in tuple(t.shape)[1:]:
            raise ConfigError(
                f"output {n!r} has shape {list(t.shape)}: a dimension of size 0 holds nothing to export; "
                "check the --model-arg values (e.g. num_classes=0) and --input"
            )
        if t.ndim < 1 or t.shape[0] != batch:
            raise ExportError(
                f"output {n!r} has shape {list(t.shape)} for a batch of {batch}; every output "
                "must keep the batch as its first dimension"
            )


def _task_of(task: str | None, info: list[dict], in_info: list[dict]) -> str:
    task = task or tasks.infer(info, in_info)
    if task is None:
        described = "; ".join(f"{o['name']} {list(o['shape'])} {o['dtype']}" for o in info)
        raise ConfigError(
            f"what does this model do? Its outputs ({described}) fit no classifier; pass --task "
            f"{'|'.join(tasks.names())} (raw: tolerance and relative error only)"
        )
    return task


def _output_spec(name: str, t, kind, role, shape) -> TensorSpec:
    dtype = str(t.dtype).removeprefix("torch.")
    if dtype not in ("float32", "float16", "int64", "int32", "uint8", "int8", "bool"):
        raise ExportError(f"output {name!r} has dtype {dtype}, which edgeport cannot describe")
    return TensorSpec(name=name, dtype=dtype, shape=shape, kind=kind, role=role)


def _kinds(tensors, info, roles, source: ModelSource) -> list[str]:
    kinds = []
    scored = ("class_scores", "scores", "mask_logits", "token_logits")
    for t, o, role in zip(tensors, info, roles, strict=True):
        if o["kind"]:
            kinds.append(o["kind"])
        elif role == "class_scores" and source.spec is not None and len(tensors) == 1:
            kinds.append(source.spec.output_kind)
        elif role in scored and t.dtype.is_floating_point:
            axis_ok = role != "mask_logits"
            dist = _is_distribution(t if axis_ok else t.movedim(1, -1))
            kinds.append("probs" if dist else "logits")
        else:
            kinds.append("raw")
    return kinds


def to_numpy_feeds(signature: Signature, example: tuple[torch.Tensor, ...]) -> dict:
    return {s.name: np.ascontiguousarray(t.numpy()) for s, t in zip(signature.inputs, example, strict=True)}
