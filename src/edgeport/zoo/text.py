"""A BERT-style token tagger: token and learned position embeddings, post-LayerNorm encoder layers
(multi-head self-attention, GELU feed-forward), and a per-token classification head.

One input ``ids [batch, seq]`` (int64) with a dynamic ``seq`` dim, one output
``token_logits [batch, seq, tags]``.  Attention is written out (matmul, softmax, matmul) rather
than fused, so every exporter and quantizer sees plain ops.

``bert-tagger``  BERT-mini sized (4 layers, hidden 256, 4 heads, vocab 30,522, 512 positions) with a
                 9-tag head (CoNLL-style BIO tags): the real architecture, ``seq = 4..512``.
``text-tagger``  the same class at a trainable size (2 layers, hidden 64, vocab 256, 128 positions),
                 trained by ``edgeport train --model text-tagger`` on :mod:`edgeport.zoo.tokens`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..sources.models import ModelSpec, register


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not a multiple of heads {heads}")
        self.heads, self.dh = heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        q, k, v = self.qkv(x).reshape(b, -1, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.dh)), dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, -1, self.heads * self.dh))


class EncoderLayer(nn.Module):
    """BERT's layer: attention, residual, LayerNorm; feed-forward (GELU), residual, LayerNorm."""

    def __init__(self, hidden: int, heads: int, intermediate: int, dropout: float) -> None:
        super().__init__()
        self.attn = SelfAttention(hidden, heads)
        self.norm1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ff = nn.Sequential(nn.Linear(hidden, intermediate), nn.GELU(), nn.Linear(intermediate, hidden))
        self.norm2 = nn.LayerNorm(hidden, eps=1e-12)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ff(x)))


class BertTagger(nn.Module):
    """Token ids ``[batch, seq]`` -> per-token tag logits ``[batch, seq, num_tags]``."""

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden: int = 256,
        layers: int = 4,
        heads: int = 4,
        intermediate: int = 1024,
        max_len: int = 512,
        num_tags: int = 9,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab_size, hidden)
        self.position = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, intermediate, dropout) for _ in range(layers))
        self.head = nn.Linear(hidden, num_tags)
        self.drop = nn.Dropout(dropout)
        for m in self.modules():  # BERT's initialisation
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.word(ids) + self.position.weight[: ids.shape[1]]
        x = self.drop(self.norm(x))
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def text_tagger() -> BertTagger:
    return BertTagger(vocab_size=256, hidden=64, layers=2, heads=4, intermediate=128, max_len=128, num_tags=9)


def tagger_loss(model: nn.Module, ids: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    logits = model(ids)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tags.reshape(-1), ignore_index=-100)


register(
    ModelSpec(
        name="bert-tagger",
        factory=BertTagger,
        task="token",
        inputs=("ids:batch,seq:int64",),
        dims=("seq=4..512",),
        outputs=("token_logits:logits:token_logits",),
        num_classes=9,
        description="BERT-mini-sized encoder (4 layers, hidden 256, 4 heads, vocab 30,522) with a 9-tag "
        "token head; ids [batch, seq] int64, seq 4..512",
    )
)
register(
    ModelSpec(
        name="text-tagger",
        factory=text_tagger,
        task="token",
        inputs=("ids:batch,seq:int64",),
        dims=("seq=4..128@32",),
        outputs=("token_logits:logits:token_logits",),
        num_classes=9,
        description="the bert-tagger architecture at a trainable size (2 layers, hidden 64, vocab 256, "
        "128 positions); trained on synthetic topic-tagged sequences",
        train={"recipe": "token", "epochs": 4, "batch_size": 64, "lr": 3e-3, "samples": 4000},
    )
)
