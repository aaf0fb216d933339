"""Image folders: torchvision's ImageFolder layout (one subfolder per class), or a flat folder.

Files are listed by :func:`edgeport.sources.files.walk_files` (torchvision's
order, links followed but no directory entered twice) and decoded one batch
at a time with :mod:`edgeport.imageio`; the torch half runs the manifest's
steps through torchvision.transforms.v2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, InputError
from .base import REAL_LABELLED, REAL_UNLABELLED, DataSource, file_identity, pool
from .files import class_folders, walk_files


def list_class_folders(root: Path, suffixes: tuple[str, ...], kind: str, what: str):
    """(files, labels, class names) of a folder with one subfolder per class; (None, None, None) if it has
    no subfolders."""
    if not root.is_dir():
        raise DataError(f"{kind}:{root}: folder not found; pass a folder with one subfolder per class")
    subdirs = class_folders(root)
    if not subdirs:
        return None, None, None
    files, labels = [], []
    for i, c in enumerate(subdirs):
        found = walk_files(root / c, suffixes, f"{kind}:{root}")
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(f"{kind}:{root}: the class folders {', '.join(subdirs[:5])} hold no {what}")
    return files, np.asarray(labels, np.int64), subdirs


def _list_folder(root: Path) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    """Files, labels and class names: torchvision's ImageFolder rules, or a flat unlabelled folder."""
    from ..imageio import IMAGE_SUFFIXES, list_images

    files, labels, classes = list_class_folders(root, IMAGE_SUFFIXES, "imagefolder", "images")
    if files is not None:
        return files, labels, classes
    files = list_images(root)
    if not files:
        raise DataError(f"imagefolder:{root}: no images (PNG, JPEG, ...) found")
    return files, None, None


def image_preprocessing(preprocessing, where: str):
    """The image steps a source of image files needs (a ConfigError if the model has none)."""
    if preprocessing is None or getattr(preprocessing, "kind", "image") != "image":
        raise ConfigError(f"{where}: the model has no image input with preprocessing steps")
    return preprocessing


class ImageFilesSource(DataSource):
    """Image files (``self.files``) decoded and preprocessed one batch at a time, in a thread pool."""

    root: Path
    files: list[Path]
    labels_: np.ndarray | None = None
    pre = None
    max_pixels: int | None = None
    _transform = None

    def _all(self) -> int:
        return len(self.files)

    def _labels_full(self):
        return self.labels_

    def _check_decoded(self, path: Path, img: np.ndarray) -> None:
        """A hook: sources whose annotations state each image's size check it here."""

    def _decode_one(self, path: Path) -> np.ndarray:
        img = self.pre.decode_file(path, limit=self.max_pixels)
        self._check_decoded(path, img)
        if self._transform is None:
            from .transforms import to_torchvision

            self._transform = to_torchvision(self.pre)
        return self._transform(img)

    def _feeds(self, positions):
        paths = [self.files[i] for i in positions]
        with pool() as p:
            arrays = list(p.map(self._decode_one, paths))
        sizes = {a.shape for a in arrays}
        if len(sizes) != 1:
            raise InputError(
                f"{self.kind}:{self.root}: images come out in different sizes {sorted(sizes)[:3]}; "
                "add resize/center_crop steps (--preprocess, --resize, --crop)"
            )
        return {self.pre.input: np.stack(arrays)}

    def display_images(self, k: int):
        from ..imageio import decode

        pos = self._display_positions(k)
        imgs = [decode(self.files[i], self.pre.mode, limit=self.max_pixels) for i in pos]
        labels = self.labels_[pos] if self.label_kind == "class" else None
        return imgs, labels


class ImageFolderSource(ImageFilesSource):
    kind = "imagefolder"

    def __init__(
        self, root: Path, preprocessing, input_name: str, *, positions=None, role="", max_pixels=None
    ):
        super().__init__(positions, role)
        self.pre = image_preprocessing(preprocessing, f"imagefolder:{root}")
        self.root = Path(root)
        self.files, self.labels_, self.classes = _list_folder(self.root)
        self.label_kind = None if self.labels_ is None else "class"
        self.evidence = REAL_LABELLED if self.labels_ is not None else REAL_UNLABELLED
        self.input_name, self.max_pixels = input_name, max_pixels

    def identity(self) -> dict:
        d = file_identity(super().identity(), self.root, self.files, self._pos())
        if self.classes:
            d["classes"] = list(self.classes)
        return d
