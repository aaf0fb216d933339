"""``edgeport train --model tiny-lm``: train :mod:`.tinylm` on the standard library's docstrings.

AdamW with linear warm-up and cosine decay, random windows of ``seq_len + 1``
tokens from the training split (seeded), held-out perplexity every
``eval_every`` steps on contiguous windows of the held-out files.  The run
folder is written atomically; ``train.json`` holds the curve, the final
held-out perplexity and a greedy sample.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import fsutil
from ..errors import ConfigError
from . import tinylm
from .corpus import SEPARATOR, stdlib_docstrings

SAMPLE_PROMPTS = ("Return the", "This module provides", "The following")


@dataclass(frozen=True, kw_only=True)
class LMTrainConfig:
    steps: int = 1200  # 1..1,000,000
    batch_size: int = 16  # 1..4096 windows per step
    seq_len: int = 128  # 8..max positions
    lr: float = 3e-3  # peak, (0, 1]
    warmup: int = 100
    weight_decay: float = 0.1
    seed: int = 0
    threads: int | None = None
    eval_every: int = 200
    eval_tokens: int = 16384

    def validate(self) -> None:
        checks = [
            (1 <= self.steps <= 1_000_000, "--steps must be 1..1,000,000"),
            (1 <= self.batch_size <= 4096, "--batch-size must be 1..4096"),
            (8 <= self.seq_len <= tinylm.CONFIG["max_position_embeddings"], "--seq-len must be 8..1024"),
            (0 < self.lr <= 1, "--lr must be in (0, 1]"),
            (self.threads is None or 1 <= self.threads <= 256, "--threads must be 1..256"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"train: {msg}", file=sys.stderr, flush=True)


def _ids(tok, docs: list[str]) -> np.ndarray:
    eot = tok.token_to_id(tinylm.EOT)
    out = []
    for enc in tok.encode_batch(docs):
        out += [*enc.ids, eot]
    return np.asarray(out, np.int64)


@torch.no_grad()
def heldout_perplexity(model, ids: np.ndarray, seq_len: int, limit: int) -> float:
    model.eval()
    total, n = 0.0, 0
    for a in range(0, min(len(ids), limit) - seq_len - 1, seq_len):
        x = torch.from_numpy(ids[a : a + seq_len + 1])[None]
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
        total += float(torch.nn.functional.cross_entropy(logits[0], x[0, 1:], reduction="sum"))
        n += seq_len
    model.train()
    return math.exp(total / max(n, 1))


def _lr(step: int, config: LMTrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    t = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def _loop(model, train: np.ndarray, heldout: np.ndarray, config: LMTrainConfig, progress: bool) -> list[dict]:
    from tqdm import tqdm

    opt = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95)
    )
    rng = np.random.default_rng(config.seed)
    history, losses = [], []
    bar = tqdm(
        range(config.steps), desc="tiny-lm", unit="step", file=sys.stderr, disable=not progress, leave=False
    )
    model.train()
    for step in bar:
        starts = rng.integers(0, len(train) - config.seq_len - 1, size=config.batch_size)
        x = torch.from_numpy(np.stack([train[s : s + config.seq_len + 1] for s in starts]))
        for group in opt.param_groups:
            group["lr"] = _lr(step, config)
        loss = model(input_ids=x[:, :-1], labels=x[:, :-1], use_cache=False).loss  # HF shifts the labels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            ppl = heldout_perplexity(model, heldout, config.seq_len, config.eval_tokens)
            history.append(
                {"step": step + 1, "train_loss": float(np.mean(losses[-50:])), "heldout_perplexity": ppl}
            )
            bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", ppl=f"{ppl:.1f}")
    bar.close()
    return history


def train_tiny_lm(config: LMTrainConfig, *, out, force: bool = False, progress: bool = True) -> dict:
    """Train tiny-lm into the run folder ``out``; returns its train.json dict."""
    from transformers import LlamaForCausalLM

    config.validate()
    target = Path(out)
    fsutil.clean_leftovers(target)
    fsutil.prepare_target(target, force, "run")
    if config.threads:
        torch.set_num_threads(config.threads)
    t0 = time.perf_counter()
    train_docs, held_docs = stdlib_docstrings("train"), stdlib_docstrings("heldout")
    tok = tinylm.train_tokenizer(train_docs)
    train, heldout = _ids(tok, train_docs), _ids(tok, held_docs)
    _say(
        progress,
        f"{len(train_docs)} docstrings, {len(train):,} training tokens, {len(heldout):,} held-out "
        f"({time.perf_counter() - t0:.1f} s to read and tokenize)",
    )
    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(tinylm.llama_config())
    t1 = time.perf_counter()
    history = _loop(model, train, heldout, config, progress)
    seconds = time.perf_counter() - t1
    model.eval()
    from .reference import greedy_tokens

    samples = {p: tok.decode(greedy_tokens(model, tok.encode(p).ids, 40)) for p in SAMPLE_PROMPTS}
    info = {
        "model": "tiny-lm",
        "params": int(sum(p.numel() for p in model.parameters())),
        "config": tinylm.CONFIG,
        "train": asdict(config),
        "corpus": {
            "kind": "stdlib docstrings",
            "train_documents": len(train_docs),
            "heldout_documents": len(held_docs),
            "train_tokens": int(len(train)),
            "heldout_tokens": int(len(heldout)),
            "separator": SEPARATOR,
        },
        "tokens_seen": config.steps * config.batch_size * config.seq_len,
        "train_seconds": seconds,
        "heldout_perplexity": history[-1]["heldout_perplexity"],
        "history": history,
        "samples": samples,
    }
    with fsutil.staging_dir(target, "run") as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tok.save(str(staging / "tokenizer.json"))
        (staging / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
