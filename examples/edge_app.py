"""Classify every image in a folder with an edgeport bundle: no torch needed.

    pip install edgeport            # numpy, onnxruntime, pillow (add [openvino] for OpenVINO)
    python examples/edge_app.py BUNDLE FOLDER [--backend onnxruntime|openvino] [--precision fp32|int8]

Copy this file into your application: it uses only the light runtime.  On
start it checks itself: the artifact it will use must reproduce the golden
outputs stored in the bundle (the same check as ``edgeport selfcheck``), or
the app refuses to predict.  Images are decoded and preprocessed exactly as
the bundle's manifest says (any size, grayscale or RGB, within a pixel limit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeport.bundle import load_bundle
from edgeport.device.selfcheck import selfcheck
from edgeport.errors import DataError, EdgeportError, safe_text
from edgeport.imageio import list_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify a folder of images with an edgeport bundle.")
    parser.add_argument("bundle", help="bundle folder written by `edgeport export`")
    parser.add_argument("folder", help="folder of images (PNG, JPEG, ...)")
    parser.add_argument("--backend", default="onnxruntime", help="onnxruntime or openvino")
    parser.add_argument("--precision", default="fp32", help="fp32 or int8")
    parser.add_argument("--top-k", type=int, default=1, help="classes to print per image")
    args = parser.parse_args(argv)

    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: {safe_text(folder)} is not a folder; pass a folder of images", file=sys.stderr)
        return 2
    files = list_images(folder)
    if not files:
        print(f"error: no images in {safe_text(folder)}", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(args.bundle)  # checks every file's size and sha256 first
        for warning in bundle.warnings:
            print(f"warning: {safe_text(warning)}", file=sys.stderr)
        check = selfcheck(bundle, backends=[args.backend], precisions=[args.precision], devices=["cpu"])
        if not check["passed"]:
            why = "; ".join(r for row in check["rows"] for r in row["reasons"]) or "no artifact could run"
            print(
                f"error: self-check against the bundle's golden outputs failed: {safe_text(why)}",
                file=sys.stderr,
            )
            return 1
        pre, labels = bundle.preprocessing, bundle.labels
        with bundle.runner(backend=args.backend, precision=args.precision, device="cpu") as runner:
            for path in files:
                try:
                    image = pre.decode_file(path)  # bounded decode, as the manifest's decode step says
                except DataError as exc:  # a bad file: report it and carry on
                    print(f"{safe_text(path.name)}: skipped: {safe_text(exc)}", file=sys.stderr)
                    continue
                _, probs = runner.predict([image])  # the manifest's preprocessing steps, then the model
                top = probs[0].argsort()[::-1][: max(1, args.top_k)]
                shown = ", ".join(
                    f"{safe_text(labels[i] if i < len(labels) else i)} {probs[0, i] * 100:.1f}%" for i in top
                )
                print(f"{safe_text(path.name)}: {shown}")
    except EdgeportError as exc:
        print(f"error: {safe_text(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
