"""Decoder runners: a text-generation bundle's artifact, run one step at a time over its KV cache.

A :class:`DecoderRunner` is a :class:`~edgeport.runtime.base.Runner` (same
lifecycle, same input and output checks against the manifest's specs) with
a cache: :meth:`reset` empties it, :meth:`forward` appends tokens at the next
positions and returns their logits (or only the last token's), and
:meth:`generate` / :meth:`stream` run :mod:`.generation` on top.  ``run(feeds)``
is stateless: it empties the cache first.  One backend subclass per format
lives in :mod:`.decoder_backends`; ``bundle.runner(...)`` returns them for a
text-generation bundle.  torch-free except the ExecuTorch one.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import InputError
from ..specs import BATCH
from . import generation as gen
from .lm_tokenizer import Tokenizer

DECODERS = {
    "onnxruntime": "edgeport.runtime.decoder_backends:OrtDecoder",
    "openvino": "edgeport.runtime.decoder_backends:OpenVinoDecoder",
    "executorch": "edgeport.runtime.decoder_backends:ExecuTorchDecoder",
    "torch": "edgeport.lm.torch_decoder:TorchDecoder",
}


# What verify, bench and selfcheck of a text-generation bundle run by default (torch only when asked for).
DEFAULT_BACKENDS = ("onnxruntime", "openvino", "executorch")


def is_text_generation(bundle) -> bool:
    return bool(getattr(bundle.manifest, "generation", None))


class DecoderMixin:
    """The cache-stepping half every decoder shares; backends implement ``_reset`` and ``_step``."""

    def _init_lm(self) -> None:
        g = self.bundle.manifest.generation
        self.generation = g
        self.vocab_size = int(g["vocab_size"])
        self.max_context = int(g["max_context"])
        self.stop_token_ids = tuple(int(t) for t in g.get("stop_token_ids", []))
        self.position = 0
        self.last_prompt: list[int] = []
        self._tokenizer: Tokenizer | None | bool = False  # False: not read yet
        self._step_lock = threading.RLock()

    @property
    def tokenizer(self) -> Tokenizer | None:
        if self._tokenizer is False:
            self._tokenizer = Tokenizer.from_bundle(self.bundle)
        return self._tokenizer

    def reset(self) -> None:
        """Empty the KV cache: the next :meth:`forward` starts at position 0."""
        self._ensure_loaded()
        with self._step_lock:
            self._reset()
            self.position = 0

    def forward(self, ids, *, last_only: bool = False) -> np.ndarray:
        """Append ``ids`` (1-D) to the cache; logits ``[n or 1, vocab]`` for them (float32)."""
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        n = int(ids.size)
        with self._step_lock:
            if n == 0 or self.position + n > self.max_context:
                raise InputError(
                    f"{self.name}: {n} tokens at position {self.position} do not fit the KV cache of "
                    f"{self.max_context} positions; reset() it or re-export with a larger --max-context"
                )
            if ids.min() < 0 or ids.max() >= self.vocab_size:
                raise InputError(f"{self.name}: token ids must be in 0..{self.vocab_size - 1}")
            pos = np.arange(self.position, self.position + n, dtype=np.int64)[None]
            index = np.array([[n - 1]] if last_only else np.arange(n)[None], dtype=np.int64)
            feeds = {"input_ids": ids[None], "position_ids": pos, "logits_index": index}
            # made here: int64, C-contiguous, batch 1, seq within the context (checked above), so the
            # signature's input checks (tens of microseconds a decode step) would find nothing
            bound = {BATCH: 1, "seq": n, "keep": int(index.shape[1])}
            self._ensure_loaded()
            out = self.signature.check_outputs({"logits": self._step(feeds)}, bound, self.name)
            self.position += n
        return out["logits"][0]

    def _run(self, feeds: dict) -> dict:
        with self._step_lock:
            self._reset()
            self.position = 0
            out = self._step(feeds)
            self.position = int(feeds["input_ids"].shape[1])
        return {"logits": out}

    def generate(self, prompt, max_new_tokens: int = 32, **options) -> gen.Generation:
        """Text or token ids in, a :class:`~.generation.Generation` out (see :func:`.generation.generate`)."""
        self._ensure_loaded()
        with self._step_lock:
            return gen.generate(self, prompt, max_new_tokens, **options)

    def stream(self, prompt, max_new_tokens: int = 32, **options):
        """Yield each new token id as it is chosen (see :func:`.generation.stream_tokens`)."""
        self._ensure_loaded()
        sampling = gen.Sampling(
            **{k: options.pop(k) for k in ("temperature", "top_k", "top_p", "seed") if k in options}
        )
        with self._step_lock:
            yield from gen.stream_tokens(self, prompt, max_new_tokens, sampling=sampling, **options)

    def describe(self) -> dict:
        d = super().describe()
        d["max_context"] = self.max_context
        return d


def decoder_class(backend: str):
    """The decoder runner class of ``backend`` for a text-generation bundle."""
    import importlib

    from ..errors import BackendUnavailableError

    target = DECODERS.get(backend)
    if target is None:
        raise BackendUnavailableError(
            f"backend {backend!r} cannot run a text-generation bundle; use one of {', '.join(DECODERS)}"
        )
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
