"""What ``predict`` shows for each task: one JSON-able row per sample, one text line, and a picture
(boxes drawn, masks overlaid) where people would rather look than read.  numpy + Pillow only."""

from __future__ import annotations

import numpy as np

from ..errors import safe_text

PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255]],
    np.uint8,
)  # fmt: skip


def name(labels, i: int) -> str:
    return str(labels[i]) if 0 <= i < len(labels) else str(i)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.exp(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def top_k(scores: np.ndarray, labels, k: int, is_logits: bool) -> list[dict]:
    p = softmax(scores) if is_logits else np.asarray(scores, np.float64)
    order = np.argsort(-p, kind="stable")[: min(k, p.shape[-1])]
    return [{"label": name(labels, int(i)), "prob": round(float(p[i]), 6)} for i in order]


def draw_boxes(image: np.ndarray, detections: list[dict], scale: tuple[float, float]):
    """``image`` (HxW or HxWx3 uint8) with each box drawn and labelled; boxes are in model-input pixels and
    ``scale`` = (sx, sy) maps them onto the image."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(image).convert("RGB")
    draw = ImageDraw.Draw(img)
    sx, sy = scale
    for k, d in enumerate(detections):
        x0, y0, x1, y1 = d["box"]
        colour = tuple(int(c) for c in PALETTE[k % len(PALETTE)])
        box = [x0 * sx, y0 * sy, x1 * sx, y1 * sy]
        draw.rectangle(box, outline=colour, width=max(1, round(min(img.size) / 150)))
        text = f"{safe_text(d['label'], 40)} {d['score']:.2f}"
        draw.text((box[0] + 2, max(0, box[1] - 11)), text, fill=colour)
    return img


def overlay_mask(image: np.ndarray, classes: np.ndarray, alpha: float = 0.5):
    """``image`` with the per-pixel ``classes`` (model-input size, resized with nearest) blended over it."""
    from PIL import Image

    img = Image.fromarray(image).convert("RGB")
    mask = Image.fromarray(PALETTE[classes % len(PALETTE)]).resize(img.size, Image.NEAREST)
    return Image.blend(img, mask, alpha)
