"""Typed results of the Python API: ``edgeport.verify``, ``edgeport.bench`` and ``edgeport.quantize``.

Each is a dataclass with the fields code reads most (``passed``, ``rows`` with their metrics and
timings) and ``to_json()``, which gives the same JSON the CLI writes (``verify.json``,
``bench.json``): the report dict stays in ``.report``, and ``result["key"]`` still reads it, so code
written against the dicts keeps working.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


class _Report:
    report: dict

    def __getitem__(self, key):
        return self.report[key]

    def get(self, key, default=None):
        return self.report.get(key, default)

    def to_dict(self) -> dict:
        return self.report

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.report, indent=indent, allow_nan=False, default=str)


@dataclass(frozen=True)
class VerifyRow:
    backend: str
    device: str
    format: str
    precision: str
    passed: bool
    reasons: tuple[str, ...]
    metrics: dict  # the task's metrics against PyTorch (and labels): agreement, accuracy, miou...
    max_abs: float | None = None

    @classmethod
    def from_dict(cls, r: dict) -> VerifyRow:
        return cls(r["backend"], r["device"], r["format"], r["precision"], bool(r["passed"]),
                   tuple(r.get("reasons") or ()), dict(r.get("metrics") or {}), r.get("max_abs"))  # fmt: skip

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.device} {self.format}/{self.precision}"


@dataclass(frozen=True)
class VerifyResult(_Report):
    passed: bool
    rows: tuple[VerifyRow, ...]
    task: str
    report: dict = field(repr=False)

    @classmethod
    def from_report(cls, report: dict) -> VerifyResult:
        rows = tuple(VerifyRow.from_dict(r) for r in report.get("rows", []) if "backend" in r)
        return cls(bool(report.get("passed")), rows, str(report.get("task", "")), report)

    def failed(self) -> list[VerifyRow]:
        return [r for r in self.rows if not r.passed]


@dataclass(frozen=True)
class BenchRow:
    backend: str
    device: str
    format: str
    precision: str
    batch_size: int
    p50_us: float
    mean_us: float
    throughput_per_s: float
    peak_rss_mb: float | None
    cov: float

    @classmethod
    def from_dict(cls, r: dict) -> BenchRow:
        lat = r.get("latency_us") or {}
        return cls(r["backend"], r["device"], r["format"], r["precision"], int(r["batch_size"]),
                   float(lat.get("p50", "nan")), float(lat.get("mean", "nan")), float(r["throughput_per_s"]),
                   r.get("peak_rss_mb"), float(r.get("cov") or 0.0))  # fmt: skip

    @property
    def key(self) -> str:
        return f"{self.backend}:{self.device} {self.format}/{self.precision}"


@dataclass(frozen=True)
class BenchResult(_Report):
    rows: tuple[BenchRow, ...]
    report: dict = field(repr=False)

    @classmethod
    def from_report(cls, report: dict) -> BenchResult:
        rows = tuple(BenchRow.from_dict(r) for r in report.get("rows", []) if "latency_us" in r)
        return cls(rows, report)

    def fastest(self, batch_size: int | None = None) -> BenchRow | None:
        """The row with the lowest median latency (at ``batch_size``, when given)."""
        rows = [r for r in self.rows if batch_size is None or r.batch_size == batch_size]
        return min(rows, key=lambda r: r.p50_us) if rows else None


@dataclass(frozen=True)
class QuantizeResult(_Report):
    """What ``edgeport.quantize`` added: the bundle (re-loaded) and the int8 artifacts it holds now."""

    bundle: object
    int8: tuple[str, ...]
    failures: tuple[dict, ...]
    report: dict = field(repr=False)


def verify(bundle_or_path, **kwargs) -> VerifyResult:
    """:func:`edgeport.verification.verify`, as a :class:`VerifyResult`."""
    from .verification import verify as run

    return VerifyResult.from_report(run(bundle_or_path, **kwargs))


def bench(bundle_or_path, **kwargs) -> BenchResult:
    """:func:`edgeport.runtime.benchmark.bench`, as a :class:`BenchResult` (a text-generation bundle's
    rows, TTFT and tokens/s, stay in ``.report``)."""
    from .runtime.benchmark import bench as run

    return BenchResult.from_report(run(bundle_or_path, **kwargs))


def quantize(bundle_or_path, **kwargs) -> QuantizeResult:
    """:func:`edgeport.export.quantize.quantize`, as a :class:`QuantizeResult`."""
    from .export.quantize import quantize as run

    bundle = run(bundle_or_path, **kwargs)
    int8 = tuple(a.key for a in bundle.artifacts if a.precision == "int8")
    failures = tuple(f for f in bundle.failures if f.get("precision") == "int8")
    report = {"bundle": str(bundle.path), "int8": list(int8), "failures": list(failures)}
    return QuantizeResult(bundle, int8, failures, report)


__all__ = [
    "BenchResult",
    "BenchRow",
    "QuantizeResult",
    "VerifyResult",
    "VerifyRow",
    "bench",
    "quantize",
    "verify",
]
