"""``segfolder:DIR``: images with label maps, for segmentation.

Layout: ``DIR/images/<stem>.png|jpg|jpeg`` and ``DIR/masks/<stem>.png``, an
8-bit single-channel label map (value = class id, 255 = ignore), with an
optional ``DIR/classes.txt`` (one class name per line).  Each mask goes
through the image steps' geometry with nearest-neighbour resampling and the
same crop (padding is 255), so labels are int64 ``[N, H, W]`` in the model
input's pixels.  A class id beyond the classes (counted by ``classes.txt``,
else by the model's ``mask_logits`` output) is an error naming the mask.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .base import REAL_LABELLED, file_identity, pool
from .imagefolder import ImageFilesSource, image_preprocessing

SUFFIXES = (".png", ".jpg", ".jpeg")
IGNORE = 255
MAX_CLASSES_BYTES = 1 << 20


def _classes(path, where: str) -> list[str] | None:
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_CLASSES_BYTES:
        raise DataError(f"{where}: classes.txt is larger than 1 MiB; it should hold one class name per line")
    names = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if not names or len(names) > IGNORE:
        raise DataError(
            f"{where}: classes.txt lists {len(names)} classes; expected 1..{IGNORE} (255 is ignore)"
        )
    return names


def _model_classes(signature) -> int | None:
    if signature is None:
        return None
    outs = [s for s in signature.outputs if s.role == "mask_logits"]
    c = outs[0].shape[1] if outs and len(outs[0].shape) == 4 else None
    return c if isinstance(c, int) else None


class SegFolderSource(ImageFilesSource):
    kind = "segfolder"
    evidence = REAL_LABELLED
    label_kind = "mask"

    def __init__(self, root, preprocessing, signature=None, *, positions=None, role="", max_pixels=None):
        super().__init__(positions, role)
        self.root = root
        self.where = f"segfolder:{root}"
        self.pre = image_preprocessing(preprocessing, self.where)
        self.max_pixels = max_pixels
        self.files, self.masks = self._pairs()
        self.classes = _classes(root / "classes.txt", self.where)
        model = _model_classes(signature)
        if self.classes and model is not None and len(self.classes) != model:
            raise DataError(
                f"{self.where}: classes.txt lists {len(self.classes)} classes but the model's mask output has "
                f"{model}; list one name per model class"
            )
        self.num_classes = len(self.classes) if self.classes else model
        self.pre.geometry(1, 1)  # steps label maps cannot follow (fit_digit) fail here

    def _pairs(self):
        images, masks = self.root / "images", self.root / "masks"
        if not images.is_dir() or not masks.is_dir():
            raise DataError(
                f"{self.where}: expected the folders images/ and masks/ (masks/<stem>.png per image)"
            )
        files = sorted(
            p
            for p in images.iterdir()
            if p.suffix.lower() in SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"{self.where}: images/ holds no PNG or JPEG files")
        stems = {}
        for p in files:
            if p.stem in stems:
                raise DataError(
                    f"{self.where}: images/{stems[p.stem]} and images/{p.name} share the stem {p.stem!r}"
                )
            stems[p.stem] = p.name
        pairs = [masks / f"{p.stem}.png" for p in files]
        for img, m in zip(files, pairs):
            if not m.is_file():
                raise DataError(
                    f"{self.where}: image images/{img.name} has no mask masks/{m.name}; add it or remove the image"
                )
        return files, pairs

    def _sample(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """One image through the steps, and its label map through the same geometry."""
        from ..imageio import decode_label_map

        img = self.pre.decode_file(self.files[i], limit=self.max_pixels)
        path = self.masks[i]
        m = decode_label_map(path, limit=self.max_pixels)
        if m.shape != img.shape[:2]:
            raise DataError(
                f"{self.where}: mask masks/{path.name} is {m.shape[1]}x{m.shape[0]} but its image is "
                f"{img.shape[1]}x{img.shape[0]}; label maps must match their images"
            )
        if self.num_classes is not None:
            bad = (m >= self.num_classes) & (m != IGNORE)
            if bad.any():
                raise DataError(
                    f"{self.where}: mask masks/{path.name} holds class id {int(m[bad].max())}, but there are "
                    f"{self.num_classes} classes (0..{self.num_classes - 1}, 255 = ignore); fix the mask or "
                    "classes.txt"
                )
        if self._transform is None:
            from .transforms import to_torchvision

            self._transform = to_torchvision(self.pre)
        return self._transform(img), self.pre.apply_mask(m, IGNORE).astype(np.int64)

    def _batch(self, positions, labels):
        with pool() as p:
            pairs = list(p.map(self._sample, positions))
        sizes = {x.shape for x, _ in pairs}
        if len(sizes) != 1:
            raise DataError(
                f"{self.where}: images come out in different sizes {sorted(sizes)[:3]}; add resize/center_crop "
                "steps (--preprocess, --resize, --crop)"
            )
        return {self.pre.input: np.stack([x for x, _ in pairs])}, np.stack([m for _, m in pairs])

    def _feeds(self, positions):
        return self._batch(positions, None)[0]

    def identity(self) -> dict:
        d = file_identity(super().identity(), self.root, self.files, self._pos(), extra_hashed=(self.masks,))
        if self.classes:
            d["classes"] = list(self.classes)
        return d
