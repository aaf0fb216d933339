"""User models for the "bring your own model" export tests (imported as ``user_models:...``)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.dropout(self.features(x).flatten(1))), dim=1)


def small_cnn() -> nn.Module:
    torch.manual_seed(3)
    return SmallCNN()


def rgb_mlp() -> nn.Module:
    """Non-MNIST input shape (3, 8, 8) and 5 classes."""
    torch.manual_seed(4)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 5), nn.Softmax(dim=1)
    )


class TwoInTwoOut(nn.Module):
    """An image plus a float vector in; logits and an embedding out (a dict)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.vec = nn.Linear(6, 8)
        self.head = nn.Linear(16, 4)
        self.embed = nn.Linear(16, 12)

    def forward(self, image: torch.Tensor, vector: torch.Tensor):
        z = torch.cat([self.conv(image), torch.relu(self.vec(vector))], dim=1)
        return {"logits": self.head(z), "embedding": self.embed(z)}


def two_in_two_out() -> nn.Module:
    torch.manual_seed(5)
    return TwoInTwoOut()


def logits_cnn() -> nn.Module:
    """3x16x16 RGB in, 5-class logits out (no softmax)."""
    torch.manual_seed(6)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )


def logits_cnn_10() -> nn.Module:
    """3x16x16 RGB in, 10-class logits out: the pipeline test trains it on an image folder."""
    torch.manual_seed(7)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


# --------------------------------------------------------------------------- any task (issue "any task")


class Tagger(nn.Module):
    """A standard nn.TransformerEncoder over token ids with a padding mask: per-token tag logits."""

    def __init__(self, vocab: int = 50, d: int = 32, tags: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.1, batch_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(d, tags)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(ids), src_key_padding_mask=ids == 0))


def tagger() -> nn.Module:
    torch.manual_seed(8)
    return Tagger()


class ChannelSeg(nn.Module):
    """Per-pixel class = the brightest colour channel (a wide margin, so int8 keeps it): [N,4,H,W] logits
    at the input's own size, whatever it is (named height/width dims)."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.bias.zero_()
            for c in range(3):
                self.mix.weight[c, c] = 4.0
                self.mix.weight[c + 3, c] = -4.0
            self.head.weight.zero_()
            self.head.bias.copy_(torch.tensor([0.5, 0.0, 0.0, 0.0]))
            for c in range(3):
                self.head.weight[c + 1, c] = 2.0
                self.head.weight[c + 1, [k + 3 for k in range(3) if k != c]] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.mix(x)))


def channel_seg() -> nn.Module:
    return ChannelSeg()


class GridDetector(nn.Module):
    """A fixed 4x4 grid of 8x8 anchors over a 32x32 image: boxes (anchor + small offsets, xyxy pixels) and
    per-class scores (sigmoid of a cell's mean colour per channel: class k where channel k is bright)."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(8)
        self.score = nn.Conv2d(3, 3, 1)
        self.offset = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            self.score.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * 12.0)
            self.score.bias.fill_(-6.0)
            self.offset.weight.mul_(0.5)
        ys, xs = torch.meshgrid(torch.arange(4) * 8.0, torch.arange(4) * 8.0, indexing="ij")
        anchors = torch.stack([xs, ys, xs + 8, ys + 8], -1).view(1, 16, 4)
        self.register_buffer("anchors", anchors)

    def forward(self, x: torch.Tensor):
        cells = self.pool(x)
        boxes = self.anchors + self.offset(cells).flatten(2).transpose(1, 2)
        scores = torch.sigmoid(self.score(cells)).flatten(2).transpose(1, 2)
        return {"boxes": boxes, "scores": scores}


def grid_detector() -> nn.Module:
    torch.manual_seed(9)
    return GridDetector()


class Shadowing(nn.Module):
    """Submodules named like GraphModule attributes (meta, graph): ExecuTorch lowering trips on them."""

    def __init__(self) -> None:
        super().__init__()
        self.meta = nn.Linear(16, 8)
        self.graph = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(torch.relu(self.meta(x)))


def shadowing() -> nn.Module:
    torch.manual_seed(10)
    return Shadowing()
