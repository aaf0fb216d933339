"""Everything the report reads from a run folder, in one place.

Each stage's JSON is read tolerantly: a missing file is ``None`` ("not run"),
an unreadable one is noted, and a missing field shows as "–".  If a stage
renames a field, adapt the accessors here; the writer and plots only see
:class:`RunData` and :class:`Row`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DASH = "–"
FILES = {
    "train": "train.json",
    "manifest": "bundle/manifest.json",
    "verify": "verify.json",
    "bench": "bench.json",
    "devices": "devices.json",
}
# The artifact format each backend runs, when a row does not say.
BACKEND_FORMAT = {
    "onnxruntime": "onnx",
    "openvino": "openvino",
    "torchscript": "torchscript",
    "torch": "torch",
    "executorch": "executorch",
}


@dataclass
class Row:
    """One backend x precision x device: verification joined with benchmark rows."""

    backend: str
    device: str
    precision: str
    format: str
    accuracy: float | None = None
    max_abs: float | None = None
    agreement: float | None = None
    passed: bool | None = None
    reasons: list = field(default_factory=list)
    p50_us: float | None = None  # at the smallest benchmarked batch size
    p99_us: float | None = None
    latency_batch: int | None = None
    throughput: float | None = None  # best over batch sizes
    throughput_batch: int | None = None
    size_bytes: int | None = None
    scaling: dict = field(default_factory=dict)  # batch size -> samples/s
    p50_by_batch: dict = field(default_factory=dict)  # batch size -> p50 µs
    cov: float | None = None  # the largest latency CoV of its bench rows (how noisy its timing was)
    host: str = ""
    notes: list = field(default_factory=list)
    task: str = ""
    metrics: dict = field(default_factory=dict)  # the task's metrics from verify
    score: float | None = None  # the task's headline metric (labels first: accuracy, mAP@0.5, mIoU...)
    score_name: str = ""
    slower_than_fp32: bool = (
        False  # slower than its fp32 twin beyond noise at batch 1 and at the largest batch
    )

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.device}/{self.precision}"


@dataclass
class RunData:
    run_dir: Path
    raw: dict  # stage -> parsed JSON, or None when the file is missing
    problems: dict  # stage -> why the file could not be read
    rows: list[Row]

    def ran(self, stage: str) -> bool:
        return self.raw.get(stage) is not None

    def warnings(self) -> list[str]:
        out: list[str] = []
        for stage in ("manifest", "verify"):
            d = self.raw.get(stage)
            if isinstance(d, dict) and isinstance(d.get("warnings"), list):
                out += [str(w) for w in d["warnings"] if isinstance(w, str) and str(w) not in out]
        return out

    def evidence(self) -> str:
        v = self.raw.get("verify")
        if isinstance(v, dict) and isinstance(v.get("data"), dict):
            ev, n, kind = v["data"].get("evidence"), v["data"].get("n"), v["data"].get("kind")
            if isinstance(ev, str):
                return f"verified on {n} samples ({kind}): {ev}"
        return ""

    def hosts(self) -> list[str]:
        return sorted({r.host for r in self.rows})

    def status(self, stage: str) -> str:
        if stage in self.problems:
            return f"{FILES[stage]} is unreadable ({self.problems[stage]})"
        return f"not run ({FILES[stage]} not found)"


def _read(path: Path):
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, (str(exc).splitlines() or [type(exc).__name__])[0]


def load(run_dir: str | Path) -> RunData:
    run_dir = Path(run_dir)
    raw, problems = {}, {}
    for stage, rel in FILES.items():
        raw[stage], problem = _read(run_dir / rel)
        if problem:
            problems[stage] = problem
    rows = build_rows(raw)
    ckpt = run_dir / "model.safetensors"  # the torch rows run the checkpoint itself
    for r in rows:
        if r.format in ("torch", "checkpoint") and r.size_bytes is None and ckpt.is_file():
            r.size_bytes = ckpt.stat().st_size
    return RunData(run_dir, raw, problems, rows)


def _num(d: dict, *keys):
    for k in keys:
        v = d.get(k) if isinstance(d, dict) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
    return None


def _list(obj, key: str) -> list:
    if isinstance(obj, list):
        return [x for x in obj if isinstance(x, dict)]
    if isinstance(obj, dict) and isinstance(obj.get(key), list):
        return [x for x in obj[key] if isinstance(x, dict)]
    return []


def _key(d: dict, host: str) -> tuple[str, str, str, str]:
    return (
        host,
        str(d.get("backend", "?")),
        str(d.get("device", "cpu")).lower(),
        str(d.get("precision", "fp32")),
    )


def _host(report) -> str:
    if isinstance(report, dict):
        dev = report.get("device") if isinstance(report.get("device"), dict) else report.get("environment")
        if isinstance(dev, dict) and isinstance(dev.get("hostname"), str):
            return dev["hostname"]
    return ""


def build_rows(raw: dict) -> list[Row]:
    rows: dict[tuple, Row] = {}

    def row_for(d: dict, host: str) -> Row:
        k = _key(d, host)
        if k not in rows:
            fmt = d.get("format") or BACKEND_FORMAT.get(k[1], k[1])
            rows[k] = Row(
                backend=k[1], device=str(d.get("device", "cpu")), precision=k[3], format=str(fmt), host=host
            )
        return rows[k]

    verify = raw.get("verify")
    vhost = _host(verify)
    for v in _list(verify, "results") or _list(verify, "rows"):  # runtime/verify.py writes "rows"
        r = row_for(v, vhost)
        r.accuracy = _num(v, "accuracy")
        r.max_abs = _num(v, "max_abs", "max_abs_error")
        r.agreement = _num(v, "agreement", "top1_agreement")
        r.passed = v.get("passed") if isinstance(v.get("passed"), bool) else None
        r.reasons = [str(x) for x in v["reasons"]] if isinstance(v.get("reasons"), list) else []
        r.task = str(v.get("task") or (verify.get("task") if isinstance(verify, dict) else "") or "classify")
        metrics = v.get("metrics") if isinstance(v.get("metrics"), dict) else {}
        r.metrics = {
            k: x for k, x in metrics.items() if isinstance(x, (int, float)) and not isinstance(x, bool)
        }
        if not r.metrics:  # a verify.json of edgeport 0.2: classifier figures at the top level
            r.metrics = {
                k: x for k, x in (("agreement", r.agreement), ("accuracy", r.accuracy)) if x is not None
            }
            if r.accuracy is not None and _num(v, "ref_accuracy") is not None:
                r.metrics["accuracy_drop"] = _num(v, "ref_accuracy") - r.accuracy
        r.score_name, r.score = headline(r.task, r.metrics, r.accuracy)
    bhost = _host(raw.get("bench")) or vhost
    for b in _list(raw.get("bench"), "rows"):
        _add_bench(row_for(b, b.get("host") if isinstance(b.get("host"), str) else bhost), b)
    sizes = {}
    for a in _list(raw.get("manifest"), "artifacts"):
        k = (str(a.get("format")), str(a.get("precision", "fp32")))
        extra = sum(int(_num(e, "bytes") or 0) for e in _list(a.get("extra_files"), ""))  # openvino .bin
        sizes[k] = sizes.get(k, 0) + int(_num(a, "bytes", "size") or 0) + extra
    for r in rows.values():
        r.size_bytes = sizes.get((r.format, r.precision)) or None
    _flag_slow_int8(rows)
    order = {"torch": 0, "torchscript": 1, "onnxruntime": 2, "openvino": 3, "executorch": 4}
    return sorted(
        rows.values(), key=lambda r: (r.host, order.get(r.backend, 9), r.backend, r.device, r.precision)
    )


def _add_bench(r: Row, b: dict) -> None:
    """One bench row's latency, noise and throughput into the artifact's report row."""
    bs = int(_num(b, "batch_size") or 1)
    lat = b.get("latency_us") if isinstance(b.get("latency_us"), dict) else {}
    if r.latency_batch is None or bs < r.latency_batch:
        r.latency_batch, r.p50_us, r.p99_us = bs, _num(lat, "p50"), _num(lat, "p99")
    if _num(lat, "p50") is not None:
        r.p50_by_batch[bs] = _num(lat, "p50")
    cov = _num(b, "cov")
    if cov is not None:
        r.cov = max(r.cov or 0.0, cov)
    tput = _num(b, "throughput_per_s", "throughput")
    if tput is not None:
        r.scaling[bs] = tput
        if r.throughput is None or tput > r.throughput:
            r.throughput, r.throughput_batch = tput, bs


NOISE_FLOOR, NOISE_CEILING = 0.03, 0.25


def noise_margin(a: Row, b: Row) -> float:
    """How far apart two rows' speeds must be to count as different: half the larger latency CoV of
    the two, kept between 3% and 25% (a busy machine widens it; a quiet one narrows it)."""
    cov = max(a.cov or 0.0, b.cov or 0.0)
    return min(NOISE_CEILING, max(NOISE_FLOOR, cov / 2))


def _flag_slow_int8(rows: dict) -> None:
    """Mark every int8 row slower than its fp32 twin beyond noise at batch 1 (p50 latency) *and* at the
    largest common batch (throughput): the report flags it and the recommendation never picks it."""
    for (host, backend, device, prec), r in rows.items():
        twin = rows.get((host, backend, device, "fp32"))
        if prec != "int8" or twin is None:
            continue
        common = sorted(set(r.scaling) & set(twin.scaling))
        small = sorted(set(r.p50_by_batch) & set(twin.p50_by_batch))
        if not common or not small:
            continue
        margin = noise_margin(r, twin)
        b, b1 = common[-1], small[0]
        slow_tput = r.scaling[b] < twin.scaling[b] * (1 - margin)
        slow_lat = r.p50_by_batch[b1] > twin.p50_by_batch[b1] * (1 + margin)
        if slow_tput and slow_lat:
            r.slower_than_fp32 = True
            r.notes.append(
                f"not recommended: slower than fp32 beyond noise ({margin * 100:.0f}%) at batch {b1} "
                f"({r.p50_by_batch[b1]:,.0f} vs {twin.p50_by_batch[b1]:,.0f} µs) and batch {b} "
                f"({r.scaling[b]:,.0f} vs {twin.scaling[b]:,.0f}/s)"
            )
        elif slow_tput or slow_lat:
            where = f"batch {b}" if slow_tput else f"batch {b1}"
            r.notes.append(f"slower than fp32 at {where} only (beyond {margin * 100:.0f}% noise)")


def headline(task: str, metrics: dict, accuracy) -> tuple[str, float | None]:
    """(name, value) of the metric a row is ranked by: the label metric where labels exist, else the
    reference metric (what the Pareto plot and the recommendation use)."""
    try:
        from ..tasks import registry

        cls = registry.task_class(task or "classify")
    except Exception:  # noqa: BLE001 - a verify.json from another version: accuracy as before
        return ("accuracy", accuracy)
    for name in (cls.primary_label_metric, cls.primary_metric):
        v = metrics.get(name) if name else None
        if isinstance(v, (int, float)):
            g = cls.gate_table().get(name)
            return (name, -v if g is not None and g.direction == "max" else v)
    return ("accuracy", accuracy)


def environment(raw: dict) -> dict[str, str]:
    """Flattened ``environment`` of every stage (later stages win), ``a.b: value``."""
    env: dict[str, str] = {}
    for stage in ("train", "manifest", "verify", "bench"):
        src = raw.get(stage)
        if not isinstance(src, dict):
            continue
        for key in ("environment", "device"):
            if isinstance(src.get(key), dict):
                _flatten({k: v for k, v in src[key].items() if k != "devices"}, "", env)
    return env


def _flatten(d: dict, prefix: str, out: dict) -> None:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _flatten(v, key + ".", out)
        elif isinstance(v, list):
            text = ", ".join(map(str, v))
            out[key] = text if len(text) <= 300 else text[:300] + " …"
        else:
            out[key] = str(v)


def devices(raw: dict) -> list[dict]:
    d = raw.get("devices")
    return _list(d, "devices")


def numbers(history, keys: tuple[str, ...]) -> list[dict]:
    """Per-epoch history entries whose ``epoch`` and ``keys`` are plain numbers (others dropped)."""
    out = []
    for h in history if isinstance(history, list) else []:
        if (
            not isinstance(h, dict)
            or not isinstance(h.get("epoch"), (int, float))
            or isinstance(h.get("epoch"), bool)
        ):
            continue
        out.append(
            {
                "epoch": h["epoch"],
                **{
                    k: h[k]
                    for k in keys
                    if isinstance(h.get(k), (int, float)) and not isinstance(h.get(k), bool)
                },
            }
        )
    return out
