"""Training losses of the task models: FCOS-style targets and losses for the detector, and the
per-pixel / per-token / per-sample cross-entropies of the others."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def assign(
    centres: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor, stride: float, radius: float = 1.5
):
    """FCOS centre sampling for one image: (class per cell, -1 for background; its box [cells, 4]).

    A cell is positive for a box when its centre lies inside the box and within ``radius * stride``
    of the box's centre; a cell claimed by several boxes takes the smallest.
    """
    n = len(centres)
    if len(boxes) == 0:
        return torch.full((n,), -1, dtype=torch.long), torch.zeros(n, 4)
    cx, cy = centres[:, 0:1], centres[:, 1:2]
    inside = (cx > boxes[:, 0]) & (cx < boxes[:, 2]) & (cy > boxes[:, 1]) & (cy < boxes[:, 3])
    bcx, bcy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    r = radius * stride
    near = ((cx - bcx).abs() < r) & ((cy - bcy).abs() < r)
    ok = inside & near
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).expand(n, -1)
    area = torch.where(ok, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(1)
    cls = torch.where(torch.isfinite(best_area), classes[best], torch.full_like(best, -1))
    return cls, boxes[best]


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean generalised-IoU loss of matching xyxy boxes ``[k, 4]``."""
    lt, rb = torch.max(pred[:, :2], target[:, :2]), torch.min(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    ap = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(1)
    at = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(1)
    union = ap + at - inter
    iou = inter / union.clamp(min=1e-6)
    elt, erb = torch.min(pred[:, :2], target[:, :2]), torch.max(pred[:, 2:], target[:, 2:])
    hull = (erb - elt).clamp(min=0).prod(1)
    return (1 - iou + (hull - union) / hull.clamp(min=1e-6)).mean()


def detection_targets(centres: torch.Tensor, stride: float, boxes: list, classes: list):
    """Per image: class per cell (-1 background) ``[N, cells]`` and target boxes ``[N, cells, 4]``."""
    pairs = [assign(centres, torch.as_tensor(b), torch.as_tensor(c), stride) for b, c in zip(boxes, classes)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def detection_loss(model, images: torch.Tensor, t_cls: torch.Tensor, t_box: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss over every cell and class, plus GIoU on the positive cells."""
    cls, reg = model.head(images)
    pos = t_cls >= 0
    onehot = F.one_hot(t_cls.clamp(min=0), cls.shape[-1]).to(cls.dtype) * pos[..., None]
    focal = sigmoid_focal(cls, onehot).sum() / max(1.0, float(pos.sum()))
    if not pos.any():
        return focal
    return focal + 2.0 * giou_loss(model.decode(reg)[pos], t_box[pos])


def sigmoid_focal(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    return (alpha * target + (1 - alpha) * (1 - target)) * ce * (1 - p_t) ** gamma
