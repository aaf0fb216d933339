"""Real torchvision architectures for the image tasks, wrapped to return what edgeport's tasks read.

``ssdlite320-detector``  SSDlite320 with a MobileNetV3-Large backbone: its head outputs before NMS,
                         boxes decoded against the (fixed, 320x320) default boxes into xyxy input
                         pixels, and softmax class scores with background class 0.
``lraspp-segmenter``     LR-ASPP with a MobileNetV3-Large backbone: per-pixel class logits at the
                         input's own height and width (named dims ``height``/``width``).
``mnv3-embedder``        a MobileNetV3-Small trunk, global pooling, a linear projection and L2
                         normalisation: one unit vector per image.

Each wrapper takes the already-normalised image (edgeport's preprocessing steps do the scaling
and normalisation), so the exported graph holds the network only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..sources.models import ModelSpec, register

SSD_SIZE = 320


class SSDliteHead(nn.Module):
    """SSDlite320's backbone and head; boxes decoded against precomputed default boxes, no NMS."""

    def __init__(self, num_classes: int = 91, size: int = SSD_SIZE) -> None:
        super().__init__()
        from torchvision.models.detection import ssdlite320_mobilenet_v3_large
        from torchvision.models.detection.image_list import ImageList

        ssd = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
        self.backbone, self.head, self.size = ssd.backbone, ssd.head, size
        self.box_weights = ssd.box_coder.weights
        self.clip = ssd.box_coder.bbox_xform_clip
        with torch.no_grad():  # default boxes depend only on the (fixed) input and feature sizes
            x = torch.zeros(1, 3, size, size)
            feats = list(self.backbone.eval()(x).values())
            anchors = ssd.anchor_generator(ImageList(x, [(size, size)]), feats)[0]
        self.register_buffer("anchors", anchors, persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(image).values()))
        reg, logits = out["bbox_regression"], out["cls_logits"]
        a = self.anchors
        wa, ha = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        cxa, cya = a[:, 0] + 0.5 * wa, a[:, 1] + 0.5 * ha
        wx, wy, ww, wh = self.box_weights
        cx = reg[..., 0] / wx * wa + cxa
        cy = reg[..., 1] / wy * ha + cya
        w = torch.exp(torch.clamp(reg[..., 2] / ww, max=self.clip)) * wa
        h = torch.exp(torch.clamp(reg[..., 3] / wh, max=self.clip)) * ha
        boxes = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
        return boxes.clamp(0, self.size), torch.softmax(logits, -1)


class LRASPPLogits(nn.Module):
    """torchvision's LR-ASPP (MobileNetV3-Large): the ``out`` logits ``[batch, classes, H, W]``."""

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        self.net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)["out"]


class MobileNetEmbedder(nn.Module):
    """MobileNetV3-Small features, global average pooling, a linear projection, L2 normalisation."""

    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v3_small

        self.features = mobilenet_v3_small(weights=None).features
        self.proj = nn.Linear(576, dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        z = self.proj(self.features(image).mean((2, 3)))
        return F.normalize(z, dim=1)


register(
    ModelSpec(
        name="ssdlite320-detector",
        factory=SSDliteHead,
        task="detect",
        inputs=(f"image:batch,3,{SSD_SIZE},{SSD_SIZE}",),
        outputs=("boxes:raw:boxes", "scores:probs:scores"),
        task_params={"box_format": "xyxy", "box_units": "pixels", "background_class": 0},
        description="torchvision SSDlite320 MobileNetV3-Large head before NMS: decoded xyxy boxes "
        "[batch, 3234, 4] and softmax scores [batch, 3234, classes] (class 0 background)",
    )
)
register(
    ModelSpec(
        name="lraspp-segmenter",
        factory=LRASPPLogits,
        task="segment",
        inputs=("image:batch,3,height,width",),
        dims=("height=128..512@224", "width=128..512@256"),
        outputs=("mask_logits:logits:mask_logits",),
        description="torchvision LR-ASPP MobileNetV3-Large: per-pixel logits [batch, classes, height, width]",
    )
)
register(
    ModelSpec(
        name="mnv3-embedder",
        factory=MobileNetEmbedder,
        task="embed",
        input_shape=(3, 224, 224),
        outputs=("embedding:raw:embedding",),
        description="torchvision MobileNetV3-Small trunk + linear projection + L2 norm: a 128-d unit vector",
    )
)
