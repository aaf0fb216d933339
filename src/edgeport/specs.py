"""Tensor specs: what every input and output of a bundle's model looks like.

A :class:`Signature` holds the named dynamic dimensions (each with min/max
bounds), the input specs and the output specs.  Runners check every feed
against it before a backend sees it, and every output after, so nothing is
ever reshaped to fit and nothing malformed is returned as a result.

numpy only: the torch-free runtime uses this module.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError, OutputError

DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "uint8": np.dtype(np.uint8),
    "int8": np.dtype(np.int8),
    "bool": np.dtype(np.bool_),
}
KINDS = ("probs", "logits", "raw")
# What an output means to its task (see edgeport.tasks): the task module reads outputs by role.
ROLES = (
    "class_scores",  # classify / text-classify: [batch, classes]
    "boxes",  # detect: [batch, anchors, 4]
    "scores",  # detect: [batch, anchors, classes] or [batch, anchors]
    "labels",  # detect: [batch, anchors] class ids (optional)
    "mask_logits",  # segment: [batch, classes, height, width]
    "embedding",  # embed: [batch, dim]
    "token_logits",  # token: [batch, seq, vocab]
    "values",  # regress: [batch, ...]
    "aux",  # not judged by the task (tolerance and relative error only)
)
LAYOUTS = ("NCHW", "NHWC")
BATCH = "batch"
# The largest batch a bundle allows unless its manifest says otherwise.
DEFAULT_MAX_BATCH = 4096
# Absolute cap on any dimension bound a manifest may declare.
MAX_DIM = 1 << 20
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$")


def valid_name(name) -> bool:
    return isinstance(name, str) and bool(_NAME.match(name))


@dataclass(frozen=True)
class Dim:
    """A named dynamic dimension with inclusive bounds and the value the model was exported at."""

    name: str
    min: int = 1
    max: int = DEFAULT_MAX_BATCH
    example: int | None = None  # the size traced/exported with (None: batch, or an output-only dim)

    def to_dict(self) -> dict:
        d = {"min": self.min, "max": self.max}
        if self.example is not None:
            d["example"] = self.example
        return d

    def points(self) -> tuple[int, ...]:
        """The sizes every check runs this dim at: its min, an odd middle value and its max."""
        mid = (self.min + self.max) // 2
        if mid % 2 == 0:
            mid = mid + 1 if mid + 1 < self.max else mid - 1
        mid = min(max(mid, self.min), self.max)
        return tuple(sorted({self.min, mid, self.max}))

    def describe(self) -> str:
        ex = f" (exported at {self.example})" if self.example is not None else ""
        return f"{self.name} = {self.min}..{self.max}{ex}"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output.  ``shape`` holds ints (fixed) and dim names (dynamic)."""

    name: str
    dtype: str
    shape: tuple
    layout: str | None = None  # image inputs: NCHW or NHWC
    kind: str | None = None  # outputs: probs, logits or raw
    role: str | None = None  # outputs: what the task reads it as (ROLES)
    value_range: tuple[float, float] | None = None  # inputs: the range real inputs fall in
    description: str = ""

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def np_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def is_classifier(self) -> bool:
        """Class scores of a classifier (by role; a spec without a role: a probs/logits output)."""
        if self.role is not None:
            return self.role == "class_scores"
        return self.kind in ("probs", "logits")

    @property
    def is_image(self) -> bool:
        return self.layout is not None

    def shape_text(self) -> str:
        return "[" + ",".join(str(d) for d in self.shape) + "]"

    def describe(self) -> str:
        extra = f" {self.layout}" if self.layout else (f" {self.kind}" if self.kind else "")
        if self.role and self.role != "aux":
            extra += f" ({self.role})"
        return f"{self.name}: {self.dtype} {self.shape_text()}{extra}"

    def concrete_shape(self, values: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(values[d] if isinstance(d, str) else int(d) for d in self.shape)

    def to_dict(self) -> dict:
        d: dict = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.layout:
            d["layout"] = self.layout
        if self.kind:
            d["kind"] = self.kind
        if self.role:
            d["role"] = self.role
        if self.value_range is not None:
            d["value_range"] = [float(v) for v in self.value_range]
        if self.description:
            d["description"] = self.description
        return d


@dataclass(frozen=True)
class Signature:
    """Inputs, outputs and the named dims they share (``batch`` always among them)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: dict[str, Dim] = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    def input(self, name: str) -> TensorSpec:
        for s in self.inputs:
            if s.name == name:
                return s
        raise KeyError(name)

    def output(self, name: str) -> TensorSpec:
        for s in self.outputs:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def image_inputs(self) -> list[TensorSpec]:
        return [s for s in self.inputs if s.is_image]

    @property
    def classifier_outputs(self) -> list[TensorSpec]:
        return [s for s in self.outputs if s.is_classifier]

    @property
    def primary_output(self) -> TensorSpec:
        """The output predictions and labels refer to: the first classifier output, else the first."""
        cls = self.classifier_outputs
        return cls[0] if cls else self.outputs[0]

    def outputs_with_role(self, role: str) -> list[TensorSpec]:
        return [s for s in self.outputs if s.role == role]

    @property
    def max_batch(self) -> int:
        return self.dims[BATCH].max if BATCH in self.dims else DEFAULT_MAX_BATCH

    @property
    def input_dims(self) -> dict[str, Dim]:
        """The dynamic dims the inputs use, batch first (output-only dims follow from these)."""
        used = [d for s in self.inputs for d in s.shape if isinstance(d, str)]
        return {n: self.dims[n] for n in self.dims if n in used}

    @property
    def free_dims(self) -> dict[str, Dim]:
        """The non-batch dims the inputs use: each is checked at its min, middle and max."""
        return {n: d for n, d in self.input_dims.items() if n != BATCH}

    def example_values(self, batch: int = 2) -> dict[str, int]:
        """A value for every dim: ``batch`` for the batch, the export example (else the min) for the others."""
        out = {}
        for name, dim in self.dims.items():
            if name == BATCH:
                out[name] = max(dim.min, min(batch, dim.max))
            else:
                out[name] = dim.example if dim.example is not None else dim.min
        return out

    def dim_points(self) -> list[dict[str, int]]:
        """Dim values to check: each free dim at its min, odd middle and max (the others at their example)."""
        base = self.example_values(1)
        out = []
        for name, dim in self.free_dims.items():
            for v in dim.points():
                out.append(base | {name: v})
        return out

    def to_dict(self) -> dict:
        return {
            "dims": {n: d.to_dict() for n, d in self.dims.items()},
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
        }

    def describe(self) -> str:
        ins = "; ".join(s.describe() for s in self.inputs)
        outs = "; ".join(s.describe() for s in self.outputs)
        return f"inputs {ins} -> outputs {outs}"

    # -- checks ----------------------------------------------------------------
    def check_feeds(self, feeds, where: str = "", max_batch: int | None = None) -> tuple[dict, dict]:
        """``(feeds as C-contiguous arrays by name, value of every bound dim)``.

        ``feeds`` is a dict name -> array, or one array when there is one input.
        :class:`InputError` names the tensor and says what is wrong.
        """
        prefix = f"{where}: " if where else ""
        if isinstance(feeds, Mapping):
            given = dict(feeds)
        elif len(self.inputs) == 1:
            given = {self.inputs[0].name: feeds}
        else:
            raise InputError(
                f"{prefix}this model has {len(self.inputs)} inputs ({', '.join(self.input_names)}); "
                "pass a dict name -> array"
            )
        missing = [n for n in self.input_names if n not in given]
        extra = [str(n)[:60] for n in given if n not in self.input_names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing input(s) {', '.join(repr(n) for n in missing)}")
            if extra:
                parts.append(f"unknown input(s) {', '.join(repr(n) for n in extra)}")
            raise InputError(f"{prefix}{' and '.join(parts)}; the model takes {', '.join(self.input_names)}")
        bound: dict[str, int] = {}
        out: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            out[spec.name] = self._check_input(spec, given[spec.name], bound, prefix, max_batch)
        return out, bound

    def _check_input(self, spec: TensorSpec, x, bound: dict, prefix: str, max_batch) -> np.ndarray:
        want = f"{spec.dtype} {spec.shape_text()}"
        label = f"{prefix}input {spec.name!r}"
        if not isinstance(x, np.ndarray):
            raise InputError(f"{label} must be a numpy array {want}, got {type(x).__name__}")
        x = np.asarray(x)  # masked arrays and other subclasses: the raw values, all of them
        if x.dtype != spec.np_dtype:
            hint = (
                "; pass images to runner.predict(), which preprocesses them"
                if spec.is_image and x.dtype == np.uint8
                else f"; convert with x.astype(numpy.{spec.dtype})"
            )
            raise InputError(f"{label} has dtype {x.dtype}, expected {want}{hint}")
        if x.ndim != spec.rank:
            raise InputError(
                f"{label} has rank {x.ndim} (shape {list(x.shape)}), expected rank {spec.rank} {want}"
            )
        for axis, (got, d) in enumerate(zip(x.shape, spec.shape, strict=True)):
            if isinstance(d, int):
                if got != d:
                    layout = f" ({spec.layout})" if spec.layout else ""
                    raise InputError(
                        f"{label} has shape {list(x.shape)}, expected {want}{layout}: axis {axis} must be {d}"
                    )
                continue
            dim = self.dims[d]
            hi = dim.max if (d != BATCH or max_batch is None) else min(dim.max, max_batch)
            if got < dim.min or got > hi:
                what = "batch of" if d == BATCH else f"{d} ="
                hint = "; split it into smaller batches" if d == BATCH and got > hi else ""
                raise InputError(f"{label}: {what} {got} is outside {dim.min}..{hi}{hint}")
            if bound.setdefault(d, got) != got:
                raise InputError(
                    f"{label}: {d} is {got}, but another input has {d} {bound[d]}; they must agree"
                )
        if x.dtype.kind == "f" and x.size:
            # A float64 sum of float16/32 values cannot overflow, so it is finite iff every value is.
            if not math.isfinite(float(x.sum(dtype=np.float64))):
                bad = int(np.count_nonzero(~np.isfinite(x)))
                raise InputError(f"{label} holds {bad} NaN or infinite values; inputs must be finite")
        if not x.flags.c_contiguous or not x.flags.writeable:
            x = np.array(x, order="C", copy=True)  # read-only buffers (np.frombuffer) too
        return x

    def check_outputs(self, outputs: Mapping, bound: Mapping[str, int], where: str = "") -> dict:
        """Every output present, of its spec's dtype and shape, batch as the input's, finite.

        :class:`OutputError` otherwise: the artifact does not behave as its manifest says.
        """
        prefix = f"{where}: " if where else ""
        missing = [n for n in self.output_names if n not in outputs]
        if missing:
            raise OutputError(
                f"{prefix}the backend returned no output {', '.join(map(repr, missing))}; "
                "the artifact does not match its manifest: re-export the bundle"
            )
        checked = {}
        for spec in self.outputs:
            y = outputs[spec.name]
            label = f"{prefix}output {spec.name!r}"
            if not isinstance(y, np.ndarray):
                raise OutputError(f"{label} is a {type(y).__name__}, expected an array; re-export the bundle")
            if y.dtype != spec.np_dtype:
                raise OutputError(
                    f"{label} has dtype {y.dtype}, the manifest says {spec.dtype}; re-export the bundle"
                )
            if y.ndim != spec.rank:
                raise OutputError(
                    f"{label} has shape {list(y.shape)}, the manifest says {spec.shape_text()}; re-export"
                )
            for axis, (got, d) in enumerate(zip(y.shape, spec.shape, strict=True)):
                if isinstance(d, int):
                    ok = got == d
                elif d in bound:
                    ok = got == bound[d]
                else:
                    ok = self.dims[d].min <= got <= self.dims[d].max
                if not ok:
                    want = bound.get(d, d) if isinstance(d, str) else d
                    raise OutputError(
                        f"{label} has shape {list(y.shape)}: axis {axis} is {got}, expected {want} "
                        f"(manifest {spec.shape_text()}); the artifact does not match its manifest, re-export"
                    )
            if y.dtype.kind == "f" and y.size and not math.isfinite(float(y.sum(dtype=np.float64))):
                bad = int(np.count_nonzero(~np.isfinite(y)))
                raise OutputError(
                    f"{label} holds {bad} NaN or infinite values for finite inputs; check that the "
                    "inputs are in the range the model expects (see the manifest's value_range)"
                )
            checked[spec.name] = y
        return checked


def parse_dtype(text: str, where: str = "dtype") -> str:
    from .errors import ConfigError

    t = str(text).strip().lower()
    aliases = {"float": "float32", "fp32": "float32", "half": "float16", "fp16": "float16", "long": "int64"}
    t = aliases.get(t, t)
    if t not in DTYPES:
        raise ConfigError(f"{where}: unknown dtype {text!r}; choose from {', '.join(DTYPES)}")
    return t


def random_tensor(spec: TensorSpec, shape, rng: np.random.Generator) -> np.ndarray:
    """A seeded random array of ``shape`` for ``spec``: uniform over its value range (else N(0,1));
    ints uniform over their (inclusive) value range, else 0..9."""
    if spec.np_dtype.kind == "f":
        if spec.value_range is not None:
            lo, hi = spec.value_range
            return rng.uniform(lo, hi, size=shape).astype(spec.np_dtype)
        return rng.standard_normal(shape).astype(spec.np_dtype)
    if spec.dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    lo, hi = (int(spec.value_range[0]), int(spec.value_range[1])) if spec.value_range else (0, 9)
    return rng.integers(lo, hi + 1, size=shape).astype(spec.np_dtype)


def random_feeds(signature: Signature, batch: int, seed: int = 0, values: dict | None = None) -> dict:
    """Seeded random inputs for every input of ``signature`` at ``batch`` (dims at ``values``, else their example)."""
    values = signature.example_values(batch) | dict(values or {})
    values[BATCH] = batch
    rng = np.random.default_rng(seed)
    return {s.name: random_tensor(s, s.concrete_shape(values), rng) for s in signature.inputs}
