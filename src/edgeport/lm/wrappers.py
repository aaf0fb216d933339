"""The two graphs a decoder is exported as: explicit cache tensors, and a static cache in buffers.

Both take ``input_ids [1, seq]``, ``position_ids [1, seq]`` and
``logits_index [1, keep]`` (positions within this call whose logits are
returned: all of them to score text, the last one to generate, which skips
the LM head for the rest of a long prompt) and return ``logits [1, keep, vocab]``.

- :class:`CacheIO` adds ``past_key.i``/``past_value.i`` inputs and
  ``present_key.i``/``present_value.i`` outputs ``[1, kv_heads, len, head_dim]``.
  The cache is a transformers ``DynamicCache`` whose layers are preset
  (``DynamicCache.update`` would start from a 1-D empty tensor, which
  OpenVINO's converter refuses).  ONNX takes it as is; OpenVINO makes it stateful.
- :class:`StaticCacheLM` keeps a ``StaticCache`` of ``max_context`` positions in
  mutable buffers, for ExecuTorch (like transformers' own ExecuTorch recipe).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache, StaticCache


def cache_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_{kv}.{i}" for i in range(layers) for kv in ("key", "value")]
    return past, [n.replace("past_", "present_") for n in past]


class _Head(nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.body = model.base_model  # LlamaModel, GPT2Model, ... (shares the weights)
        self.head = model.get_output_embeddings()
        self.config = model.config.get_text_config()

    def logits(self, hidden: torch.Tensor, logits_index: torch.Tensor) -> torch.Tensor:
        # The call's tokens in order, whatever the graph's split into batch rows and positions: OpenVINO's
        # paged attention feeds each token as its own batch row ([tokens, 1]); every other runner feeds [1, seq].
        tokens = hidden.reshape(1, -1, hidden.shape[-1])
        return self.head(tokens.index_select(1, logits_index[0]))


class CacheIO(_Head):
    def forward(self, input_ids, position_ids, logits_index, *past):
        cache = DynamicCache(config=self.config)
        for i, layer in enumerate(cache.layers):
            layer.keys, layer.values = past[2 * i], past[2 * i + 1]
            layer.device, layer.dtype, layer.is_initialized = input_ids.device, past[0].dtype, True
        out = self.body(input_ids=input_ids, position_ids=position_ids, cache=cache, use_cache=True)
        present = [t for layer in cache.layers for t in (layer.keys, layer.values)]
        return (self.logits(out.last_hidden_state, logits_index), *present)


class StaticCacheLM(_Head):
    def __init__(self, model, max_context: int, kv_heads: int, head_dim: int) -> None:
        super().__init__(model)
        self.cache = StaticCache(max_cache_len=max_context, config=self.config)
        self.cache.early_initialization(1, kv_heads, head_dim, torch.float32, torch.device("cpu"))
        for i, layer in enumerate(self.cache.layers):  # buffers, so torch.export sees them as mutable state
            self.register_buffer(f"key_cache_{i}", layer.keys, persistent=False)
            self.register_buffer(f"value_cache_{i}", layer.values, persistent=False)
            self.register_buffer(f"cache_length_{i}", layer.cumulative_length, persistent=False)

    def forward(self, input_ids, position_ids, logits_index):
        for layer in self.cache.layers:  # write at the positions given: a new prompt starts again at 0
            layer.cumulative_length.copy_(position_ids[0, 0])
        out = self.body(input_ids=input_ids, position_ids=position_ids, cache=self.cache, use_cache=True)
        return self.logits(out.last_hidden_state, logits_index)


def examples(arch: dict, max_context: int) -> tuple[tuple, dict, tuple]:
    """(example inputs, dynamic shapes, example for the static wrapper) for ``torch.export``.

    :class:`CacheIO`'s batch is dynamic too, though runners feed one sequence: OpenVINO's
    ``paged_attention_transformation`` turns ``input_ids [tokens]`` into ``[tokens, 1]`` (one row per
    token), which a graph with batch 1 baked into its reshapes cannot take.
    """
    seq = torch.export.Dim("seq", min=1, max=max_context)
    keep = torch.export.Dim("keep", min=1, max=max_context)
    past = torch.export.Dim("past", min=0, max=max_context - 1)
    batch = torch.export.Dim("batch", min=1, max=max_context)
    ids = torch.zeros(2, 3, dtype=torch.long)
    pos = torch.arange(4, 7)[None].repeat(2, 1)
    idx = torch.arange(3)[None]
    kv = tuple(torch.zeros(2, arch["kv_heads"], 4, arch["head_dim"]) for _ in range(2 * arch["layers"]))
    shapes = {
        "input_ids": {0: batch, 1: seq},
        "position_ids": {0: batch, 1: seq},
        "logits_index": {1: keep},
        "past": tuple({0: batch, 2: past} for _ in kv),
    }
    static = (ids[:1], torch.arange(3)[None], idx)
    return (ids, pos, idx, *kv), shapes, static
