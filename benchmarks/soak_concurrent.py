"""Concurrent ``export --force`` against ``predict`` loops (issue 22, class 15): no mixed reads.

A writer process re-exports one bundle path with ``force=True`` over and over, alternating
between two sets of weights (A and B), so every commit swaps in a bundle whose files all differ
from the one before.  Reader processes call ``edgeport.predict.predict_files(PATH, [image])``
in a loop: each call loads the bundle (every sha256 checked) and makes a runner, the window in
which a commit used to mix the old manifest with the new files.

A predict counts as:

- ``ok A`` / ``ok B``: its answer equals the answer of bundle A or B (probabilities to 1e-5);
- ``mixed``: a hash mismatch or "changed" error (old manifest, new file), or an answer that is
  neither A's nor B's;
- ``other error``: any other error (printed).

    python benchmarks/soak_concurrent.py [--predicts 1000] [--readers 2] [--work DIR]

Prints the counts and the number of commits the writer made meanwhile; exit 1 on any mixed read.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _weights(work: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    from edgeport.sources.models import build_model

    torch.manual_seed(seed)
    path = work / f"w{seed}.safetensors"
    save_file(build_model("mnist-mlp").state_dict(), str(path))
    return path


def _export(out: Path, weights: Path, force: bool) -> None:
    from edgeport.config import ExportConfig
    from edgeport.export.api import export

    export(
        model_ref="mnist-mlp",
        weights=weights,
        out=out,
        data="synthetic:64",
        config=ExportConfig(formats=("onnx",)),
        force=force,
        progress=False,
    )


def _answer(bundle: Path, image: Path) -> list[float]:
    from edgeport.predict import predict_files

    (row,) = predict_files(bundle, [image], top_k=10)
    return sorted((t["label"], round(t["prob"], 5)) for t in row["top"])


def _writer(out: Path, weights: list[Path], stop, commits) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        _export(out, weights[i % 2], force=True)
        with commits.get_lock():
            commits.value += 1


def _reader(out: Path, image: Path, n: int, answers: dict, queue) -> None:
    from edgeport.errors import EdgeportError

    counts = {"ok A": 0, "ok B": 0, "mixed": 0, "other error": 0}
    for _ in range(n):
        try:
            got = _answer(out, image)
        except EdgeportError as exc:
            text = str(exc)
            kind = "mixed" if "manifest hash" in text or "changed" in text else "other error"
            counts[kind] += 1
            print(f"  {kind}: {text[:200]}", flush=True)
            continue
        kind = next((k for k, v in answers.items() if v == got), "mixed")
        counts[kind] += 1
    queue.put(counts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predicts", type=int, default=1000, help="predicts in all, over the readers")
    p.add_argument("--readers", type=int, default=2)
    p.add_argument("--work", default=None, help="folder for the bundles (default: a temporary one)")
    args = p.parse_args(argv)
    from PIL import Image

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        weights = [_weights(work, 1), _weights(work, 2)]
        image = work / "x.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8)).save(image)
        answers = {}
        for name, w in zip(("ok A", "ok B"), weights, strict=True):
            _export(work / name.replace(" ", "_"), w, force=False)
            answers[name] = _answer(work / name.replace(" ", "_"), image)
        assert answers["ok A"] != answers["ok B"], "the two weight sets give the same answer"
        out = work / "bundle"
        _export(out, weights[0], force=False)

        ctx = mp.get_context("spawn")
        stop, commits, queue = ctx.Event(), ctx.Value("i", 0), ctx.Queue()
        writer = ctx.Process(target=_writer, args=(out, weights, stop, commits))
        writer.start()
        per = [
            args.predicts // args.readers + (i < args.predicts % args.readers) for i in range(args.readers)
        ]
        readers = [ctx.Process(target=_reader, args=(out, image, n, answers, queue)) for n in per]
        t0 = time.perf_counter()
        for r in readers:
            r.start()
        totals: dict[str, int] = {}
        for _ in readers:
            for k, v in queue.get().items():
                totals[k] = totals.get(k, 0) + v
        for r in readers:
            r.join()
        stop.set()
        writer.join()
        seconds = time.perf_counter() - t0
    n = sum(totals.values())
    print(
        f"{n} predicts by {args.readers} readers in {seconds:.0f} s, {commits.value} export --force commits "
        f"meanwhile: {totals.get('mixed', 0)} mixed reads, {totals.get('other error', 0)} other errors, "
        f"answers A {totals.get('ok A', 0)} / B {totals.get('ok B', 0)}"
    )
    return 1 if totals.get("mixed", 0) or totals.get("other error", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
