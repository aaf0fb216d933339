"""Data sources: one protocol for MNIST, image folders, npz files and synthetic inputs.

A source is re-iterable and sized, like ``nncf.Dataset``: ``batches(n)`` yields
``(feeds, labels | None)`` with ``feeds`` a dict input name -> model-ready
array, reading and preprocessing one batch at a time so memory is bounded by
the batch, not the data set.  Each source records its identity (where it came
from, which samples, a sha256) and its evidence: real labelled, real
unlabelled, or random.

Spec strings (``--data``, ``--calibration-data``, ``--eval-data``):

``mnist[:train|val|test]``   MNIST through torchvision (root from ``--data-dir``)
``imagefolder:DIR``          torchvision's ImageFolder layout, or a flat folder (unlabelled)
``npz:FILE``                 arrays keyed by input name, optional ``labels``
``synthetic[:N]``            seeded random inputs from the specs (weak evidence)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, InputError
from ..specs import BATCH, Signature, random_tensor

REAL_LABELLED = "real labelled"
REAL_UNLABELLED = "real unlabelled"
RANDOM = "random inputs: weak evidence"
MAX_LISTED = 20_000  # file names recorded in an identity; more are summarised by their hash


def _pool():
    from ..runtime.base import cpu_count

    return ThreadPoolExecutor(max_workers=max(1, cpu_count()))


class DataSource:
    """Base class: subclasses implement ``__len__``, ``_feeds(positions)``, ``labels_array`` and ``identity``."""

    kind = ""
    evidence = RANDOM
    classes: list[str] | None = None

    def __init__(self, positions: np.ndarray | None = None, role: str = "") -> None:
        self.positions = None if positions is None else np.asarray(positions, np.int64)
        self.role = role

    def _all(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._all() if self.positions is None else len(self.positions)

    def _pos(self) -> np.ndarray:
        return np.arange(self._all()) if self.positions is None else self.positions

    def labels_array(self) -> np.ndarray | None:
        full = self._labels_full()
        return None if full is None else full[self._pos()]

    def _labels_full(self) -> np.ndarray | None:
        return None

    def _feeds(self, positions: np.ndarray) -> dict:
        raise NotImplementedError

    def batches(self, batch_size: int = 64) -> Iterator[tuple[dict, np.ndarray | None]]:
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        pos = self._pos()
        labels = self._labels_full()
        for i in range(0, len(pos), batch_size):
            p = pos[i : i + batch_size]
            yield self._feeds(p), (None if labels is None else labels[p])

    def __iter__(self):
        return (feeds for feeds, _ in self.batches())

    def subset(self, positions, role: str) -> DataSource:
        """The samples at ``positions`` (positions into this source) as a new source."""
        import copy

        sub = copy.copy(self)
        sub.positions = self._pos()[np.asarray(positions, np.int64)]
        sub.role = role
        return sub

    def identity(self) -> dict:
        pos = self._pos()
        d = {"kind": self.kind, "role": self.role, "n": int(len(pos)), "evidence": self.evidence}
        d["indices_sha256"] = hashlib.sha256(np.ascontiguousarray(pos, np.int64).tobytes()).hexdigest()
        if len(pos) <= MAX_LISTED:
            d["indices"] = [int(i) for i in pos]
        return d

    def display_images(self, k: int) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Up to ``k`` decoded images (uint8 HW or HWC) for the report, with their labels."""
        return [], None

    def _display_positions(self, k: int) -> np.ndarray:
        """``k`` positions for the report's sample grid: one class after another where labels exist
        (a sorted image folder would otherwise show only its first class), in label order."""
        pos = self._pos()
        k = min(k, len(pos))
        labels = self.labels_array()
        if labels is None:
            return pos[:k]
        chosen = pos[balanced_positions(labels, k, seed=0)]
        full = self._labels_full()
        return chosen[np.argsort(full[chosen], kind="stable")]


# --------------------------------------------------------------------------- MNIST


class MnistSource(DataSource):
    kind = "mnist"
    evidence = REAL_LABELLED

    def __init__(self, data, split: str, preprocessing, input_name: str, positions=None, role="") -> None:
        super().__init__(positions, role)
        self.data, self.split, self.pre, self.input_name = data, split, preprocessing, input_name
        self.images, self.labels_ = data.split(split)
        self.classes = list(data.labels)

    def _all(self) -> int:
        return len(self.images)

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions):
        return {self.input_name: self.pre.apply(self.images[positions])}

    def raw(self, positions) -> np.ndarray:
        return self.images[self._pos()[positions]]

    def identity(self) -> dict:
        d = super().identity()
        pos = self._pos()
        file_idx = {"train": self.data.train_indices, "val": self.data.val_indices}.get(self.split)
        if file_idx is not None and "indices" in d:
            d["file_indices"] = [int(i) for i in file_idx[pos]]  # positions in the 60,000-image file
        d |= {"split": self.split, "root": str(self.data.root)}
        d["sha256"] = hashlib.sha256(np.ascontiguousarray(self.images[pos]).tobytes()).hexdigest()
        return d

    def display_images(self, k: int):
        pos = self._display_positions(k)
        return list(self.images[pos]), self.labels_[pos]


class ArraySource(DataSource):
    """Decoded uint8 images in memory (``[N,H,W]`` or ``[N,H,W,C]``), preprocessed per batch."""

    kind = "arrays"

    def __init__(self, images: np.ndarray, labels, preprocessing, positions=None, role=""):
        super().__init__(positions, role)
        if len(images) == 0 or (labels is not None and len(labels) != len(images)):
            raise DataError(
                f"data holds {len(images)} images and {None if labels is None else len(labels)} labels; "
                "expected the same number >= 1"
            )
        self.images, self.pre = images, preprocessing
        self.labels_ = None if labels is None else np.asarray(labels).astype(np.int64).reshape(-1)
        self.evidence = REAL_LABELLED if labels is not None else REAL_UNLABELLED

    def _all(self) -> int:
        return len(self.images)

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions):
        return {self.pre.input: self.pre.apply(self.images[positions])}

    def display_images(self, k: int):
        pos = self._display_positions(k)
        return list(self.images[pos]), (None if self.labels_ is None else self.labels_[pos])


# --------------------------------------------------------------------------- image folders


def _list_folder(root: Path) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    """Files, labels and class names: torchvision's ImageFolder rules, or a flat unlabelled folder."""
    from ..imageio import IMAGE_SUFFIXES, list_images

    if not root.is_dir():
        raise DataError(f"imagefolder:{root}: folder not found; pass a folder with one subfolder per class")
    subdirs = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
    if subdirs:
        try:
            from torchvision.datasets.folder import make_dataset
        except ImportError:
            make_dataset = None
        if make_dataset is not None:
            try:
                samples = make_dataset(
                    str(root),
                    {c: i for i, c in enumerate(subdirs)},
                    extensions=IMAGE_SUFFIXES,
                    allow_empty=True,
                )
            except (FileNotFoundError, OSError) as exc:
                raise DataError(f"imagefolder:{root}: {exc}") from None
            files = [Path(p) for p, _ in samples]
            labels = np.asarray([c for _, c in samples], np.int64)
        else:  # pragma: no cover - the light install has no torchvision; same rules by hand
            files, labels = [], []
            for i, c in enumerate(subdirs):
                found = sorted(p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
                files += found
                labels += [i] * len(found)
            labels = np.asarray(labels, np.int64)
        if not files:
            raise DataError(f"imagefolder:{root}: the class folders {', '.join(subdirs[:5])} hold no images")
        return files, labels, subdirs
    files = list_images(root)
    if not files:
        raise DataError(f"imagefolder:{root}: no images (PNG, JPEG, ...) found")
    return files, None, None


class ImageFolderSource(DataSource):
    kind = "imagefolder"

    def __init__(
        self, root: Path, preprocessing, input_name: str, *, positions=None, role="", max_pixels=None
    ):
        super().__init__(positions, role)
        if preprocessing is None:
            raise ConfigError(f"imagefolder:{root}: the model has no image input with preprocessing steps")
        self.root = Path(root)
        self.files, self.labels_, self.classes = _list_folder(self.root)
        self.evidence = REAL_LABELLED if self.labels_ is not None else REAL_UNLABELLED
        self.pre, self.input_name, self.max_pixels = preprocessing, input_name, max_pixels
        self._transform = None

    def _all(self) -> int:
        return len(self.files)

    def _labels_full(self):
        return self.labels_

    def _decode_one(self, path: Path) -> np.ndarray:
        img = self.pre.decode_file(path, limit=self.max_pixels)
        if self._transform is None:
            from .transforms import to_torchvision

            self._transform = to_torchvision(self.pre)
        return self._transform(img)

    def _feeds(self, positions):
        paths = [self.files[i] for i in positions]
        with _pool() as pool:
            arrays = list(pool.map(self._decode_one, paths))
        sizes = {a.shape for a in arrays}
        if len(sizes) != 1:
            raise InputError(
                f"imagefolder:{self.root}: images come out in different sizes {sorted(sizes)[:3]}; "
                "add resize/center_crop steps (--preprocess, --resize, --crop)"
            )
        return {self.input_name: np.stack(arrays)}

    def identity(self) -> dict:
        d = super().identity()
        d.pop("indices", None)
        pos = self._pos()
        rel = [self.files[i].relative_to(self.root).as_posix() for i in pos]
        d["root"] = str(self.root)
        d["files_sha256"] = hashlib.sha256("\n".join(rel).encode("utf-8", "surrogateescape")).hexdigest()
        if len(rel) <= MAX_LISTED:
            d["files"] = rel
        if len(pos) <= 2000:  # small splits (calibration): hash the image bytes too
            h = hashlib.sha256()
            for i in pos:
                h.update(self.files[i].read_bytes())
            d["sha256"] = h.hexdigest()
        if self.classes:
            d["classes"] = list(self.classes)
        return d

    def display_images(self, k: int):
        from ..imageio import decode

        pos = self._display_positions(k)
        imgs = [decode(self.files[i], self.pre.mode, limit=self.max_pixels) for i in pos]
        return imgs, (None if self.labels_ is None else self.labels_[pos])


# --------------------------------------------------------------------------- npz


class NpzSource(DataSource):
    kind = "npz"

    def __init__(self, path: Path, signature: Signature, preprocessing=None, positions=None, role=""):
        super().__init__(positions, role)
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"npz:{self.path}: file not found")
        try:
            z = np.load(self.path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"npz:{self.path} is not a readable .npz file ({str(exc)[:120]})") from None
        if not hasattr(z, "files"):
            raise DataError(f"npz:{self.path} holds one array, expected a .npz with one array per input name")
        names = set(signature.input_names)
        missing = sorted(names - set(z.files))
        extra = sorted(set(z.files) - names - {"labels"})
        if missing or extra:
            raise DataError(
                f"npz:{self.path} has arrays {sorted(z.files)}; it needs {sorted(names)} (plus optional 'labels')"
                + (f", unknown: {extra}" if extra else "")
            )
        self.arrays = {n: z[n] for n in signature.input_names}
        self.labels_ = np.asarray(z["labels"]).astype(np.int64).reshape(-1) if "labels" in z.files else None
        counts = {n: len(a) for n, a in self.arrays.items()}
        if len(set(counts.values())) != 1 or (
            self.labels_ is not None and len(self.labels_) != next(iter(counts.values()))
        ):
            raise DataError(
                f"npz:{self.path}: arrays have different lengths {counts} (labels: "
                f"{None if self.labels_ is None else len(self.labels_)})"
            )
        self.signature, self.pre = signature, preprocessing
        self.evidence = REAL_LABELLED if self.labels_ is not None else REAL_UNLABELLED
        for spec in signature.inputs:
            a = self.arrays[spec.name]
            raw_images = (
                preprocessing is not None and spec.name == preprocessing.input and a.dtype == np.uint8
            )
            if a.dtype != spec.np_dtype and not raw_images:
                raise DataError(
                    f"npz:{self.path}: array {spec.name!r} is {a.dtype}, the model takes {spec.dtype} "
                    "(or uint8 images for an image input with preprocessing)"
                )

    def _all(self) -> int:
        return len(next(iter(self.arrays.values())))

    def _labels_full(self):
        return self.labels_

    def _feeds(self, positions):
        out = {}
        for name, a in self.arrays.items():
            x = a[positions]
            if self.pre is not None and name == self.pre.input and x.dtype == np.uint8:
                x = self.pre.apply(x)
            out[name] = np.ascontiguousarray(x)
        return out

    def identity(self) -> dict:
        d = super().identity()
        from ..checkpoint import sha256_file

        d |= {"path": str(self.path), "file_sha256": sha256_file(self.path)}
        return d


# --------------------------------------------------------------------------- synthetic


class SyntheticSource(DataSource):
    kind = "synthetic"
    evidence = RANDOM

    def __init__(self, signature: Signature, n: int = 256, seed: int = 0, positions=None, role=""):
        super().__init__(positions, role)
        if not 1 <= n <= 1_000_000:
            raise ConfigError(f"synthetic:{n}: choose between 1 and 1,000,000 samples")
        self.signature, self.n, self.seed = signature, n, seed

    def _all(self) -> int:
        return self.n

    def _feeds(self, positions):
        values = self.signature.example_values()
        out = {}
        for k, spec in enumerate(self.signature.inputs):
            rows = []
            for p in positions:
                rng = np.random.default_rng([self.seed, k, int(p)])
                shape = spec.concrete_shape(values)[1:]
                rows.append(random_tensor(spec, shape, rng))
            out[spec.name] = np.stack(rows)
        return out

    def identity(self) -> dict:
        return super().identity() | {"seed": self.seed}


# --------------------------------------------------------------------------- opening, splitting


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
    image_input = preprocessing.input if preprocessing is not None else None
    if kind == "mnist":
        from .mnist import load_mnist

        split = arg or {"calibration": "train", "selection": "val"}.get(role, "test")
        if split not in ("train", "val", "test"):
            raise ConfigError(f"--data {text}: MNIST splits are train, val and test")
        if preprocessing is None or preprocessing.mode != "L":
            raise ConfigError("--data mnist needs a model with one grayscale image input (1x28x28)")
        data = mnist if mnist is not None else load_mnist(data_dir)
        return MnistSource(data, split, preprocessing, image_input, role=role)
    if kind == "imagefolder":
        if not arg:
            raise ConfigError("--data imagefolder:DIR needs the folder, e.g. imagefolder:data/photos")
        return ImageFolderSource(
            Path(arg).expanduser(), preprocessing, image_input, role=role, max_pixels=max_pixels
        )
    if kind == "npz":
        if not arg:
            raise ConfigError("--data npz:FILE needs the file, e.g. npz:data/val.npz")
        return NpzSource(Path(arg).expanduser(), signature, preprocessing, role=role)
    if kind == "synthetic":
        try:
            n = int(arg) if arg else 256
        except ValueError:
            raise ConfigError(f"--data {text}: expected synthetic or synthetic:N") from None
        return SyntheticSource(signature, n, seed={"calibration": 1, "selection": 2}.get(role, 3), role=role)
    raise ConfigError(
        f"--data {str(text)[:80]!r}: unknown source; use mnist, imagefolder:DIR, npz:FILE or synthetic[:N]"
    )


def balanced_positions(labels: np.ndarray | None, size: int, seed: int, n: int | None = None) -> np.ndarray:
    """``size`` positions, class-balanced where labels exist (round-robin over shuffled classes)."""
    rng = np.random.default_rng(seed)
    if labels is None:
        total = int(n)
        if size > total:
            raise DataError(f"a split of {size} samples was asked for, but the data holds only {total}")
        return np.sort(rng.permutation(total)[:size])
    labels = np.asarray(labels)
    if size > len(labels):
        raise DataError(
            f"a calibration set of {size} samples was asked for, but the data holds only {len(labels)}; "
            "pass a smaller --calibration-size"
        )
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    depth = max(len(p) for p in per_class)
    grid = np.full((depth, len(per_class)), -1, dtype=np.int64)
    for j, p in enumerate(per_class):
        grid[: len(p), j] = p
    order = grid.ravel()
    return order[order >= 0][:size]


@dataclass
class DataPlan:
    """Where every stage's data comes from, and proof that calibration never meets the verdict."""

    calibration: DataSource
    selection: DataSource  # int8 candidates are scored here
    eval: DataSource  # the accuracy verdict, parity, golden I/O

    @property
    def evidence(self) -> str:
        return self.eval.evidence

    def identity(self) -> dict:
        return {
            "calibration": self.calibration.identity(),
            "selection": _short(self.selection.identity()),
            "eval": _short(self.eval.identity()),
            "evidence": self.evidence,
        }


def _short(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("indices", "file_indices", "files")}


def plan_data(
    *,
    signature: Signature,
    preprocessing,
    data: str | None = None,
    calibration_data: str | None = None,
    eval_data: str | None = None,
    data_dir=None,
    calibration_size: int = 300,
    selection_size: int = 5000,
    seed: int = 0,
    max_pixels=None,
    mnist=None,
) -> DataPlan:
    """Calibration, selection and eval sources from ``--data`` (split by recorded indices) or the two explicit ones."""
    if data and (calibration_data or eval_data):
        raise ConfigError("pass --data, or --calibration-data with --eval-data, not both")
    if bool(calibration_data) != bool(eval_data):
        raise ConfigError("--calibration-data and --eval-data go together (or pass one --data to split)")
    common = dict(
        signature=signature,
        preprocessing=preprocessing,
        data_dir=data_dir,
        max_pixels=max_pixels,
        mnist=mnist,
    )
    if data and data.partition(":")[0] == "mnist" and not data.partition(":")[2]:
        cal_all = open_source("mnist:train", role="calibration", **common)
        sel = open_source("mnist:val", role="selection", **common)
        ev = open_source("mnist:test", role="eval", **common)
        cal = cal_all.subset(
            balanced_positions(cal_all.labels_array(), calibration_size, seed), "calibration"
        )
        return DataPlan(cal, sel, ev)
    if data and data.partition(":")[0] == "synthetic":
        n = open_source(data, role="eval", **common)
        cal = SyntheticSource(signature, calibration_size, seed=1, role="calibration")
        sel = SyntheticSource(signature, min(selection_size, len(n)), seed=2, role="selection")
        return DataPlan(cal, sel, n)
    if data:
        src = open_source(data, role="all", **common)
        if len(src) < calibration_size + 10:
            raise DataError(
                f"--data {data} holds {len(src)} samples: too few to split {calibration_size} for calibration "
                "and keep the rest for evaluation; pass a smaller --calibration-size or separate "
                "--calibration-data/--eval-data"
            )
        cal_pos = balanced_positions(src.labels_array(), calibration_size, seed, n=len(src))
        rest = np.setdiff1d(np.arange(len(src)), cal_pos)
        cal = src.subset(cal_pos, "calibration")
        ev = src.subset(rest, "eval")
    else:
        cal_src = open_source(calibration_data, role="calibration", **common)
        ev = open_source(eval_data, role="eval", **common)
        size = min(calibration_size, len(cal_src))
        cal = cal_src.subset(
            balanced_positions(cal_src.labels_array(), size, seed, n=len(cal_src)), "calibration"
        )
    sel_pos = np.sort(np.random.default_rng(seed + 1).permutation(len(ev))[: min(selection_size, len(ev))])
    return DataPlan(cal, ev.subset(sel_pos, "selection"), ev)


def first_batch(source: DataSource, n: int) -> tuple[dict, np.ndarray | None]:
    """The first ``n`` samples of ``source`` as one batch."""
    sub = source.subset(np.arange(min(n, len(source))), source.role)
    return next(sub.batches(max(1, len(sub))))


__all__ = [
    "ArraySource",
    "BATCH",
    "DataPlan",
    "DataSource",
    "ImageFolderSource",
    "MnistSource",
    "NpzSource",
    "RANDOM",
    "REAL_LABELLED",
    "REAL_UNLABELLED",
    "SyntheticSource",
    "balanced_positions",
    "first_batch",
    "open_source",
    "plan_data",
]
