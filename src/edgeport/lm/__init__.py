"""Small decoder-only language models: source, export with a KV cache, weight-only quantization,
verification against PyTorch, training of the ``tiny-lm`` demo.  The export half: imports torch.

The torch-free half (generate, decoders, tokenizer, bench) lives in :mod:`edgeport.runtime`.
"""

from __future__ import annotations

TASK = "text-generation"
