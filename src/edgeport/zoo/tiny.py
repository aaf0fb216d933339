"""Small trainable models for the synthetic sets: a shape detector and a shape segmenter.

Both take 64x64 RGB images normalised to [-1, 1] and are built for int8: convolutions with
BatchNorm and ReLU, nearest-neighbour upsampling, additions for skip connections.

``shapes-detector``  FCOS-style and anchor-free on one stride-4 level (a 16x16 grid fed by a
                     small feature pyramid): per cell, sigmoid scores per class and the distances
                     to the box's four sides, decoded in the graph to xyxy input pixels.  Outputs
                     ``boxes [batch, 256, 4]`` and ``scores [batch, 256, classes]`` before NMS.
``shapes-segmenter`` a small U-Net at half resolution whose logits are upsampled bilinearly:
                     ``mask_logits [batch, 1 + classes, 64, 64]``, class 0 background.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..sources.models import ModelSpec, register
from .shapes import CLASSES

SIZE = 64
STRIDE = 4
IMAGE_STEPS = (
    {"op": "decode", "mode": "RGB"},
    {"op": "scale", "factor": 1.0 / 255.0},
    {"op": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    {"op": "layout", "layout": "NCHW"},
    {"op": "dtype", "dtype": "float32"},
)


def cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def grid_centres(size: int = SIZE, stride: int = STRIDE) -> torch.Tensor:
    """The pixel centres ``[cells, 2]`` (x, y) of the detector's grid, row by row."""
    g = (torch.arange(size // stride, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([cx, cy], -1).reshape(-1, 2)


def up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class ShapesDetector(nn.Module):
    """Anchor-free detector on a stride-4 grid; boxes decoded in the graph (no NMS)."""

    def __init__(self, num_classes: int = len(CLASSES), width: int = 32, size: int = SIZE) -> None:
        super().__init__()
        w = width
        self.c3 = nn.Sequential(cbr(3, w // 2, 2), cbr(w // 2, w, 2), cbr(w, w))  # 16x16
        self.c4 = nn.Sequential(cbr(w, 3 * w // 2, 2), cbr(3 * w // 2, 3 * w // 2))  # 8x8
        self.c5 = cbr(3 * w // 2, 3 * w // 2, 2)  # 4x4
        self.l4 = nn.Conv2d(3 * w // 2, w, 1)
        self.l5 = nn.Conv2d(3 * w // 2, w, 1)
        self.tower = cbr(w, w)
        self.cls = nn.Conv2d(w, num_classes, 1)
        self.reg = nn.Conv2d(w, 4, 1)
        nn.init.constant_(self.cls.bias, -4.0)  # rare positives: start near "nothing here"
        self.register_buffer("centres", grid_centres(size, STRIDE), persistent=False)
        self.size = size

    def head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits [B, cells, C], log side distances [B, cells, 4]) - what the loss trains."""
        c3 = self.c3(x)
        c4 = self.c4(c3)
        p4 = self.l4(c4) + up(self.l5(self.c5(c4)))
        p3 = self.tower(c3 + up(p4))
        cls = self.cls(p3).flatten(2).transpose(1, 2)
        reg = self.reg(p3).flatten(2).transpose(1, 2)
        return cls, reg

    def decode(self, reg: torch.Tensor) -> torch.Tensor:
        d = torch.exp(reg.clamp(max=6.0)) * STRIDE
        lt, rb = self.centres - d[..., :2], self.centres + d[..., 2:]
        return torch.cat([lt, rb], -1).clamp(0, self.size)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls, reg = self.head(image)
        return self.decode(reg), torch.sigmoid(cls)


class ShapesSegmenter(nn.Module):
    """A small U-Net at half resolution: additive skips, logits upsampled bilinearly to the input size."""

    def __init__(self, num_classes: int = 1 + len(CLASSES), width: int = 16) -> None:
        super().__init__()
        w = width
        self.e1 = cbr(3, w, 2)  # 32x32
        self.e2 = nn.Sequential(cbr(w, 2 * w, 2), cbr(2 * w, 2 * w))  # 16x16
        self.e3 = nn.Sequential(cbr(2 * w, 3 * w, 2), cbr(3 * w, 3 * w))  # 8x8
        self.s3 = nn.Conv2d(3 * w, 2 * w, 1)
        self.d2 = cbr(2 * w, 2 * w)
        self.s2 = nn.Conv2d(2 * w, w, 1)
        self.d1 = cbr(w, w)
        self.out = nn.Conv2d(w, num_classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        e1 = self.e1(image)
        e2 = self.e2(e1)
        x = self.d2(e2 + up(self.s3(self.e3(e2))))
        x = self.d1(e1 + up(self.s2(x)))
        return F.interpolate(self.out(x), scale_factor=2.0, mode="bilinear", align_corners=False)


register(
    ModelSpec(
        name="shapes-detector",
        factory=ShapesDetector,
        task="detect",
        inputs=(f"image:batch,3,{SIZE},{SIZE}",),
        outputs=("boxes:raw:boxes", "scores:probs:scores"),
        task_params={"box_format": "xyxy", "box_units": "pixels", "score_activation": "none"},
        num_classes=len(CLASSES),
        description="FCOS-style anchor-free detector for 64x64 shape scenes (stride-4 grid, 256 cells, "
        "sigmoid scores, boxes decoded to xyxy pixels before NMS)",
        train={"recipe": "detect", "epochs": 10, "batch_size": 64, "lr": 6e-3, "samples": 3000},
    )
)
register(
    ModelSpec(
        name="shapes-segmenter",
        factory=ShapesSegmenter,
        task="segment",
        inputs=(f"image:batch,3,{SIZE},{SIZE}",),
        outputs=("mask_logits:logits:mask_logits",),
        num_classes=1 + len(CLASSES),
        description="small U-Net for 64x64 shape scenes: per-pixel logits for background and 3 shapes",
        train={"recipe": "segment", "epochs": 10, "batch_size": 32, "lr": 6e-3, "samples": 3000},
    )
)
