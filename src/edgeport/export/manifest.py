"""The versioned bundle manifest: frozen dataclasses with strict validation.

stdlib only.  Every malformed field raises :class:`BundleError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import PurePosixPath

from ..errors import BundleError

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1
ARTIFACT_FORMATS = ("torch", "torchscript", "onnx", "openvino")
PRECISIONS = ("fp32", "fp16", "int8")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_HINT = "re-export the bundle (edgeport export --force) or restore it from a trusted copy"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_type(where: str, value, types, *, optional: bool = False):
    if value is None and optional:
        return value
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))
    if not ok:
        names = "/".join(t.__name__ for t in _as_tuple(types))
        raise BundleError(
            f"{MANIFEST_FILE}: field {where!r} must be {names}{' or null' if optional else ''}, "
            f"got {type(value).__name__}; {_HINT}"
        )
    return value


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _check_keys(where: str, d: dict, required: set[str], optional: set[str] = frozenset()) -> None:
    _check_type(where, d, dict)
    missing = sorted(required - set(d))
    extra = sorted(set(d) - required - set(optional))
    if missing:
        raise BundleError(f"{MANIFEST_FILE}: {where} lacks field(s) {', '.join(missing)}; {_HINT}")
    if extra:
        names = ", ".join(repr(k)[:60] for k in extra[:5]) + (", ..." if len(extra) > 5 else "")
        raise BundleError(f"{MANIFEST_FILE}: {where} has unknown field(s) {names}; {_HINT}")


def check_relpath(where: str, rel) -> str:
    """A bundle-relative posix path that cannot leave the bundle (no '..', not absolute)."""
    _check_type(where, rel, str)
    p = PurePosixPath(rel)
    if (
        not rel
        or "\\" in rel
        or "\x00" in rel
        or p.is_absolute()
        or rel.startswith("~")
        or any(part in ("..", ".", "") for part in rel.split("/"))
        or (len(rel) > 1 and rel[1] == ":")
    ):
        raise BundleError(
            f"{MANIFEST_FILE}: {where} path {rel!r} leaves the bundle or is not a plain relative path; "
            f"the bundle may have been tampered with; {_HINT}"
        )
    if rel == MANIFEST_FILE:
        raise BundleError(f"{MANIFEST_FILE}: {where} may not name the manifest itself")
    return rel


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the bundle, posix
    sha256: str
    bytes: int

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}

    @classmethod
    def from_dict(cls, d, where: str = "file") -> FileEntry:
        _check_keys(where, d, {"path", "sha256", "bytes"})
        return cls(
            check_relpath(f"{where}.path", d["path"]),
            _sha(f"{where}.sha256", d["sha256"]),
            _nbytes(f"{where}.bytes", d["bytes"]),
        )


def _sha(where: str, v) -> str:
    if not (isinstance(v, str) and _SHA.match(v)):
        raise BundleError(f"{MANIFEST_FILE}: field {where!r} must be 64 lowercase hex digits; {_HINT}")
    return v


def _nbytes(where: str, v) -> int:
    _check_type(where, v, int)
    if v < 0:
        raise BundleError(f"{MANIFEST_FILE}: field {where!r} must be >= 0, got {v}; {_HINT}")
    return v


@dataclass(frozen=True)
class Artifact:
    format: str  # "torch", "torchscript", "onnx", "openvino"
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
        _check_keys(where, d, {"format", "precision", "file", "sha256", "bytes"}, {"extra_files", "details"})
        fmt = _check_type(f"{where}.format", d["format"], str)
        if fmt not in ARTIFACT_FORMATS:
            raise BundleError(
                f"{MANIFEST_FILE}: {where}.format {fmt!r} is not one of {', '.join(ARTIFACT_FORMATS)}"
            )
        prec = _check_type(f"{where}.precision", d["precision"], str)
        if prec not in PRECISIONS:
            raise BundleError(
                f"{MANIFEST_FILE}: {where}.precision {prec!r} is not one of {', '.join(PRECISIONS)}"
            )
        extra = _check_type(f"{where}.extra_files", d.get("extra_files", []), list)
        return cls(
            format=fmt,
            precision=prec,
            file=check_relpath(f"{where}.file", d["file"]),
            sha256=_sha(f"{where}.sha256", d["sha256"]),
            bytes=_nbytes(f"{where}.bytes", d["bytes"]),
            extra_files=tuple(
                FileEntry.from_dict(e, f"{where}.extra_files[{i}]") for i, e in enumerate(extra)
            ),
            details=_check_type(f"{where}.details", d.get("details", {}), dict),
        )


_SPEC_KEYS = {"name", "shape", "dtype"}


def _check_spec(where: str, d) -> dict:
    _check_keys(where, d, _SPEC_KEYS, {"value_range", "description"})
    _check_type(f"{where}.name", d["name"], str)
    _check_type(f"{where}.dtype", d["dtype"], str)
    shape = _check_type(f"{where}.shape", d["shape"], list)
    if not shape or any(
        not (isinstance(s, str) or (isinstance(s, int) and not isinstance(s, bool) and s > 0)) for s in shape
    ):
        raise BundleError(
            f"{MANIFEST_FILE}: {where}.shape must be a non-empty list of positive ints or names"
        )
    if "value_range" in d:
        vr = _check_type(f"{where}.value_range", d["value_range"], list)
        if len(vr) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vr):
            raise BundleError(f"{MANIFEST_FILE}: {where}.value_range must be [low, high]")
    return d


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    model: str
    input: dict
    output: dict
    preprocessing: dict
    labels: list
    artifacts: tuple[Artifact, ...]
    provenance: dict
    environment: dict
    parity: dict
    calibration: dict | None = None
    layer_report: dict | None = None

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["artifacts"] = [a.to_dict() for a in self.artifacts]
        d["labels"] = list(self.labels)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d) -> Manifest:
        if not isinstance(d, dict):
            raise BundleError(f"{MANIFEST_FILE} must hold a JSON object, got {type(d).__name__}; {_HINT}")
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise BundleError(f"{MANIFEST_FILE}: field 'schema_version' missing or not an integer; {_HINT}")
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"{MANIFEST_FILE}: unknown schema_version {version} (this edgeport reads {SCHEMA_VERSION}); "
                "upgrade edgeport or re-export the bundle with this version"
            )
        names = {f.name for f in fields(cls)}
        _check_keys("manifest", d, names - {"calibration", "layer_report"}, {"calibration", "layer_report"})
        _check_type("model", d["model"], str)
        _check_spec("input", d["input"])
        _check_spec("output", d["output"])
        pre = _check_type("preprocessing", d["preprocessing"], dict)
        _check_keys("preprocessing", pre, {"scale", "mean", "std"})
        for k in ("scale", "mean", "std"):
            _check_type(f"preprocessing.{k}", pre[k], (int, float))
        if pre["std"] == 0:
            raise BundleError(f"{MANIFEST_FILE}: preprocessing.std must not be 0")
        labels = _check_type("labels", d["labels"], list)
        for i, lab in enumerate(labels):
            _check_type(f"labels[{i}]", lab, str)
        arts = tuple(
            Artifact.from_dict(a, f"artifacts[{i}]")
            for i, a in enumerate(_check_type("artifacts", d["artifacts"], list))
        )
        seen_files: set[str] = set()
        seen_keys: set[str] = set()
        for i, a in enumerate(arts):
            if a.key in seen_keys:
                raise BundleError(f"{MANIFEST_FILE}: artifacts[{i}] duplicates artifact {a.key}; {_HINT}")
            seen_keys.add(a.key)
            for e in a.files():
                if e.path in seen_files:
                    raise BundleError(f"{MANIFEST_FILE}: artifacts[{i}] lists file {e.path!r} twice; {_HINT}")
                seen_files.add(e.path)
        for k in ("provenance", "environment", "parity"):
            _check_type(k, d[k], dict)
        for k in ("calibration", "layer_report"):
            _check_type(k, d.get(k), dict, optional=True)
        return cls(
            schema_version=version,
            model=d["model"],
            input=d["input"],
            output=d["output"],
            preprocessing=pre,
            labels=list(labels),
            artifacts=arts,
            provenance=d["provenance"],
            environment=d["environment"],
            parity=d["parity"],
            calibration=d.get("calibration"),
            layer_report=d.get("layer_report"),
        )


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_manifest(text: str | bytes) -> Manifest:
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{MANIFEST_FILE} is not valid JSON ({str(exc)[:120]}); {_HINT}") from None
    return Manifest.from_dict(data)
