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
