"""int8 of the seed MLP on every format: accuracy, agreement, size, and the measured choice of configuration.

Trains the seed network (or takes --run), exports fp32 + int8 of every format calibrated on 300
class-balanced training images, verifies on the 10,000 test images, and prints per format:
test accuracy vs fp32 (target: within 0.2 pt), top-1 agreement (>= 99.5%), int8/fp32 size
(<= 0.30), and every candidate configuration the export tried, with its selection accuracy and
throughput, and which one shipped (the fastest within the accuracy gate).

Usage: python benchmarks/int8.py --data-dir MNIST [--run RUN]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from edgeport.config import ExportConfig, TrainConfig
from edgeport.export.api import export
from edgeport.runtime.verify import verify
from edgeport.seed.train import train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.environ.get("EDGEPORT_MNIST_ROOT"))
    ap.add_argument("--run", default=None, help="a run folder (default: train the seed network now)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="edgeport-int8-"))
    try:
        run = Path(args.run) if args.run else tmp / "run"
        if not args.run:
            train(TrainConfig(), data_dir=args.data_dir, out=run, progress=False)
        b = export(run, tmp / "b", config=ExportConfig(int8=True), data_dir=args.data_dir, progress=False)
        report = verify(b, data_dir=args.data_dir, devices=["cpu"], progress=False)
        ref = report["reference"]["accuracy"]
        print(f"fp32 PyTorch test accuracy {ref * 100:.2f}% on {report['data']['n']} images\n")
        print(f"{'format':<12} {'int8 acc':>9} {'drop pt':>8} {'agree':>8} {'size':>6}  selected (rule)")
        ok = True
        for r in report["rows"]:
            if r["precision"] != "int8":
                continue
            a = b.artifact(r["format"], "int8")
            d = a.details
            good = r["accuracy_drop"] <= 0.002 + 1e-12 and r["agreement"] >= 0.995 and d["size_ratio"] <= 0.30
            ok &= good
            print(
                f"{r['format']:<12} {r['accuracy'] * 100:8.2f}% {r['accuracy_drop'] * 100:8.2f} "
                f"{r['agreement'] * 100:7.2f}% {d['size_ratio']:6.3f}  {d['selected']} ({d['selection_rule']})"
                f"{'' if good else '  MISSED'}"
            )
            for name, c in d["candidates"].items():
                acc = "" if c["accuracy"] is None else f"val acc {c['accuracy'] * 100:.2f}%, "
                print(
                    f"{'':<14}candidate {name:<28} {acc}agreement {c['agreement'] * 100:.2f}%, "
                    f"{c['throughput_per_s']:>10,.0f}/s at batch {d['speed_batch']}"
                    f"{'' if c['within_gate'] else '  (outside the gate)'}"
                )
            print(
                f"{'':<14}int8 vs fp32 at batch {d['speed_batch']}: {d['speedup_vs_fp32']:.2f}x"
                + ("  (SLOWER than fp32 on this CPU)" if d["slower_than_fp32"] else "")
            )
        print(
            f"\ntargets (within 0.2 pt, >= 99.5% agreement, <= 0.30 size): {'all met' if ok else 'NOT MET'}"
        )
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
