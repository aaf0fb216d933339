"""Boxes in numpy: format conversion, IoU, (class-aware) NMS, decoding a detector's raw outputs,
and greedy matching of one set of detections against another.  numpy only (runs on a device)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOX_FORMATS = ("xyxy", "cxcywh", "xywh")
PRE_NMS_TOP = 1000  # candidates kept (by score) before NMS


@dataclass
class Detections:
    boxes: np.ndarray  # [k, 4] xyxy
    scores: np.ndarray  # [k]
    classes: np.ndarray  # [k] int64

    def __len__(self) -> int:
        return len(self.scores)

    def to_list(self, labels=None) -> list[dict]:
        out = []
        for b, s, c in zip(self.boxes, self.scores, self.classes):
            name = labels[int(c)] if labels is not None and 0 <= int(c) < len(labels) else str(int(c))
            out.append({"box": [round(float(v), 2) for v in b], "score": round(float(s), 4), "label": name})
        return out


def to_xyxy(boxes: np.ndarray, fmt: str) -> np.ndarray:
    b = np.asarray(boxes, np.float64)
    if fmt == "xyxy":
        return b
    if fmt == "xywh":
        return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:4]], -1)
    if fmt == "cxcywh":
        half = b[..., 2:4] / 2
        return np.concatenate([b[..., :2] - half, b[..., :2] + half], -1)
    raise ValueError(f"unknown box format {fmt!r}")


def area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [n,4] with every box of ``b`` [m,4] (xyxy) -> [n, m]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        overlap = iou_matrix(boxes[i : i + 1], boxes[rest])[0]
        order = rest[overlap <= iou]
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    span = float(np.abs(boxes).max()) + 1.0
    shifted = boxes + (classes.astype(np.float64) * 2 * span)[:, None]
    return nms(shifted, scores, iou)


def _activate(scores: np.ndarray, how: str) -> np.ndarray:
    s = np.asarray(scores, np.float64)
    if how == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.clip(s, -60, 60)))
    if how == "softmax":
        z = np.exp(s - s.max(-1, keepdims=True))
        return z / z.sum(-1, keepdims=True)
    return s


def decode(boxes, scores, labels, params: dict, *, threshold: float | None = None) -> Detections:
    """One image's detections from raw head outputs: activation, best class per box, threshold, NMS."""
    b = to_xyxy(boxes, params["box_format"])
    s = _activate(scores, params["score_activation"])
    if s.ndim == 2:
        bg = params.get("background_class", -1)
        if bg is not None and 0 <= bg < s.shape[1]:
            s = s.copy()
            s[:, bg] = -np.inf
        cls = s.argmax(-1)
        best = s[np.arange(len(s)), cls]
    else:
        best = s
        cls = np.zeros(len(s), np.int64) if labels is None else np.asarray(labels).astype(np.int64)
    thr = params["score_threshold"] if threshold is None else threshold
    keep = np.flatnonzero(np.isfinite(best) & (best >= thr))
    if len(keep) > PRE_NMS_TOP:
        keep = keep[np.argsort(-best[keep], kind="stable")[:PRE_NMS_TOP]]
    b, best, cls = b[keep], best[keep], cls[keep].astype(np.int64)
    kept = batched_nms(b, best, cls, params["nms_iou"])[: params["max_detections"]]
    return Detections(b[kept], best[kept], cls[kept])


def match(ref: Detections, out: Detections, iou: float) -> list[tuple[int, int, float]]:
    """Greedy matching, best reference score first: (ref index, out index, IoU) of each pair of the
    same class with IoU >= ``iou``; every box is matched at most once."""
    m = iou_matrix(ref.boxes, out.boxes)
    if m.size:
        m[ref.classes[:, None] != out.classes[None, :]] = 0.0
    pairs, used = [], np.zeros(len(out), bool)
    for r in np.argsort(-ref.scores, kind="stable"):
        if not len(out):
            break
        row = np.where(used, -1.0, m[r])
        j = int(row.argmax())
        if row[j] >= iou:
            used[j] = True
            pairs.append((int(r), j, float(row[j])))
    return pairs
