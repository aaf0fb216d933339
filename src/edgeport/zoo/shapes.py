"""Synthetic scenes of drawn shapes: RGB images with their boxes, classes and label maps.

Every scene is drawn from one seed: a smooth two-colour background with pixel noise, then 1 to
``max_objects`` filled shapes (circle, square, triangle) of random size and colour, placed so
that they overlap little.  The boxes and the label map come from the same drawing, so detection
and segmentation labels always agree.  :func:`write_coco` and :func:`write_segfolder` store a set
in the layouts ``--data coco:DIR/annotations.json`` and ``--data segfolder:DIR`` read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
IGNORE = 255


@dataclass
class Scenes:
    images: np.ndarray  # uint8 [N, H, W, 3]
    boxes: list  # per image: float32 [k, 4] xyxy pixels
    classes: list  # per image: int64 [k], 0..len(CLASSES)-1
    masks: np.ndarray  # uint8 [N, H, W]: 0 background, class + 1 for a shape

    def __len__(self) -> int:
        return len(self.images)

    def detection_labels(self) -> np.ndarray:
        """The detect task's labels: an object array of ``{"boxes", "classes"}`` dicts."""
        out = np.empty(len(self), dtype=object)
        for i, (b, c) in enumerate(zip(self.boxes, self.classes)):
            out[i] = {"boxes": b.astype(np.float32), "classes": c.astype(np.int64)}
        return out


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, size)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    img = a[None, None, :] * (1 - ramp[..., None]) + b[None, None, :] * ramp[..., None]
    return img + rng.normal(0, 6, (size, size, 3))


def _polygon(kind: int, cx: float, cy: float, r: float, rng: np.random.Generator) -> list:
    if kind == 1:  # square, axis-aligned
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    turn = rng.uniform(0, 2 * np.pi)  # triangle, any rotation
    return [
        (cx + r * np.cos(turn + k * 2 * np.pi / 3), cy + r * np.sin(turn + k * 2 * np.pi / 3))
        for k in range(3)
    ]


def _free(box: tuple, taken: list, limit: float = 0.15) -> bool:
    for t in taken:
        ix = max(0.0, min(box[2], t[2]) - max(box[0], t[0]))
        iy = max(0.0, min(box[3], t[3]) - max(box[1], t[1]))
        smaller = min((box[2] - box[0]) * (box[3] - box[1]), (t[2] - t[0]) * (t[3] - t[1]))
        if ix * iy > limit * smaller:
            return False
    return True


def draw_scene(rng: np.random.Generator, size: int = 64, max_objects: int = 3, sizes=(0.18, 0.45)):
    """One scene: (uint8 image [size, size, 3], boxes [k, 4], classes [k], label map [size, size])."""
    img = _background(rng, size)
    label = np.zeros((size, size), np.uint8)
    boxes, classes, taken = [], [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            kind = int(rng.integers(0, len(CLASSES)))
            r = rng.uniform(*sizes) * size / 2
            cx, cy = rng.uniform(r, size - r, 2)
            pts = None if kind == 0 else _polygon(kind, cx, cy, r, rng)
            xs = [cx - r, cx + r] if pts is None else [p[0] for p in pts]
            ys = [cy - r, cy + r] if pts is None else [p[1] for p in pts]
            box = (max(0.0, min(xs)), max(0.0, min(ys)), min(size, max(xs) + 1), min(size, max(ys) + 1))
            if _free(box, taken):
                break
        else:
            continue
        shape = Image.new("L", (size, size), 0)
        sd = ImageDraw.Draw(shape)
        if pts is None:
            sd.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
        else:
            sd.polygon(pts, fill=1)
        m = np.asarray(shape, bool)
        if m.sum() < 12:
            continue
        ys_, xs_ = np.nonzero(m)  # the box is the drawn pixels' extent: exact, whatever the rounding
        colour = rng.integers(0, 256, 3)
        img[m] = colour + rng.normal(0, 4, (int(m.sum()), 3))
        label[m] = kind + 1
        taken.append(box)
        boxes.append([xs_.min(), ys_.min(), xs_.max() + 1, ys_.max() + 1])
        classes.append(kind)
    image = np.clip(img, 0, 255).astype(np.uint8)
    return image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64), label


def make_scenes(n: int, seed: int, size: int = 64, max_objects: int = 3) -> Scenes:
    """``n`` scenes; scene ``i`` depends only on ``(seed, i)``."""
    images, boxes, classes, masks = [], [], [], []
    for i in range(n):
        img, b, c, m = draw_scene(np.random.default_rng([seed, i]), size, max_objects)
        images.append(img)
        boxes.append(b)
        classes.append(c)
        masks.append(m)
    return Scenes(np.stack(images), boxes, classes, np.stack(masks))


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG", compress_level=1)


def write_coco(scenes: Scenes, folder: str | Path) -> Path:
    """``folder/images/<stem>.png`` and ``folder/annotations.json`` (COCO, category ids 1..3)."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    h, w = scenes.images.shape[1:3]
    for i in range(len(scenes)):
        name = f"scene{i:05d}.png"
        _save_png(scenes.images[i], folder / "images" / name)
        images.append({"id": i + 1, "file_name": f"images/{name}", "width": int(w), "height": int(h)})
        for b, c in zip(scenes.boxes[i], scenes.classes[i]):
            x0, y0, x1, y1 = (float(v) for v in b)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    cats = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]
    path = folder / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def write_segfolder(scenes: Scenes, folder: str | Path) -> Path:
    """``folder/images/<stem>.png``, ``folder/masks/<stem>.png`` (class ids) and ``folder/classes.txt``."""
    folder = Path(folder)
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(len(scenes)):
        _save_png(scenes.images[i], folder / "images" / f"scene{i:05d}.png")
        _save_png(scenes.masks[i], folder / "masks" / f"scene{i:05d}.png")
    (folder / "classes.txt").write_text("\n".join(("background", *CLASSES)) + "\n")
    return folder


def read_coco(path: str | Path, size: int | None = None) -> Scenes:
    """A COCO set written by :func:`write_coco`, read back (label maps are not stored: zeros)."""
    path = Path(path)
    d = json.loads(path.read_text())
    by_image: dict[int, list] = {im["id"]: [] for im in d["images"]}
    for a in d["annotations"]:
        by_image[a["image_id"]].append(a)
    images, boxes, classes = [], [], []
    for im in d["images"]:
        images.append(np.asarray(Image.open(path.parent / im["file_name"]).convert("RGB")))
        anns = by_image[im["id"]]
        boxes.append(
            np.asarray(
                [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], np.float32
            ).reshape(-1, 4)
        )
        classes.append(np.asarray([a["category_id"] - 1 for a in anns], np.int64))
    arr = np.stack(images)
    return Scenes(arr, boxes, classes, np.zeros(arr.shape[:3], np.uint8))


def read_segfolder(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(images [N,H,W,3], label maps [N,H,W]) of a folder written by :func:`write_segfolder`."""
    folder = Path(folder)
    stems = sorted(p.stem for p in (folder / "images").glob("*.png"))
    images = np.stack([np.asarray(Image.open(folder / "images" / f"{s}.png").convert("RGB")) for s in stems])
    masks = np.stack([np.asarray(Image.open(folder / "masks" / f"{s}.png")) for s in stems])
    return images, masks
