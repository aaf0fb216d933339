"""``coco:FILE.json``: COCO detection annotations, boxes carried into model-input pixels.

The JSON is standard COCO: ``images`` ``[{id, file_name, width, height}]``,
``annotations`` ``[{id, image_id, category_id, bbox: [x, y, w, h], iscrowd}]``,
``categories`` ``[{id, name}]``.  Image files resolve relative to the JSON's
folder, then its ``images/`` folder.  Category ids map to 0-based indices in
sorted id order (``classes`` lists their names); crowd boxes are skipped.  A
box more than :data:`TOLERANCE` pixels outside its image is an error.  Each
box goes through the image steps' geometry (resize, centre crop) into
model-input pixels, is clipped to the input, and is dropped when nothing of it
is left.  Labels are an object array of ``{"boxes": float64 [k,4] xyxy,
"classes": int64 [k]}``, one per image.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import REAL_LABELLED, file_identity
from .files import resolve_named
from .imagefolder import ImageFilesSource, image_preprocessing

TOLERANCE = 1.0  # pixels a box may reach past its image's edge (annotation rounding)
MAX_JSON_BYTES = 2 << 30


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _load(path: Path, where: str) -> dict:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DataError(f"{where}: the annotations file is larger than {MAX_JSON_BYTES >> 30} GiB")
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"{where}: file not found; pass the COCO annotations JSON") from None
    except OSError as exc:
        raise DataError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise DataError(f"{where} is not valid JSON ({first}); pass a COCO annotations file") from None
    lists = ("images", "annotations", "categories")
    if not isinstance(data, dict) or any(not isinstance(data.get(k), list) for k in lists):
        seen = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
        raise DataError(
            f"{where} is not COCO detection annotations: it holds {seen}; expected lists "
            "'images', 'annotations' and 'categories'"
        )
    return data


def _categories(cats: list, where: str) -> tuple[dict[int, int], list[str]]:
    by_id = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not _int(c.get("id")) or not isinstance(c.get("name"), str):
            raise DataError(f"{where}: categories[{i}] needs an integer id and a name")
        if c["id"] in by_id:
            raise DataError(f"{where}: category id {c['id']} is listed twice")
        by_id[c["id"]] = c["name"]
    if not by_id:
        raise DataError(f"{where}: 'categories' is empty; list the classes as {{id, name}}")
    ids = sorted(by_id)
    return {cid: i for i, cid in enumerate(ids)}, [by_id[cid] for cid in ids]


def _images(images: list, where: str) -> list[dict]:
    seen = set()
    for i, im in enumerate(images):
        ok = isinstance(im, dict) and _int(im.get("id")) and isinstance(im.get("file_name"), str)
        if not ok or not all(_int(im.get(k)) and im[k] > 0 for k in ("width", "height")):
            raise DataError(
                f"{where}: images[{i}] needs an integer id, a file_name and a positive width and height"
            )
        if im["id"] in seen:
            raise DataError(f"{where}: image id {im['id']} is listed twice")
        seen.add(im["id"])
    if not images:
        raise DataError(f"{where}: 'images' is empty")
    return sorted(images, key=lambda im: im["id"])


def _box(a, i: int, im: dict, where: str) -> list[float]:
    b = a.get("bbox")
    if not (isinstance(b, list) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)):
        raise DataError(f"{where}: annotations[{i}] needs a bbox [x, y, w, h] of numbers")
    x, y, w, h = (float(v) for v in b)
    if not all(map(math.isfinite, (x, y, w, h))) or w < 0 or h < 0:
        raise DataError(f"{where}: annotations[{i}] has bbox {b}; expected finite x, y and w, h >= 0")
    t = TOLERANCE
    if x < -t or y < -t or x + w > im["width"] + t or y + h > im["height"] + t:
        raise DataError(
            f"{where}: the box [x, y, w, h] = {b} of annotations[{i}] lies outside image {im['file_name'][:80]!r} "
            f"({im['width']}x{im['height']}); fix the annotation (boxes are in the image's pixels)"
        )
    return [x, y, x + w, y + h]


def parse_coco(data: dict, where: str):
    """(images sorted by id, per-image xyxy boxes, per-image class indices, class names)."""
    cat_index, classes = _categories(data["categories"], where)
    images = _images(data["images"], where)
    by_id = {im["id"]: k for k, im in enumerate(images)}
    boxes = [[] for _ in images]
    labels = [[] for _ in images]
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or a.get("image_id") not in by_id or a.get("category_id") not in cat_index:
            raise DataError(
                f"{where}: annotations[{i}] needs an image_id from 'images' and a category_id from 'categories'"
            )
        k = by_id[a["image_id"]]
        box = _box(a, i, images[k], where)
        if a.get("iscrowd", 0):
            continue
        boxes[k].append(box)
        labels[k].append(cat_index[a["category_id"]])
    return images, boxes, labels, classes


class CocoSource(ImageFilesSource):
    kind = "coco"
    evidence = REAL_LABELLED
    label_kind = "boxes"

    def __init__(self, path: Path, preprocessing, *, positions=None, role="", max_pixels=None):
        super().__init__(positions, role)
        self.path = Path(path)
        self.where = f"coco:{self.path}"
        self.pre = image_preprocessing(preprocessing, self.where)
        self.max_pixels = max_pixels
        self.root = self.path.parent
        data = _load(self.path, self.where)
        images, self.boxes, self.box_classes, self.classes = parse_coco(data, self.where)
        self.sizes = {}
        self.files = []
        bases = [self.root, self.root / "images"]
        for im in images:
            found = resolve_named(bases, im["file_name"], self.where)
            if found is None:
                raise DataError(
                    f"{self.where}: image {im['file_name'][:120]!r} (id {im['id']}) is neither beside the JSON "
                    "nor in its images/ folder"
                )
            self.files.append(found)
            self.sizes[found] = (im["height"], im["width"])
        self.pre.geometry(1, 1)  # steps boxes cannot follow (fit_digit) fail here, before any decoding
        self._labels = None

    def _check_decoded(self, path: Path, img: np.ndarray) -> None:
        h, w = self.sizes[path]
        if img.shape[:2] != (h, w):
            raise DataError(
                f"{self.where}: image {path.name!r} decodes to {img.shape[1]}x{img.shape[0]} but the annotations "
                f"say {w}x{h}; fix its width/height (boxes are in those pixels)"
            )

    def _labels_full(self):
        if self._labels is None:
            out = np.empty(len(self.files), dtype=object)
            for i, path in enumerate(self.files):
                g = self.pre.geometry(*self.sizes[path])
                b, keep = g.boxes(np.asarray(self.boxes[i], np.float64).reshape(-1, 4))
                out[i] = {"boxes": b, "classes": np.asarray(self.box_classes[i], np.int64).reshape(-1)[keep]}
            self._labels = out
        return self._labels

    def identity(self) -> dict:
        d = file_identity(super().identity(), self.root, self.files, self._pos())
        d["annotations"] = str(self.path)
        d["annotations_sha256"] = hashlib.sha256(self.path.read_bytes()).hexdigest()
        d["classes"] = list(self.classes)
        return d
