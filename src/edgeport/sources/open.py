"""``open_source``: a data source from its spec string (``--data``, ``--calibration-data``, ``--eval-data``).

=========================  ===================================================================
``mnist[:train|val|test]``  MNIST through torchvision (root from ``--data-dir``)
``imagefolder:DIR``         torchvision's ImageFolder layout, or a flat folder (unlabelled)
``npz:FILE``                arrays keyed by input name, optional labels (see :mod:`.npz`)
``coco:FILE.json``          COCO detection annotations; images beside the JSON or in ``images/``
``segfolder:DIR``           ``images/<stem>.png|jpg`` with ``masks/<stem>.png`` label maps
``wavfolder:DIR``           one subfolder of ``.wav`` files per class
``synthetic[:N]``           seeded random inputs from the specs (weak evidence)
=========================  ===================================================================
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..specs import Signature
from .base import DataSource

KINDS = {
    "mnist": "mnist[:train|val|test]",
    "imagefolder": "imagefolder:DIR",
    "npz": "npz:FILE",
    "coco": "coco:FILE.json",
    "segfolder": "segfolder:DIR",
    "wavfolder": "wavfolder:DIR",
    "synthetic": "synthetic[:N]",
}
_EXAMPLE = {
    "imagefolder": "imagefolder:data/photos",
    "npz": "npz:data/val.npz",
    "coco": "coco:data/coco/annotations.json",
    "segfolder": "segfolder:data/seg",
    "wavfolder": "wavfolder:data/speech",
}


def _mnist(text, arg, *, preprocessing, data_dir, role, mnist, **_):
    from .mnist import load_mnist
    from .mnist_source import MnistSource

    split = arg or {"calibration": "train", "selection": "val"}.get(role, "test")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"--data {text}: MNIST splits are train, val and test")
    if (
        preprocessing is None
        or getattr(preprocessing, "kind", "image") != "image"
        or preprocessing.mode != "L"
    ):
        raise ConfigError("--data mnist needs a model with one grayscale image input (1x28x28)")
    data = mnist if mnist is not None else load_mnist(data_dir)
    return MnistSource(data, split, preprocessing, preprocessing.input, role=role)


def _imagefolder(text, arg, *, preprocessing, role, max_pixels, **_):
    from .imagefolder import ImageFolderSource

    image_input = preprocessing.input if preprocessing is not None else None
    return ImageFolderSource(
        Path(arg).expanduser(), preprocessing, image_input, role=role, max_pixels=max_pixels
    )


def _npz(text, arg, *, signature, preprocessing, role, **_):
    from .npz import NpzSource

    return NpzSource(Path(arg).expanduser(), signature, preprocessing, role=role)


def _coco(text, arg, *, preprocessing, role, max_pixels, **_):
    from .coco import CocoSource

    return CocoSource(Path(arg).expanduser(), preprocessing, role=role, max_pixels=max_pixels)


def _segfolder(text, arg, *, signature, preprocessing, role, max_pixels, **_):
    from .segfolder import SegFolderSource

    return SegFolderSource(Path(arg).expanduser(), preprocessing, signature, role=role, max_pixels=max_pixels)


def _wavfolder(text, arg, *, preprocessing, role, **_):
    from .audio import WavFolderSource

    return WavFolderSource(Path(arg).expanduser(), preprocessing, role=role)


def _synthetic(text, arg, *, signature, role, **_):
    from .synthetic import SyntheticSource

    try:
        n = int(arg) if arg else 256
    except ValueError:
        raise ConfigError(f"--data {text}: expected synthetic or synthetic:N") from None
    return SyntheticSource(signature, n, seed={"calibration": 1, "selection": 2}.get(role, 3), role=role)


_OPENERS = {
    "mnist": _mnist,
    "imagefolder": _imagefolder,
    "npz": _npz,
    "coco": _coco,
    "segfolder": _segfolder,
    "wavfolder": _wavfolder,
    "synthetic": _synthetic,
}


def spec_path(text) -> Path | None:
    """The file or folder a spec string names (``npz:FILE`` -> FILE), None for mnist and synthetic."""
    kind, _, arg = str(text).partition(":")
    return Path(arg).expanduser() if kind in _EXAMPLE and arg else None


def open_source(
    text: str,
    *,
    signature: Signature,
    preprocessing=None,
    data_dir=None,
    role="",
    max_pixels=None,
    mnist=None,
) -> DataSource:
    """A source from its spec string (see the module docstring)."""
    kind, _, arg = str(text).partition(":")
    opener = _OPENERS.get(kind)
    if opener is None:
        raise ConfigError(f"--data {str(text)[:80]!r}: unknown source; use {', '.join(KINDS.values())}")
    if kind in _EXAMPLE and not arg:
        raise ConfigError(f"--data {KINDS[kind]} needs its path, e.g. {_EXAMPLE[kind]}")
    return opener(
        text,
        arg,
        signature=signature,
        preprocessing=preprocessing,
        data_dir=data_dir,
        role=role,
        max_pixels=max_pixels,
        mnist=mnist,
    )
