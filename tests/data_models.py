"""Small models for the data-source tests (imported as ``data_models:...``): a keyword spotter on log-mel
features and a token-id text classifier."""

from __future__ import annotations

import torch
from torch import nn


class KwsCNN(nn.Module):
    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def kws_cnn(classes: int = 3) -> nn.Module:
    torch.manual_seed(5)
    return KwsCNN(classes)


class TextClassifier(nn.Module):
    def __init__(self, vocab: int = 32, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(dim=1))


def text_classifier(vocab: int = 32, classes: int = 2) -> nn.Module:
    torch.manual_seed(6)
    return TextClassifier(vocab, classes)


class SegNet(nn.Module):
    """[b, 3, H, W] images -> [b, classes, H, W] per-pixel class scores."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def seg_net(classes: int = 3) -> nn.Module:
    torch.manual_seed(7)
    return SegNet(classes)
