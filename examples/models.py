"""Model factories the examples and benchmarks export as ``models:NAME`` (put this folder on PYTHONPATH).

Each is a plain function returning an ``nn.Module``, which is all ``edgeport export --model
pkg.mod:factory`` needs.  Weights come separately (``--weights``, safetensors or a state_dict).
"""

from __future__ import annotations

import torch
from torch import nn


def rgb_digits_cnn(num_classes: int = 10) -> nn.Module:
    """A small RGB CNN for 64x64 images (four stride-2 convolutions, then a linear head); returns logits."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 4 * 4, num_classes),
    )  # fmt: skip


def pooled_rgb_cnn(num_classes: int = 10) -> nn.Module:
    """A small RGB CNN for any image size (three stride-2 convolutions, global average pooling); logits."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )  # fmt: skip


class ImageAndVector(nn.Module):
    """Two inputs (an RGB image and a float vector of metadata), two outputs (logits and an embedding)."""

    def __init__(self, num_classes: int = 4, vector: int = 6, embedding: int = 12) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.vector = nn.Linear(vector, 8)
        self.head = nn.Linear(16, num_classes)
        self.embed = nn.Linear(16, embedding)

    def forward(self, image: torch.Tensor, vector: torch.Tensor) -> dict:
        z = torch.cat([self.image(image), torch.relu(self.vector(vector))], dim=1)
        return {"logits": self.head(z), "embedding": self.embed(z)}


def image_and_vector() -> nn.Module:
    return ImageAndVector()


class TextTagger(nn.Module):
    """Token ids in, one of 5 tags per token out: embeddings (+ learned positions), a 2-layer
    nn.TransformerEncoder (attention, LayerNorm, GELU) with a padding mask (id 0), a linear head."""

    def __init__(self, vocab: int = 40, d: int = 64, tags: int = 5, max_len: int = 128) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(d, tags)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.head(self.enc(self.emb(ids) + self.pos(pos), src_key_padding_mask=ids == 0))


def text_tagger() -> nn.Module:
    torch.manual_seed(12)
    return TextTagger()
