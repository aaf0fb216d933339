"""Kill ``edgeport export`` with SIGKILL at random moments; nothing may be lost (issue 7, check 7).

Each trial re-exports a run over an existing bundle (``--force``) in a child
process and kills it with SIGKILL after a random delay inside the export.
Afterwards:

- the bundle under the target name loads with every sha256 checked and gives
  the reference outputs on a few images (it is the old bundle, or the complete
  new one when the kill came after the commit);
- no half-written bundle is visible under the target name;
- leftover staging folders are left beside it, and the next export's
  ``clean_leftovers`` removes them all.

    python benchmarks/crash_export.py [--trials 20] [--seed 0] [--work DIR]

Prints one line per trial and the counts.  ``tests/test_crash_export.py``
imports this file and runs a few trials.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import os, sys, time
from edgeport.config import CalibrationConfig, ExportConfig
from edgeport.export.api import export
run, out, data = sys.argv[1:4]
int8 = sys.argv[4] == "1"
formats = tuple(os.environ.get("EDGEPORT_CRASH_FORMATS", "torchscript,onnx,openvino,executorch").split(","))
print("start", flush=True)
t0 = time.perf_counter()
export(run=run, out=out, config=ExportConfig(int8=int8, formats=formats),
       calibration=CalibrationConfig(size=100, method="minmax") if int8 else None,
       data_dir=data, force=True, progress=False)
print(f"done {time.perf_counter() - t0:.3f}", flush=True)
"""


def leftovers(target: Path) -> list[Path]:
    parent = target.parent
    return sorted([*parent.glob(f".{target.name}.tmp-*"), *parent.glob(f".{target.name}.old-*")])


def start_export(run: Path, target: Path, data: Path, int8: bool) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run), str(target), str(data), "1" if int8 else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def full_export(run: Path, target: Path, data: Path, int8: bool) -> float:
    """Export without interruption; the export's own duration in seconds (imports excluded)."""
    proc = start_export(run, target, data, int8)
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"export failed ({proc.returncode}): {err[-2000:]}")
    return float(out.split("done")[1])


def killed_export(run: Path, target: Path, data: Path, int8: bool, delay: float) -> str:
    """Start an export, SIGKILL it ``delay`` s after its imports; 'killed' or 'finished first'."""
    proc = start_export(run, target, data, int8)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "start": imports done, export() about to run
    if not line.startswith("start"):
        proc.kill()
        raise RuntimeError(f"export child did not start: {proc.stderr.read()[-2000:]}")
    time.sleep(delay)
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    proc.stderr.close()
    return "finished first" if finished else "killed"


def reference_inputs(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.4, 2.8, size=(n, 1, 28, 28)).astype(np.float32)


def check_bundle(target: Path, reference: np.ndarray) -> str:
    """Load with hashes checked and run a quick parity check; '' when fine, else what is wrong."""
    from edgeport.bundle import load_bundle
    from edgeport.errors import EdgeportError

    try:
        bundle = load_bundle(target, verify=True)
        with bundle.runner("onnxruntime") as r:
            y = r.run(reference_inputs())
    except EdgeportError as exc:
        return f"bundle does not load: {exc}"
    if not np.allclose(y, reference, atol=1e-5, rtol=1e-5):
        return f"parity: max abs error {float(np.abs(y - reference).max()):.2e} > 1e-5"
    return ""


def make_run(work: Path) -> tuple[Path, Path]:
    """A synthetic MNIST root and a briefly trained run folder under ``work``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_synthetic
    from edgeport.config import TrainConfig
    from edgeport.seed.train import train
    from edgeport.sources.mnist import write_idx

    data = work / "mnist"
    x, y = make_synthetic(1200, seed=1)
    write_idx(data, x, y, train=True)
    xt, yt = make_synthetic(1000, seed=2)
    write_idx(data, xt, yt, train=False)
    run = work / "run"
    train(TrainConfig(epochs=2, batch_size=64, lr=5e-3), data_dir=data, out=run, progress=False)
    return data, run


def crash_trials(
    run: Path, data: Path, target: Path, *, trials: int, seed: int = 0, int8: bool = True, log=print
) -> dict:
    """Run ``trials`` kills over the bundle at ``target`` (exported first); counts and failures."""
    from edgeport.bundle import load_bundle
    from edgeport.fsutil import clean_leftovers

    duration = full_export(run, target, data, int8)
    with load_bundle(target).runner("onnxruntime") as r:
        reference = r.run(reference_inputs())
    rng = random.Random(seed)
    counts = {
        "trials": trials,
        "killed": 0,
        "finished first": 0,
        "bundle ok": 0,
        "leftovers seen": 0,
        "leftovers cleaned": 0,
        "failures": [],
    }
    for i in range(trials):
        delay = rng.uniform(0.0, duration * 1.1)
        outcome = killed_export(run, target, data, int8, delay)
        counts[outcome] += 1
        problem = check_bundle(target, reference)  # with any leftovers still beside it: they are ignored
        left = leftovers(target)
        counts["leftovers seen"] += len(left)
        clean_leftovers(target)  # what the next export does first
        counts["leftovers cleaned"] += len(left) - len(leftovers(target))
        if leftovers(target):
            counts["failures"].append(
                f"trial {i}: leftovers not cleaned: {[p.name for p in leftovers(target)]}"
            )
        if not problem:
            counts["bundle ok"] += 1
        else:
            counts["failures"].append(f"trial {i}: {problem}")
        log(
            f"trial {i + 1:2d}: {outcome:<14} at {delay:5.2f} s of {duration:.2f} s  "
            f"bundle {'ok' if not problem else 'BAD: ' + problem}  leftovers {len(left)}"
        )
    full_export(run, target, data, int8)  # and the next export itself succeeds, leaving nothing behind
    if leftovers(target):
        counts["failures"].append(f"leftovers after a clean export: {[p.name for p in leftovers(target)]}")
    problem = check_bundle(target, reference)
    if problem:
        counts["failures"].append(f"after the final export: {problem}")
    return counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-int8", action="store_true", help="export fp32 only (faster)")
    p.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="edgeport-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    data, run = make_run(work)
    t0 = time.perf_counter()
    counts = crash_trials(
        run, data, work / "bundle", trials=args.trials, seed=args.seed, int8=not args.no_int8
    )
    print(
        f"\n{counts['trials']} trials in {time.perf_counter() - t0:.0f} s: {counts['killed']} killed mid-export, "
        f"{counts['finished first']} finished before the kill; bundle loaded and matched "
        f"{counts['bundle ok']}/{counts['trials']}; {counts['leftovers seen']} leftover folders seen, "
        f"{counts['leftovers cleaned']} cleaned by the next export; {len(counts['failures'])} failures"
    )
    for f in counts["failures"]:
        print("FAIL", f)
    return 1 if counts["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
