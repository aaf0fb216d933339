"""Memory soak (issue 7, check 6): RSS must not grow under long inference runs.

For every available backend x precision of an fp32 + int8 bundle:

1. warm-up, then 100,000 batch-1 inferences: RSS growth must stay < 20 MB;
2. 10,000 calls with random batch sizes 1-64: RSS is printed every 1,000 calls
   and must plateau within 5,000 calls (growth from call 5,000 to the end < 5 MB).

    python benchmarks/soak.py [--bundle DIR] [--runs 100000] [--random-calls 10000]

RSS is the current resident set (/proc/self/statm), not the peak.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GROWTH_LIMIT_MB = 20.0
PLATEAU_LIMIT_MB = 5.0
PLATEAU_BY = 5000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_bundle(work: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from crash_export import make_run

    from edgeport.config import CalibrationConfig, ExportConfig
    from edgeport.export.api import export

    data, run = make_run(work)
    out = work / "bundle"
    export(
        run=run,
        out=out,
        config=ExportConfig(int8=True),
        calibration=CalibrationConfig(size=100, method="minmax"),
        data_dir=data,
        progress=False,
    )
    return out


def soak_one(bundle, backend: str, precision: str, runs: int, random_calls: int) -> dict:
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-0.4, 2.8, size=(1, 1, 28, 28)).astype(np.float32) for _ in range(16)]
    big = rng.uniform(-0.4, 2.8, size=(64, 1, 28, 28)).astype(np.float32)
    with bundle.runner(backend, precision) as runner:
        for i in range(2000):  # warm-up
            runner.run(xs[i % 16])
        for n in range(1, 65):
            runner.run(big[:n])
        gc.collect()
        start = rss_mb()
        t0 = time.perf_counter()
        for i in range(runs):
            runner.run(xs[i % 16])
        seconds = time.perf_counter() - t0
        gc.collect()
        end = rss_mb()
        marks = {}
        for i in range(1, random_calls + 1):
            n = int(rng.integers(1, 65))
            runner.run(big[:n])
            if i % 1000 == 0:
                marks[i] = rss_mb()
    plateau = marks[max(marks)] - marks[PLATEAU_BY] if PLATEAU_BY in marks else float("nan")
    return {
        "backend": backend,
        "precision": precision,
        "start": start,
        "end": end,
        "growth": end - start,
        "us_per_run": seconds / runs * 1e6,
        "marks": marks,
        "plateau_growth": plateau,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default=None, help="bundle with fp32 + int8 (default: export a tiny one)")
    p.add_argument("--runs", type=int, default=100_000)
    p.add_argument("--random-calls", type=int, default=10_000)
    p.add_argument("--backends", default=None, help="comma list (default: every available backend)")
    args = p.parse_args(argv)

    from edgeport.bundle import load_bundle
    from edgeport.runtime import available_backends
    from edgeport.runtime.registry import BACKEND_FORMAT

    path = Path(args.bundle) if args.bundle else make_bundle(Path(tempfile.mkdtemp(prefix="edgeport-soak-")))
    bundle = load_bundle(path)
    bundle.trusted = args.bundle is None  # made by this script: its TorchScript may load
    have = {(a.format, a.precision) for a in bundle.artifacts}
    backends = args.backends.split(",") if args.backends else available_backends()
    failures = []
    print(f"soak: {args.runs:,} batch-1 runs after warm-up, then {args.random_calls:,} random batches 1-64")
    print(
        f"{'backend/precision':<22} {'start MB':>9} {'end MB':>8} {'growth':>7} {'us/run':>7}  "
        f"random-batch RSS every 1,000 calls (MB)"
    )
    for backend in backends:
        for precision in ("fp32", "int8"):
            if (BACKEND_FORMAT[backend], precision) not in have:
                continue
            r = soak_one(bundle, backend, precision, args.runs, args.random_calls)
            marks = " ".join(f"{v:.0f}" for v in r["marks"].values())
            print(
                f"{backend + '/' + precision:<22} {r['start']:9.1f} {r['end']:8.1f} {r['growth']:+7.1f} "
                f"{r['us_per_run']:7.1f}  {marks}  (after {PLATEAU_BY}: {r['plateau_growth']:+.1f})",
                flush=True,
            )
            if not r["growth"] < GROWTH_LIMIT_MB:
                failures.append(f"{backend}/{precision}: RSS grew {r['growth']:.1f} MB >= {GROWTH_LIMIT_MB}")
            if not r["plateau_growth"] < PLATEAU_LIMIT_MB:
                failures.append(
                    f"{backend}/{precision}: random batches still grew {r['plateau_growth']:.1f} MB "
                    f"after {PLATEAU_BY} calls"
                )
    for f in failures:
        print("FAIL", f)
    print("soak passed" if not failures else f"soak FAILED ({len(failures)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
