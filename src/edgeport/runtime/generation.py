"""Generate text with a KV cache, torch-free: prefill, then one decode step per token, with sampling.

:func:`generate` drives any decoder runner of :mod:`edgeport.runtime.decoders`
(ONNX Runtime, OpenVINO, ExecuTorch): the prompt is prefilled in one call,
then each new token is sampled from the last logits and fed back.  Sampling
is greedy (``temperature=0``), or temperature with optional top-k and top-p,
from a seeded numpy generator, so a seed gives the same text every time.
It stops at ``max_new_tokens``, at a stop token, or at a stop string.
Every bound is checked before the first model call: a prompt longer than
the context, or ``max_new_tokens`` past the cache, is one :class:`InputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, InputError


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """How the next token is chosen.  ``temperature`` 0 is greedy; top_k 0 and top_p 1.0 turn those off."""

    temperature: float = 0.0  # 0..100
    top_k: int = 0  # 0 (off) or 1..vocab
    top_p: float = 1.0  # (0, 1]
    seed: int | None = None

    def validate(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 100.0):
            raise ConfigError(f"temperature must be between 0 and 100 (0 = greedy), got {self.temperature!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be a whole number >= 0 (0 = off), got {self.top_k!r}")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            raise ConfigError(f"top_p must be in (0, 1] (1 = off), got {self.top_p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def sample(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """One token id from a row of logits."""
    if sampling.greedy:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / sampling.temperature
    if 0 < sampling.top_k < z.size:
        kth = np.partition(z, -sampling.top_k)[-sampling.top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    if sampling.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, sampling.top_p)) + 1]  # the smallest set reaching top_p
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), p.size - 1))


@dataclass
class Generation:
    """What :func:`generate` returns: the prompt's ids, the new ids, their text and why it stopped."""

    prompt_ids: list[int]
    tokens: list[int] = field(default_factory=list)
    text: str | None = None
    stop_reason: str = "max_new_tokens"  # or "stop_token", "stop_string"

    def to_json(self) -> dict:
        return {
            "prompt_ids": self.prompt_ids,
            "tokens": self.tokens,
            "text": self.text,
            "stop_reason": self.stop_reason,
        }


def prompt_ids(runner, prompt) -> list[int]:
    """Token ids of ``prompt`` (text through the bundle's tokenizer, or ids as given), checked against the vocab."""
    if isinstance(prompt, str):
        tok = runner.tokenizer
        if tok is None:
            raise ConfigError(
                f"bundle {runner.bundle.path} has no tokenizer; pass the prompt as token ids (a list of ints)"
            )
        ids = tok.encode(prompt)
    else:
        try:
            ids = [int(t) for t in np.asarray(prompt).reshape(-1)]
        except (TypeError, ValueError):
            raise ConfigError("a prompt must be text or a sequence of token ids") from None
    if not ids:
        raise InputError("the prompt is empty: it must hold at least one token")
    bad = [t for t in ids if not 0 <= t < runner.vocab_size]
    if bad:
        raise InputError(
            f"prompt token id {bad[0]} is outside the model's vocabulary 0..{runner.vocab_size - 1}; "
            "use ids from the model's own tokenizer"
        )
    return ids


def check_room(n_prompt: int, max_new_tokens: int, max_context: int) -> None:
    """The prompt and every new token must fit in the KV cache: one-line :class:`InputError` otherwise."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be a whole number >= 1, got {max_new_tokens!r}")
    if n_prompt > max_context:
        raise InputError(
            f"the prompt is {n_prompt} tokens, longer than the bundle's context of {max_context} tokens; "
            f"shorten it, or re-export with --max-context {n_prompt + max_new_tokens} or more"
        )
    if n_prompt + max_new_tokens > max_context:
        raise InputError(
            f"max_new_tokens {max_new_tokens} after a {n_prompt}-token prompt needs {n_prompt + max_new_tokens} "
            f"positions, past the KV cache's {max_context}; ask for at most {max_context - n_prompt} new tokens, "
            f"or re-export with --max-context {n_prompt + max_new_tokens}"
        )


def stream_tokens(
    runner,
    prompt,
    max_new_tokens: int,
    *,
    sampling: Sampling = Sampling(),
    stop_token_ids: Sequence[int] | None = None,
    ignore_eos: bool = False,
) -> Iterator[int]:
    """Yield each new token id as soon as it is chosen (the prompt's ids first go to ``runner.last_prompt``)."""
    sampling.validate()
    ids = prompt_ids(runner, prompt)
    check_room(len(ids), max_new_tokens, runner.max_context)
    stops = set() if ignore_eos else set(runner.stop_token_ids)
    stops |= {int(t) for t in stop_token_ids or ()}
    rng = np.random.default_rng(sampling.seed)
    runner.last_prompt = ids
    runner.reset()
    logits = runner.forward(np.asarray(ids, np.int64), last_only=True)[-1]
    for i in range(max_new_tokens):
        token = sample(logits, sampling, rng)
        yield token
        if token in stops or i == max_new_tokens - 1:
            return
        logits = runner.forward(np.asarray([token], np.int64), last_only=True)[-1]


def generate(
    runner,
    prompt,
    max_new_tokens: int = 32,
    *,
    temperature: float = 0.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: Sequence | None = None,
    ignore_eos: bool = False,
    on_text: Callable[[str], None] | None = None,
    on_token: Callable[[int], None] | None = None,
) -> Generation:
    """Generate up to ``max_new_tokens`` after ``prompt`` (text or ids); ``on_text`` gets each piece of
    text as it comes (bundles with a tokenizer), ``on_token`` each token id.

    ``stop`` holds stop token ids (ints) and/or stop strings; the model's own
    end-of-text ids stop it too unless ``ignore_eos``.
    """
    stop = list(stop or [])
    stop_ids = [s for s in stop if isinstance(s, (int, np.integer)) and not isinstance(s, bool)]
    stop_texts = [s for s in stop if isinstance(s, str) and s]
    if len(stop_ids) + len(stop_texts) != len(stop):
        raise ConfigError("stop must hold token ids (ints) and/or non-empty strings")
    sampling = Sampling(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    tok = runner.tokenizer
    if stop_texts and tok is None:
        raise ConfigError("stop strings need a bundle with a tokenizer; pass stop token ids instead")
    text_stream = tok.stream() if tok is not None else None
    out = Generation(prompt_ids=[])
    pieces: list[str] = []
    for token in stream_tokens(
        runner, prompt, max_new_tokens, sampling=sampling, stop_token_ids=stop_ids, ignore_eos=ignore_eos
    ):
        out.tokens.append(token)
        if on_token is not None:
            on_token(token)
        if token in stop_ids or (not ignore_eos and token in runner.stop_token_ids):
            out.stop_reason = "stop_token"  # its id ends `tokens`; its text is not part of `text`
            break
        if text_stream is not None:
            piece = text_stream.push(token)
            pieces.append(piece)
            if on_text is not None and piece:
                on_text(piece)
            if stop_texts and any(s in "".join(pieces) for s in stop_texts):
                out.stop_reason = "stop_string"
                break
    out.prompt_ids = list(runner.last_prompt)
    kept = out.tokens[:-1] if out.stop_reason == "stop_token" else out.tokens
    out.text = tok.decode(kept) if tok is not None else None
    return out
