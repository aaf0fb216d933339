"""``tiny-lm``: this project's own small decoder, trained in minutes on CPU on text every machine has.

- Corpus: the Python standard library's docstrings (:mod:`.corpus`), held-out files excluded.
- Tokenizer: a byte-level BPE trained here with the ``tokenizers`` package
  (``<|endoftext|>`` separates documents and is the stop token).
- Model: a Llama-style decoder (RoPE, RMSNorm, SwiGLU, grouped-query attention,
  tied embeddings), built with transformers from :data:`CONFIG`, so it exports
  through exactly the path any ``hf:DIR`` Llama does.
- Run folder: a transformers checkpoint (config.json, generation_config.json,
  model.safetensors, tokenizer.json) plus ``train.json`` (loss curve, held-out
  perplexity, samples), so ``export --run RUN`` and ``--model hf:RUN`` both read it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

EOT = "<|endoftext|>"
CONFIG = {
    "vocab_size": 2048,
    "hidden_size": 192,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 6,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": True,
    "rope_theta": 10000.0,
    "bos_token_id": 0,
    "eos_token_id": 0,
}


def llama_config(**overrides):
    from transformers import LlamaConfig

    cfg = LlamaConfig(**(CONFIG | overrides))
    cfg.architectures = ["LlamaForCausalLM"]
    return cfg


def train_tokenizer(texts, vocab_size: int = CONFIG["vocab_size"]):
    """A byte-level BPE over ``texts`` (id 0 is ``<|endoftext|>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def tiny_lm_folder(random_init: bool) -> Path:
    """``--model tiny-lm --random-init``: a checkpoint folder holding just the config (for speed work)."""
    from ..errors import ConfigError

    if not random_init:
        raise ConfigError(
            "tiny-lm has no weights until it is trained: run `edgeport train --model tiny-lm --out RUN`, then "
            "`edgeport export --run RUN ...` (or pass --random-init for speed work)"
        )
    folder = Path(tempfile.mkdtemp(prefix="edgeport-tiny-lm-"))
    llama_config().save_pretrained(folder)
    return folder


def summary() -> str:
    """What ``edgeport summary --model tiny-lm`` prints: the config and the parameters per module."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config())
    lines = [f"tiny-lm: LlamaForCausalLM, {sum(p.numel() for p in model.parameters()):,} parameters "
             "(embedding tied to the LM head)"]  # fmt: skip
    lines += [f"  {k}: {v}" for k, v in CONFIG.items()]
    for name, child in model.model.named_children():
        lines.append(f"  {name:<14} {sum(p.numel() for p in child.parameters()):>10,}")
    return "\n".join(lines)
