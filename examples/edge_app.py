"""Classify every PNG/JPEG in a folder with an edgeport bundle: no torch needed.

    pip install edgeport            # numpy, onnxruntime, pillow (add [openvino] for OpenVINO)
    python examples/edge_app.py BUNDLE FOLDER [--backend onnxruntime|openvino] [--precision fp32|int8]

Copy this file into your application: it only uses the light runtime.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeport.errors import DataError, EdgeportError
from edgeport.export.bundle import load_bundle
from edgeport.imageio import load_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Classify a folder of digit images.")
    parser.add_argument("bundle", help="bundle folder written by `edgeport export`")
    parser.add_argument("folder", help="folder of PNG/JPEG images")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args(argv)

    if not Path(args.folder).is_dir():
        print(f"error: {args.folder} is not a folder; pass a folder of PNG/JPEG images", file=sys.stderr)
        return 2
    files = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"error: no PNG or JPEG files in {args.folder}", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(args.bundle)  # checks every artifact's sha256
        with bundle.runner(backend=args.backend, precision=args.precision, device="cpu") as runner:
            for path in files:
                try:
                    image = load_image(path)  # grayscale, inverted if needed, 28x28 uint8
                except DataError as exc:  # a bad file: report it and carry on
                    print(f"{path.name}: skipped: {exc}", file=sys.stderr)
                    continue
                _, probs = runner.predict(image[None])  # preprocessing from the manifest
                best = int(probs[0].argmax())
                print(f"{path.name}: {bundle.labels[best]} ({probs[0, best] * 100:.1f}%)")
    except EdgeportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
