"""A keyword-spotting CNN on log-mel features: DS-CNN ("Hello Edge", Zhang et al. 2017).

Input ``mels [batch, 1, 40, 101]``: 40 log-mel bands by 101 frames of 10 ms (the ``kws``
preprocessing preset: 16 kHz, 1 s centred, n_fft 480, hop 160).  A BatchNorm on the raw log-mels
(folded into the first convolution at export), a 10x4 stride-2 convolution, depthwise-separable
blocks (3x3 depthwise, 1x1 pointwise, each with BatchNorm and ReLU), global average pooling and a
linear classifier: logits out.

``kws-dscnn``  DS-CNN-S: 64 channels, 4 blocks, 12 classes (the Speech Commands setup); random weights.
``kws-tones``  the same network with 32 channels and 8 classes, trained on :mod:`edgeport.zoo.tones`.
``tones-embedder``  an embedding head on that trunk: a linear projection of the pooled features to
                 64 dimensions, L2-normalised; trained with a cosine classifier (normalised softmax,
                 whose class weights stay out of the exported graph), so clips of one keyword
                 cluster and nearest-neighbour search means something.
"""

from __future__ import annotations

import torch
from torch import nn

from ..sources.models import ModelSpec, register
from .tones import CLASSES

INPUT = "mels:batch,1,40,101:float32:raw"


def _bn_relu(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]


class DSCNN(nn.Module):
    def __init__(self, num_classes: int = 12, channels: int = 64, blocks: int = 4) -> None:
        super().__init__()
        c = channels
        self.norm = nn.BatchNorm2d(1)
        self.stem = nn.Sequential(nn.Conv2d(1, c, (10, 4), (2, 2), (5, 1), bias=False), *_bn_relu(c))
        self.blocks = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False),
                    *_bn_relu(c),
                    nn.Conv2d(c, c, 1, bias=False),
                    *_bn_relu(c),
                )
                for _ in range(blocks)
            )
        )
        self.classifier = nn.Linear(c, num_classes)

    def features(self, mels: torch.Tensor) -> torch.Tensor:
        """The pooled feature vector ``[batch, channels]``."""
        return self.blocks(self.stem(self.norm(mels))).mean((2, 3))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(mels))


def kws_tones() -> DSCNN:
    return DSCNN(num_classes=len(CLASSES), channels=32)


class ToneEmbedder(nn.Module):
    """DS-CNN trunk, a linear projection and L2 normalisation: ``embedding [batch, dim]``."""

    SCALE = 16.0  # the cosine classifier's temperature (training only)

    def __init__(self, dim: int = 64, channels: int = 32, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.trunk = DSCNN(num_classes=1, channels=channels)
        del self.trunk.classifier
        self.proj = nn.Linear(channels, dim)
        self.centres = nn.Parameter(torch.randn(num_classes, dim))  # training only: class directions

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.proj(self.trunk.features(mels)), dim=1)

    def class_logits(self, mels: torch.Tensor) -> torch.Tensor:
        return self.SCALE * self(mels) @ nn.functional.normalize(self.centres, dim=1).T


register(
    ModelSpec(
        name="kws-dscnn",
        factory=DSCNN,
        task="classify",
        inputs=(INPUT,),
        outputs=("logits:logits:class_scores",),
        num_classes=12,
        output_kind="logits",
        description="DS-CNN-S keyword spotter (64 channels, 4 depthwise-separable blocks) on 40x101 log-mels, "
        "12 classes, logits",
    )
)
register(
    ModelSpec(
        name="kws-tones",
        factory=kws_tones,
        task="classify",
        inputs=(INPUT,),
        outputs=("logits:logits:class_scores",),
        num_classes=len(CLASSES),
        output_kind="logits",
        description="DS-CNN (32 channels) for the 8 synthetic tone keywords of edgeport.zoo.tones, logits",
        train={"recipe": "kws", "epochs": 6, "batch_size": 64, "lr": 5e-3, "samples": 2400},
    )
)
register(
    ModelSpec(
        name="tones-embedder",
        factory=ToneEmbedder,
        task="embed",
        inputs=(INPUT,),
        outputs=("embedding:raw:embedding",),
        description="DS-CNN trunk (32 channels) + linear projection + L2 norm: a 64-d unit vector per clip, "
        "trained on the tone keywords with a cosine classifier",
        train={"recipe": "kws-embed", "epochs": 6, "batch_size": 64, "lr": 5e-3, "samples": 2400},
    )
)
