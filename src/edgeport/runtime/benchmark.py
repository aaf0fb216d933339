"""One timing method for every backend.

For each backend x precision x device x batch size: load a runner with an
explicit thread count, fill one input *outside* the timed region, bind it with
``runner.prepare(x)`` (the backend's zero-copy path: ORT IO binding with
preallocated OrtValues, an OpenVINO infer request with a preset tensor,
TorchScript under inference mode), warm up, then time each call of that
prepared callable with ``time.perf_counter_ns`` until both ``min_iters`` and
``min_seconds`` are reached.  Every input of a multi-input model is fed.  Statistics are numpy percentiles over the per-call
latencies.  Only this module times anything.
"""

from __future__ import annotations

import csv
import io
import math
import os
import resource
import time
from pathlib import Path

import numpy as np

from ..config import BenchConfig
from ..errors import ConfigError
from ..fsutil import atomic_write, write_json  # noqa: F401  (write_json re-exported for the CLI)
from ..progress import progress_bar
from ..specs import DEFAULT_MAX_BATCH, random_feeds
from .base import check_threads
from .plan import environment, open_bundle, select_runs
from .registry import backend_class

SCHEMA = "edgeport.bench/2"
COV_WARNING = 0.10
INPUT_NOTE = (
    "filled once outside the timed region (seeded uniform over the preprocessing value range) "
    "and bound once with runner.prepare(); every timed call reuses it"
)


def time_callable(call, *, warmup_seconds: float, min_iters: int, min_seconds: float) -> np.ndarray:
    """Per-call latencies in ns of ``call()``, after warm-up, >= min_iters calls and >= min_seconds."""
    clock = time.perf_counter_ns
    end = clock() + int(warmup_seconds * 1e9)
    call()
    while clock() < end:
        call()
    times: list[int] = []
    append = times.append
    deadline = clock() + int(min_seconds * 1e9)
    n = 0
    while True:
        t0 = clock()
        call()
        t1 = clock()
        append(t1 - t0)
        n += 1
        if n >= min_iters and t1 >= deadline:
            break
    return np.asarray(times, dtype=np.int64)


def latency_stats(times_ns: np.ndarray) -> dict:
    us = np.asarray(times_ns, dtype=np.float64) / 1e3
    p50, p90, p95, p99 = np.percentile(us, [50, 90, 95, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(us.mean()),
        "std": float(us.std()),
        "min": float(us.min()),
        "max": float(us.max()),
    }


def _rss_mb() -> tuple[float, float]:
    """(current RSS, process peak RSS) in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    try:
        with open("/proc/self/statm") as f:
            current = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        current = float("nan")
    return current, peak


def bench_input(runner, batch_size: int, seed: int = 0) -> dict:
    """Seeded inputs for every input of the runner's model (uniform over each value range)."""
    return random_feeds(runner.signature, batch_size, seed)


def measure(
    runner, feeds: dict, *, seconds: float = 0.3, min_iters: int = 10, warmup_seconds: float = 0.05
) -> dict:
    """Latency statistics (µs) and throughput of ``runner`` on ``feeds``: the same loop as a bench row."""
    prepared = runner.prepare(feeds)
    try:
        times = time_callable(
            prepared.call, warmup_seconds=warmup_seconds, min_iters=min_iters, min_seconds=seconds
        )
    finally:
        prepared.release()
    n = len(next(iter(feeds.values())))
    stats = latency_stats(times)
    stats["throughput_per_s"] = float(n * len(times) / (times.sum() / 1e9))
    return stats


def paired_ratios(
    base, other, feeds: dict, *, rounds: int, seconds: float, min_iters: int = 10
) -> list[float]:
    """``other``/``base`` throughput on ``feeds``, one ratio per round, timed in turns (base then other,
    then other then base, ...) so a busy spell of a shared machine slows both alike.  The one method behind
    export's int8-vs-fp32 speed check and the int8 benchmark."""
    ratios = []
    for i in range(rounds):
        pair = (base, other) if i % 2 == 0 else (other, base)
        t = {id(r): measure(r, feeds, seconds=seconds, min_iters=min_iters)["throughput_per_s"] for r in pair}
        ratios.append(t[id(other)] / max(t[id(base)], 1e-9))
    return ratios


def bench_runner(runner, batch_size: int, config: BenchConfig, *, load_seconds: float | None = None) -> dict:
    """One result row for a loaded runner at ``batch_size``."""
    x = bench_input(runner, batch_size)
    t0 = time.perf_counter_ns()
    runner.run(x)
    first_run_us = (time.perf_counter_ns() - t0) / 1e3
    prepared = runner.prepare(x)
    try:
        times = time_callable(
            prepared.call,
            warmup_seconds=config.warmup_seconds,
            min_iters=config.min_iters,
            min_seconds=config.min_seconds,
        )
    finally:
        prepared.release()
    stats = latency_stats(times)
    rss, peak = _rss_mb()
    cov = stats["std"] / stats["mean"] if stats["mean"] > 0 else 0.0
    info = runner.describe()
    row = {
        **{k: info[k] for k in ("backend", "device", "format", "precision", "threads")},
        "batch_size": batch_size,
        "iterations": int(len(times)),
        "latency_us": stats,
        "throughput_per_s": float(batch_size * len(times) / (times.sum() / 1e9)),
        "load_seconds": load_seconds,
        "first_run_us": first_run_us,
        "peak_rss_mb": peak,
        "rss_mb": rss,
        "cov": cov,
        "warnings": [],
        "details": {
            k: v for k, v in info.items() if k not in ("backend", "device", "format", "precision", "threads")
        },
    }
    if cov > COV_WARNING:
        row["warnings"].append(
            f"{runner.name} batch {batch_size}: latency varies a lot (CoV {cov * 100:.0f}% > "
            f"{COV_WARNING * 100:.0f}%); the machine may be busy, rerun on a quiet machine"
        )
    return row


# The largest batch bench will allocate (64 Ki MNIST images are ~200 MB of float32 input).
MAX_BENCH_BATCH = 65536


def _validate(config: BenchConfig) -> None:
    if not config.batch_sizes or any(b < 1 for b in config.batch_sizes):
        raise ConfigError(f"--batch-sizes must be whole numbers >= 1, got {list(config.batch_sizes)}")
    if config.threads is not None:
        try:
            check_threads(config.threads)
        except ConfigError as exc:
            raise ConfigError(f"--threads: {exc}") from None
    if config.min_iters > 10_000_000 or config.min_seconds > 3600 or config.warmup_seconds > 3600:
        raise ConfigError("--min-iters must be <= 10,000,000 and --min-seconds/--warmup-seconds <= 3600")
    if max(config.batch_sizes) > MAX_BENCH_BATCH:
        raise ConfigError(
            f"--batch-sizes: {max(config.batch_sizes)} is larger than the {MAX_BENCH_BATCH} bench allows; "
            "choose a smaller batch size"
        )
    seconds = (config.min_seconds, config.warmup_seconds)
    if config.min_iters < 1 or not all(math.isfinite(s) and s >= 0 for s in seconds):
        raise ConfigError("--min-iters must be >= 1 and --min-seconds/--warmup-seconds finite and >= 0")


def bench(
    bundle_or_path,
    *,
    backends=None,
    precisions=None,
    devices=None,
    config: BenchConfig | None = None,
    progress: bool = True,
    lm=None,
) -> dict:
    """Benchmark every selected backend x precision x device at each batch size; the report dict.

    A text-generation bundle is timed by :mod:`.lm_bench` instead (TTFT, tokens/s), with ``lm``
    (an :class:`~.lm_bench.LMBenchConfig`) or its defaults, and ``config.threads``.
    """
    config = config or BenchConfig()
    bundle = open_bundle(bundle_or_path)
    if getattr(bundle.manifest, "generation", None):
        from dataclasses import replace

        from .lm_bench import LMBenchConfig, bench_lm

        lm = replace(lm or LMBenchConfig(), threads=config.threads or (lm.threads if lm else None))
        sel = {"backends": backends, "precisions": precisions, "devices": devices}
        return bench_lm(bundle, **sel, config=lm, progress=progress)
    _validate(config)
    runs, skipped = select_runs(bundle, backends=backends, precisions=precisions, devices=devices)
    bar = progress_bar(len(runs) * len(config.batch_sizes), progress, "bench")
    rows: list[dict] = []
    try:
        for backend, precision, device in runs:
            rows += _bench_run(bundle, backend, precision, device, config, bar, skipped)
    finally:
        bar.close()
    return {
        "schema": SCHEMA,
        "bundle": str(getattr(bundle, "path", "")),
        "model": getattr(bundle.manifest, "model", None),
        "method": {
            "timer": "time.perf_counter_ns around each call of the runner's prepared zero-copy callable",
            "input": INPUT_NOTE,
            "warmup_seconds": config.warmup_seconds,
            "min_iters": config.min_iters,
            "min_seconds": config.min_seconds,
            "batch_sizes": list(config.batch_sizes),
            "threads": config.threads
            if config.threads
            else "default: 1 for batch <= 16, else every usable core (torch: every core always)",
            "statistics": "numpy percentiles (linear interpolation) over per-call latencies; "
            "throughput = batch_size * iterations / sum of latencies",
            "peak_rss_mb": "process high-water mark (ru_maxrss) after the row",
        },
        "warnings_bundle": bundle.warnings,
        "device": environment(sorted({r[0] for r in runs})),
        "rows": rows,
        "skipped": skipped,
        "warnings": [w for r in rows for w in r["warnings"]],
    }


def noise_warning(report: dict, threshold: float = COV_WARNING) -> str | None:
    """One line when rows of ``report`` vary too much to trust (latency CoV above ``threshold``)."""
    rows = report.get("rows", [])
    noisy = [r for r in rows if (r.get("cov") or 0) > threshold]
    if not noisy:
        return None
    return (
        f"{len(noisy)} of {len(rows)} rows vary a lot (CoV > {threshold * 100:.0f}%); the machine may be "
        "busy: rerun on a quiet machine, or with --min-seconds higher"
    )


def raise_if_failed(report: dict) -> None:
    """:class:`CheckError` (exit 1) when nothing was measured, or a selected artifact could not run."""
    from ..errors import CheckError

    failed = [s for s in report.get("skipped", []) if s.get("failed")]
    if not report.get("rows"):
        why = "; ".join(
            f"{s['backend']}:{s['device']} {s.get('precision') or ''}: {s['reason']}"
            for s in report.get("skipped", [])
        )
        raise CheckError(
            "bench measured nothing: no selected artifact ran"
            + (f" ({why[:600]})" if why else " (the selection matched no artifact)")
            + "; fix or re-export the artifact, or select others with --backends/--precisions"
        )
    if failed:
        names = sorted({f"{s['backend']}:{s['device']} {s['precision']}" for s in failed})
        raise CheckError(
            f"bench: {len(names)} selected artifact(s) could not run ({', '.join(names)}); the others were "
            "measured: see the skipped lines above, fix or re-export those artifacts"
        )


def _bench_run(bundle, backend, precision, device, config: BenchConfig, bar, skipped: list) -> list[dict]:
    """Rows for one backend x precision x device: one runner per thread count, reused across batch sizes."""
    from ..errors import EdgeportError

    rows, runners = [], {}
    try:
        for bs in config.batch_sizes:
            threads = config.threads or backend_class(backend).default_threads_for(bs)
            bar.set_description(f"{backend}:{device} {precision} batch {bs}")
            try:
                if threads not in runners:
                    t0 = time.perf_counter()
                    r = bundle.runner(
                        backend,
                        precision,
                        device,
                        threads=threads,
                        max_batch=max(DEFAULT_MAX_BATCH, max(config.batch_sizes)),
                    )
                    r.load()
                    runners[threads] = (r, time.perf_counter() - t0)
                runner, load_s = runners[threads]
                if bs > runner.max_batch:
                    skipped.append(
                        {
                            "backend": backend,
                            "device": device,
                            "precision": precision,
                            "reason": f"batch {bs} is above the artifact's max batch {runner.max_batch}",
                        }
                    )
                    bar.update(1)
                    continue
                row = bench_runner(runner, bs, config, load_seconds=load_s)
            except EdgeportError as exc:
                skipped.append(
                    {
                        "backend": backend,
                        "device": device,
                        "precision": precision,
                        "reason": f"batch {bs}: could not run: {exc}",
                        "failed": True,  # selected and present, but it did not run: a failure, not a skip
                    }
                )
                bar.update(1)
                continue
            rows.append(row)
            bar.update(1)
    finally:
        for r, _ in runners.values():
            r.close()
    return rows


# ----------------------------------------------------------------------------- writers
CSV_FIELDS = (
    "backend",
    "device",
    "format",
    "precision",
    "batch_size",
    "threads",
    "iterations",
    "p50_us",
    "p90_us",
    "p95_us",
    "p99_us",
    "mean_us",
    "std_us",
    "min_us",
    "max_us",
    "throughput_per_s",
    "load_seconds",
    "first_run_us",
    "peak_rss_mb",
    "cov",
)


def flat_row(row: dict) -> dict:
    flat = {k: row.get(k) for k in CSV_FIELDS if not k.endswith("_us") or k == "first_run_us"}
    for k, v in row["latency_us"].items():
        flat[f"{k}_us"] = v
    return {k: flat.get(k) for k in CSV_FIELDS}


def csv_text(report: dict) -> str:
    lm = report.get("schema") == "edgeport.bench-lm/1"
    if lm:
        from .lm_bench import CSV_FIELDS as LM_FIELDS
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=LM_FIELDS if lm else CSV_FIELDS, lineterminator="\n", extrasaction="ignore"
    )
    w.writeheader()
    for row in report["rows"]:
        w.writerow(row if lm else flat_row(row))
    return buf.getvalue()


def write_csv(report: dict, path) -> Path:
    return atomic_write(path, csv_text(report))


def markdown_table(report: dict) -> str:
    if report.get("schema") == "edgeport.bench-lm/1":
        from .lm_bench import markdown_table as lm_table

        return lm_table(report)
    head = (
        "| backend | device | precision | batch | threads | p50 µs | p99 µs | throughput/s "
        "| CoV | load s | peak RSS MB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in report["rows"]:
        lat = r["latency_us"]
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['precision']} | {r['batch_size']} | {r['threads']} "
            f"| {lat['p50']:.1f} | {lat['p99']:.1f} | {r['throughput_per_s']:,.0f} | {r['cov'] * 100:.1f}% "
            f"| {(r['load_seconds'] or 0):.3f} | {r['peak_rss_mb']:.0f} |"
        )
    lines.append("")
    lines.append(f"Input: {report['method']['input']}.")
    return "\n".join(lines) + "\n"


def write_markdown(report: dict, path) -> Path:
    return atomic_write(path, markdown_table(report))


# ----------------------------------------------------------------------------- roofline
def sgemm_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """The machine's large-sgemm rate (numpy/BLAS, every core), best of repeated n x n x n products."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c)
    best = float("inf")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9
