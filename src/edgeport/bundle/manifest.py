"""The versioned bundle manifest: frozen dataclasses, validated field by field at load.

Schema 2 describes any model: named inputs and outputs with dtypes, shapes
whose dynamic dims are named and bounded, layouts and output kinds; ordered
preprocessing steps; golden I/O.  Schema-1 manifests (edgeport 0.1) are
upgraded in memory and marked read-only.  Every malformed field raises
:class:`BundleError` naming it.  stdlib + numpy only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, replace

from ..errors import BundleError
from ..specs import BATCH, DTYPES, KINDS, LAYOUTS, MAX_DIM, ROLES, Dim, Signature, TensorSpec, valid_name
from .paths import HINT, MANIFEST_FILE, check_relpath

# 3: a task block, output roles, dim examples, failed formats (schema-2 bundles read as they are).
SCHEMA_VERSION = 3
READABLE_SCHEMAS = (1, 2, 3)
# int4: weight-only group-wise artifacts of text-generation bundles (see bundle/generation.py).
PRECISIONS = ("fp32", "fp16", "int8", "int4")
RANDOM_WEIGHTS_WARNING = "random weights: not for accuracy"
_SHA = re.compile(r"^[0-9a-f]{64}$")
# Nothing a manifest holds may be larger than this many bytes on disk (or declared).
MAX_ARTIFACT_BYTES = 16 << 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _bad(where: str, what: str) -> BundleError:
    return BundleError(f"{MANIFEST_FILE}: {where} {what}; {HINT}")


def _type(where: str, value, types, *, optional: bool = False):
    if value is None and optional:
        return value
    types_t = types if isinstance(types, tuple) else (types,)
    ok = isinstance(value, types_t) and not (isinstance(value, bool) and bool not in types_t)
    if not ok:
        names = "/".join(t.__name__ for t in types_t)
        raise _bad(
            f"field {where!r}", f"must be {names}{' or null' if optional else ''}, got {type(value).__name__}"
        )
    return value


def _text(where: str, value, *, limit: int = 512, optional: bool = False) -> str | None:
    """A string without control characters or lone surrogates, at most ``limit`` characters."""
    if value is None and optional:
        return None
    _type(where, value, str)
    if len(value) > limit:
        raise _bad(f"field {where!r}", f"is {len(value)} characters long (at most {limit})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(f"field {where!r}", "holds an invalid (lone surrogate) character") from None
    if _CONTROL.search(value):
        raise _bad(f"field {where!r}", "holds control characters")
    return value


def _keys(where: str, d, required, optional=()) -> dict:
    _type(where, d, dict)
    missing = sorted(set(required) - set(d))
    extra = sorted(set(d) - set(required) - set(optional), key=str)
    if missing:
        raise _bad(where, f"lacks field(s) {', '.join(missing)}")
    if extra:
        names = ", ".join(repr(k)[:60] for k in extra[:5]) + (", ..." if len(extra) > 5 else "")
        raise _bad(where, f"has unknown field(s) {names}")
    return d


def _int(where: str, v, lo: int = 0, hi: int = MAX_ARTIFACT_BYTES) -> int:
    _type(where, v, int)
    if not lo <= v <= hi:
        raise _bad(f"field {where!r}", f"must be between {lo} and {hi}, got {v}")
    return v


def _float(where: str, v, limit: float = 1e12) -> float:
    _type(where, v, (int, float))
    if not (math.isfinite(v) and abs(v) <= limit):
        raise _bad(f"field {where!r}", f"must be a finite number of magnitude <= {limit:g}, got {v!r}")
    return float(v)


def _sha(where: str, v) -> str:
    if not (isinstance(v, str) and _SHA.match(v)):
        raise _bad(f"field {where!r}", "must be 64 lowercase hex digits")
    return v


# --------------------------------------------------------------------------- files, artifacts


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the bundle, posix
    sha256: str
    bytes: int

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, d, where: str = "file") -> FileEntry:
        _keys(where, d, {"path", "sha256", "bytes"})
        return cls(
            check_relpath(f"{where}.path", d["path"]),
            _sha(f"{where}.sha256", d["sha256"]),
            _int(f"{where}.bytes", d["bytes"]),
        )


@dataclass(frozen=True)
class Artifact:
    format: str  # a format of edgeport.format_registry
    precision: str  # "fp32" | "fp16" | "int8"
    file: str  # primary file (openvino: the .xml)
    sha256: str
    bytes: int
    extra_files: tuple[FileEntry, ...] = ()
    details: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.format}/{self.precision}"

    def files(self) -> list[FileEntry]:
        return [FileEntry(self.file, self.sha256, self.bytes), *self.extra_files]

    @property
    def total_bytes(self) -> int:
        return sum(e.bytes for e in self.files())

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "precision": self.precision,
            "file": self.file,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "extra_files": [e.to_dict() for e in self.extra_files],
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, d, where: str = "artifact") -> Artifact:
        from ..format_registry import FORMATS

        _keys(where, d, {"format", "precision", "file", "sha256", "bytes"}, {"extra_files", "details"})
        fmt = _text(f"{where}.format", d["format"], limit=32)
        if fmt not in FORMATS:
            raise _bad(f"{where}.format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
        prec = _text(f"{where}.precision", d["precision"], limit=8)
        if prec not in PRECISIONS:
            raise _bad(f"{where}.precision", f"{prec!r} is not one of {', '.join(PRECISIONS)}")
        extra = _type(f"{where}.extra_files", d.get("extra_files", []), list)
        if len(extra) > 256:
            raise _bad(f"{where}.extra_files", "lists more than 256 files")
        return cls(
            format=fmt,
            precision=prec,
            file=check_relpath(f"{where}.file", d["file"]),
            sha256=_sha(f"{where}.sha256", d["sha256"]),
            bytes=_int(f"{where}.bytes", d["bytes"]),
            extra_files=tuple(
                FileEntry.from_dict(e, f"{where}.extra_files[{i}]") for i, e in enumerate(extra)
            ),
            details=_type(f"{where}.details", d.get("details", {}), dict),
        )


# --------------------------------------------------------------------------- tensor specs


def _dims_from(d) -> dict[str, Dim]:
    _type("dims", d, dict)
    if BATCH not in d:
        raise _bad("dims", "has no 'batch' dimension")
    out = {}
    for name, b in d.items():
        if not valid_name(name):
            raise _bad("dims", f"has an invalid dimension name {str(name)[:40]!r}")
        _keys(f"dims.{name}", b, {"min", "max"}, {"example"})
        lo = _int(f"dims.{name}.min", b["min"], 0, MAX_DIM)  # 0: an output-only dim may be empty
        hi = _int(f"dims.{name}.max", b["max"], 1, MAX_DIM)
        if lo > hi:
            raise _bad(f"dims.{name}", f"has min {lo} > max {hi}")
        ex = b.get("example")
        if ex is not None and not lo <= _int(f"dims.{name}.example", ex, 1, MAX_DIM) <= hi:
            raise _bad(f"dims.{name}.example", f"{ex} is outside {lo}..{hi}")
        out[name] = Dim(name, lo, hi, ex)
    return out


def _spec_from(d, where: str, dims: dict[str, Dim], *, output: bool) -> TensorSpec:
    _keys(where, d, {"name", "dtype", "shape"}, {"layout", "kind", "role", "value_range", "description"})
    name = _text(f"{where}.name", d["name"], limit=128)
    if not valid_name(name):
        raise _bad(f"{where}.name", f"{name[:40]!r} is not a valid tensor name (letters, digits, _ . : / -)")
    dtype = _text(f"{where}.dtype", d["dtype"], limit=16)
    if dtype not in DTYPES:
        raise _bad(f"{where}.dtype", f"{dtype!r} is not one of {', '.join(DTYPES)}")
    shape = _type(f"{where}.shape", d["shape"], list)
    if not 1 <= len(shape) <= 8:
        raise _bad(f"{where}.shape", "must have 1 to 8 dimensions")
    for i, s in enumerate(shape):
        if isinstance(s, str):
            if s not in dims:
                raise _bad(
                    f"{where}.shape[{i}]", f"names dimension {s[:40]!r}, which 'dims' does not declare"
                )
        elif isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_DIM:
            raise _bad(f"{where}.shape[{i}]", f"must be a size 1..{MAX_DIM} or a declared dimension name")
    if shape[0] != BATCH:
        raise _bad(f"{where}.shape", "must start with the 'batch' dimension")
    layout = d.get("layout")
    if layout is not None:
        if output or layout not in LAYOUTS or len(shape) != 4:
            raise _bad(f"{where}.layout", f"must be one of {', '.join(LAYOUTS)} on a rank-4 input")
    kind = d.get("kind")
    if output:
        if kind not in KINDS:
            raise _bad(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
    elif kind is not None:
        raise _bad(f"{where}.kind", "is only allowed on outputs")
    role = d.get("role")
    if role is not None and (not output or role not in ROLES):
        raise _bad(f"{where}.role", f"must be one of {', '.join(ROLES)}, on an output")
    if output and role is None:  # schema 2: probs/logits outputs are class scores
        role = "class_scores" if kind in ("probs", "logits") else "aux"
    vr = d.get("value_range")
    if vr is not None:
        _type(f"{where}.value_range", vr, list)
        if len(vr) != 2:
            raise _bad(f"{where}.value_range", "must be [low, high]")
        lo, hi = (_float(f"{where}.value_range[{i}]", v, 1e9) for i, v in enumerate(vr))
        if not lo < hi:
            raise _bad(f"{where}.value_range", f"must have low < high, got {vr}")
        vr = (lo, hi)
    return TensorSpec(
        name=name,
        dtype=dtype,
        shape=tuple(shape),
        layout=layout,
        kind=kind,
        role=role,
        value_range=vr,
        description=_text(f"{where}.description", d.get("description", ""), limit=500),
    )


def signature_from(d: dict) -> Signature:
    dims = _dims_from(d.get("dims"))
    ins = _type("inputs", d.get("inputs"), list)
    outs = _type("outputs", d.get("outputs"), list)
    if not 1 <= len(ins) <= 64 or not 1 <= len(outs) <= 64:
        raise _bad("inputs/outputs", "must each list 1 to 64 tensors")
    inputs = tuple(_spec_from(s, f"inputs[{i}]", dims, output=False) for i, s in enumerate(ins))
    outputs = tuple(_spec_from(s, f"outputs[{i}]", dims, output=True) for i, s in enumerate(outs))
    names = [s.name for s in inputs + outputs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _bad("inputs/outputs", f"use the name(s) {', '.join(dup)} twice")
    return Signature(inputs, outputs, dims)


# --------------------------------------------------------------------------- the manifest

_OPTIONAL = (
    "model_args",
    "random_init",
    "warnings",
    "calibration",
    "layer_report",
    "golden",
    "data",
    "task",
    "failures",
    "text",
    "timings",
    "generation",
)


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    model: str
    signature: Signature
    preprocessing: dict | None  # {"input": name, "preset": str|None, "steps": [...]}, or None
    labels: tuple[str, ...]
    artifacts: tuple[Artifact, ...]
    provenance: dict
    environment: dict
    parity: dict
    model_args: dict = field(default_factory=dict)
    random_init: bool = False
    warnings: tuple[str, ...] = ()
    calibration: dict | None = None
    layer_report: dict | None = None
    golden: dict | None = None
    data: dict | None = None  # the data sources export used (identity, evidence)
    task: dict | None = None  # {"name", "params", "gates": {precision: {metric: threshold}}}
    failures: tuple[
        dict, ...
    ] = ()  # formats that failed at export: {"format", "precision", "stage", "reason"}
    text: dict | None = None  # the tokenizer.json kept for raw text (edgeport.text), or None
    timings: dict | None = None  # export stage -> seconds
    generation: dict | None = None  # text-generation bundles only: see bundle/generation.py
    upgraded_from: int | None = None  # set in memory when an older schema was read

    @property
    def read_only(self) -> bool:
        return self.upgraded_from is not None

    def to_dict(self) -> dict:
        d: dict = {"schema_version": self.schema_version, "model": self.model}
        d.update(self.signature.to_dict())
        d |= {
            "preprocessing": self.preprocessing,
            "labels": list(self.labels),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "provenance": self.provenance,
            "environment": self.environment,
            "parity": self.parity,
            "model_args": self.model_args,
            "random_init": self.random_init,
            "warnings": list(self.warnings),
        }
        for k in ("calibration", "layer_report", "golden", "data", "task", "text", "timings", "generation"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.failures:
            d["failures"] = list(self.failures)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def replace(self, **changes) -> Manifest:
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, d) -> Manifest:
        if not isinstance(d, dict):
            raise BundleError(f"{MANIFEST_FILE} must hold a JSON object, got {type(d).__name__}; {HINT}")
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise _bad("field 'schema_version'", "is missing or not an integer")
        if version not in READABLE_SCHEMAS:
            raise BundleError(
                f"{MANIFEST_FILE}: unknown schema_version {version} (this edgeport reads "
                f"{', '.join(map(str, READABLE_SCHEMAS))}); upgrade edgeport or re-export the bundle"
            )
        if version == 1:
            from .schema1 import upgrade

            return cls.from_dict(upgrade(d))._replace_upgraded(1)
        _keys("manifest", d, REQUIRED, set(_OPTIONAL) | {"upgraded_from"})
        model = _text("model", d["model"], limit=300)
        signature = signature_from(d)
        pre = d["preprocessing"]
        if pre is not None:
            from ..preprocessing import validate_manifest_preprocessing

            pre = validate_manifest_preprocessing(pre, signature, _bad)
        labels = _labels_from(d["labels"])
        arts = tuple(
            Artifact.from_dict(a, f"artifacts[{i}]")
            for i, a in enumerate(_type("artifacts", d["artifacts"], list))
        )
        _check_unique(arts)
        for k in ("provenance", "environment", "parity"):
            _type(k, d[k], dict)
        random_init = _type("random_init", d.get("random_init", False), bool)
        warnings = _warnings_from(d.get("warnings", []), random_init)
        for k in ("calibration", "golden", "data"):
            _type(k, d.get(k), dict, optional=True)
        layer_report = _check_layer_report(d.get("layer_report"))
        golden = d.get("golden")
        if golden is not None:
            _check_golden(golden)
        task = _check_task(d.get("task"), signature)
        failures = _check_failures(d.get("failures", []))
        timings = _check_timings(d.get("timings"))
        text = _check_text(d.get("text"), signature)
        generation = _check_generation(d.get("generation"), arts, signature)
        return cls(
            schema_version=version, model=model, signature=signature, preprocessing=pre, labels=labels,
            artifacts=arts, provenance=d["provenance"], environment=d["environment"], parity=d["parity"],
            model_args=_type("model_args", d.get("model_args", {}), dict), random_init=random_init,
            warnings=warnings, calibration=d.get("calibration"), layer_report=layer_report, golden=golden,
            data=d.get("data"), task=task, failures=failures, text=text, timings=timings, generation=generation,
        )  # fmt: skip

    def text_entry(self) -> FileEntry | None:
        """The tokenizer file the ``text`` block lists (verified like every file), or None."""
        return None if self.text is None else FileEntry.from_dict(self.text["tokenizer"], "text.tokenizer")

    def _replace_upgraded(self, old: int) -> Manifest:
        return replace(self, upgraded_from=old)


def _check_unique(arts: tuple[Artifact, ...]) -> None:
    seen_files: set[str] = set()
    seen_keys: set[str] = set()
    for i, a in enumerate(arts):
        if a.key in seen_keys:
            raise _bad(f"artifacts[{i}]", f"duplicates artifact {a.key}")
        seen_keys.add(a.key)
        for e in a.files():
            if e.path in seen_files:
                raise _bad(f"artifacts[{i}]", f"lists file {e.path!r} twice")
            seen_files.add(e.path)


def _check_layer_report(lr):
    """The per-layer report is printed by ``inspect``: every field it reads is checked here."""
    if lr is None:
        return None
    _keys("layer_report", lr, {"formats"}, {"reference", "split", "images", "note"})
    for k in ("reference", "split", "note"):
        _text(f"layer_report.{k}", lr.get(k, ""), limit=200)
    if "images" in lr:
        _int("layer_report.images", lr["images"], 0, 10_000_000)
    formats = _type("layer_report.formats", lr["formats"], dict)
    for fmt, rows in formats.items():
        _text("layer_report.formats key", fmt, limit=64)
        _type(f"layer_report.formats.{fmt}", rows, list)
        for i, row in enumerate(rows):
            where = f"layer_report.formats.{fmt}[{i}]"
            _keys(where, row, {"layer", "sqnr_db", "max_abs_error"})
            _text(f"{where}.layer", row["layer"], limit=200)
            if row["sqnr_db"] is not None:
                _float(f"{where}.sqnr_db", row["sqnr_db"], 1e6)
            _float(f"{where}.max_abs_error", row["max_abs_error"], 1e30)
    return lr


def _check_golden(g) -> None:
    _keys(
        "golden",
        g,
        {"inputs", "outputs", "files", "n"},
        {"source", "margin", "int8_agreement", "int8_metrics", "edge_cases", "evidence", "tolerance"},
    )
    files = _type("golden.files", g["files"], list)
    listed = {FileEntry.from_dict(f, f"golden.files[{i}]").path for i, f in enumerate(files)}
    for k in ("inputs", "outputs"):
        if check_relpath(f"golden.{k}", g[k]) not in listed:
            raise _bad(f"golden.{k}", "names a file that golden.files does not list with a hash")
    _int("golden.n", g["n"], 1, 100_000)
    if "margin" in g:
        m = _float("golden.margin", g["margin"], 1.0)
        if not 0 <= m <= 1:
            raise _bad("golden.margin", "must be between 0 and 1")
    for key, metrics in _type("golden.int8_metrics", g.get("int8_metrics", {}), dict).items():
        _text("golden.int8_metrics key", key, limit=64)
        for m, v in _type(f"golden.int8_metrics.{key}", metrics, dict).items():
            _text(f"golden.int8_metrics.{key} key", m, limit=64)
            if v is not None:
                _float(f"golden.int8_metrics.{key}.{m}", v, 1e12)
    agreement = _type("golden.int8_agreement", g.get("int8_agreement", {}), dict)
    for k, v in agreement.items():
        _text("golden.int8_agreement key", k, limit=64)
        if not 0 <= _float(f"golden.int8_agreement.{k}", v, 1.0) <= 1:
            raise _bad(f"golden.int8_agreement.{k}", "must be between 0 and 1")


REQUIRED = {"schema_version", "model", "dims", "inputs", "outputs", "preprocessing", "labels", "artifacts",
            "provenance", "environment", "parity"}  # fmt: skip


def _labels_from(labels) -> tuple[str, ...]:
    labels = _type("labels", labels, list)
    if len(labels) > 100_000:
        raise _bad("labels", "lists more than 100,000 names")
    return tuple(_text(f"labels[{i}]", lab, limit=200) for i, lab in enumerate(labels))


def _warnings_from(warnings, random_init: bool) -> tuple[str, ...]:
    warnings = _type("warnings", warnings, list)
    out = tuple(_text(f"warnings[{i}]", w, limit=300) for i, w in enumerate(warnings))
    if random_init and RANDOM_WEIGHTS_WARNING not in out:
        out = (RANDOM_WEIGHTS_WARNING, *out)
    return out


def _check_generation(generation, arts, signature):
    """A text-generation block checked against the artifacts; without one, no artifact is int4."""
    if generation is not None:
        from .generation import check_generation

        check_generation(generation, arts, signature, _bad)
        return generation
    for i, a in enumerate(arts):
        if a.precision == "int4":
            raise _bad(f"artifacts[{i}].precision", "is int4, which only text-generation bundles hold")
    return None


def _check_task(t, signature):
    """The task block: a known task, its parameters and gates as the task module defines them."""
    if t is None:
        return None
    from ..errors import ConfigError
    from ..tasks import registry

    _keys("task", t, {"name"}, {"params", "gates"})
    name = _text("task.name", t["name"], limit=40)
    try:
        cls = registry.task_class(name)
        cls.resolve_params(_type("task.params", t.get("params", {}), dict))
    except ConfigError as exc:
        raise _bad("task", f"is not valid ({str(exc)[:200]})") from None
    gates = _type("task.gates", t.get("gates", {}), dict)
    table = cls.gate_table()
    for prec, g in gates.items():
        if prec not in PRECISIONS:
            raise _bad("task.gates", f"has an unknown precision {str(prec)[:20]!r}")
        for metric, v in _type(f"task.gates.{prec}", g, dict).items():
            if metric not in table:
                raise _bad(f"task.gates.{prec}", f"names an unknown gate {str(metric)[:40]!r}")
            _float(f"task.gates.{prec}.{metric}", v, 1e6)
    return t


def _check_text(t, signature):
    """The text block: the tokenizer file with its hash, the inputs it feeds, pad id and bounds."""
    if t is None:
        return None
    from ..text import validate_text_block

    _type("text", t, dict)
    FileEntry.from_dict(t.get("tokenizer"), "text.tokenizer")
    return validate_text_block(t, signature, _bad)


def _check_timings(t):
    if t is None:
        return None
    _type("timings", t, dict)
    if len(t) > 200:
        raise _bad("timings", "lists more than 200 stages")
    for k, v in t.items():
        _text("timings key", k, limit=80)
        if _float(f"timings.{k}", v, 1e7) < 0:
            raise _bad(f"timings.{k}", "must be >= 0")
    return t


def _check_failures(f) -> tuple[dict, ...]:
    rows = _type("failures", f, list)
    if len(rows) > 64:
        raise _bad("failures", "lists more than 64 entries")
    for i, r in enumerate(rows):
        _keys(f"failures[{i}]", r, {"format", "precision", "stage", "reason"})
        for k in ("format", "precision", "stage"):
            _text(f"failures[{i}].{k}", r[k], limit=40)
        _text(f"failures[{i}].reason", r["reason"], limit=600)
    return tuple(rows)


def parse_manifest(text: str | bytes) -> Manifest:
    from ..jsonsafe import JSONValueError, loads

    try:
        data = loads(text)
    except JSONValueError as exc:
        raise BundleError(f"{MANIFEST_FILE} is not valid JSON ({str(exc)[:120]}); {HINT}") from None
    return Manifest.from_dict(data)


def field_names() -> list[str]:
    return [f.name for f in fields(Manifest)]
