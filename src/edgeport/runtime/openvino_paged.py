"""OpenVINO paged attention for one sequence: the KV cache in blocks this runner owns, as openvino-genai runs it.

A decoder bundle's OpenVINO IR is stateful (the cache is the model's state).
On CPU the runner instead applies OpenVINO's own
``paged_attention_transformation`` when it loads the IR: every
``ScaledDotProductAttention`` over a state becomes a ``PagedAttentionExtension``
reading and writing ``key_cache.i``/``value_cache.i`` tensors in blocks of
(on CPU) 32 positions, and the model takes the token's place in the sequence
(``past_lens``) and the blocks it owns (``block_indices``).  That is the
attention openvino-genai's ``LLMPipeline`` runs on CPU by default; its decode
stays fast as the context grows (the 110M benchmark model, int8, 512-token
prompt: 114 against 92 tokens/s stateful).

One sequence owns blocks ``0 .. ceil(max_context / block) - 1`` in order, so
the block table is a prefix of ``arange``.  The cache tensors are made once,
in the layout and element type the compiled model asks for (on CPU, int8 and
int4 bundles get an u8 cache with per-block scales, as genai's; fp32 asks for
f32).  Nothing is copied between steps.

The IR must have a dynamic batch: the transformation feeds ``input_ids
[tokens]`` as ``[tokens, 1]``.  Bundles exported before that was so have batch
1 baked into their reshapes; their inputs still read ``[?, ?]``, but their cache
variables are ``[1, kv_heads, ?, head_dim]``.  :func:`why_not_paged` finds that
before anything runs (run through the paged kernel, such an IR fails a shape
check with 2 threads, but with 1 it returned empty logits and the process then
crashed), and ``kv_cache="auto"`` runs them stateful as before, saying why in
``describe()``.
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendUnavailableError, ConfigError, InputError, first_line

MODES = ("auto", "paged", "state")
CACHE_PREFIXES = ("key_cache.", "value_cache.")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"kv_cache must be one of {', '.join(MODES)}, got {str(mode)[:40]!r}")
    return mode


def why_not_paged(model, device: str) -> str:
    """'' when ``model`` (the stateful IR, before any change) can run paged on ``device``; else why not."""
    if device != "cpu":
        return f"paged attention is used on cpu only here, not {device}"
    if not any("input_ids" in p.get_names() for p in model.inputs):
        return "the IR has no input_ids input"
    if any(v.get_info().data_shape[0].is_static for v in model.get_variables()):  # [1, kv_heads, ?, head_dim]
        return "the IR fixes its batch at 1; re-export the bundle"
    kinds = {op.get_type_name() for op in model.get_ops()}
    if "ReadValue" not in kinds or "ScaledDotProductAttention" not in kinds:
        return "the IR has no stateful ScaledDotProductAttention to page"
    return ""


def to_paged(model):
    """A paged copy of the stateful ``model`` (the original is left as it was)."""
    from openvino._offline_transformations import paged_attention_transformation

    paged = model.clone()
    paged_attention_transformation(paged)
    if any(op.get_type_name() == "ReadValue" for op in paged.get_ops()):
        raise RuntimeError("some of the cache stayed in the model's state")
    return paged


class PagedCache:
    """The block tensors of one sequence and the per-step inputs that address them."""

    def __init__(self, compiled, max_context: int) -> None:
        import openvino as ov

        self.ports = [p for p in compiled.inputs if p.get_any_name().startswith(CACHE_PREFIXES)]
        if not self.ports:
            raise RuntimeError("the compiled model has no key_cache/value_cache inputs")
        shapes = {}
        for p in self.ports:
            dims = list(p.get_partial_shape())
            if not all(d.is_static for d in dims[1:]):
                raise RuntimeError(f"{p.get_any_name()} has no static block layout ({p.get_partial_shape()})")
            shapes[p.get_any_name()] = [d.get_length() for d in dims[1:]]
        value = next(v for k, v in shapes.items() if k.startswith("value_cache."))
        self.block = int(value[1])  # value_cache [blocks, kv_heads, block, head_dim (+ scales)]
        self.blocks = -(-max_context // self.block)
        self.element = self.ports[0].get_element_type().get_type_name()
        self.tensors = {
            name: ov.Tensor(p.get_element_type(), [self.blocks, *shapes[name]])
            for p in self.ports
            for name in [p.get_any_name()]
        }
        self.table = np.arange(self.blocks, dtype=np.int32)
        self._one = {  # a decode step's inputs, bound once and rewritten in place (see set_step)
            "input_ids": np.zeros(1, np.int64),
            "position_ids": np.zeros(1, np.int64),
            "logits_index": np.zeros((1, 1), np.int64),
            "past_lens": np.zeros(1, np.int32),
            "subsequence_begins": np.array([0, 1], np.int32),
            "block_indices_begins": np.zeros(2, np.int32),
            "max_context_len": np.zeros((), np.int32),
        }
        self._one_bound, self._used = False, -1
        self.bytes = int(sum(t.byte_size for t in self.tensors.values()))
        self.bytes_per_position = self.bytes / (self.blocks * self.block)  # every layer's K and V, scales too

    def bind(self, req) -> None:
        for name, t in self.tensors.items():
            req.set_tensor(name, t)
        self._one_bound = False

    def set_step(self, req, feeds: dict, past: int) -> None:
        """Bind one step's inputs (``feeds`` as the runner's signature has them, batch 1) on ``req``.

        A one-token step with the last token's logits (every decode step) writes into arrays bound once,
        so it sets a tensor only when the context enters a new block; other steps bind fresh arrays."""
        import openvino as ov

        ids, index = feeds["input_ids"], feeds["logits_index"]
        if ids.size == 1 and index.size == 1 and index[0, 0] == 0:
            one = self._one
            if not self._one_bound:
                for name, x in one.items():
                    req.set_tensor(name, ov.Tensor(x, shared_memory=True))
                self._one_bound, self._used = True, -1
            used = self._blocks_used(past, 1)
            one["input_ids"][0] = ids[0, 0]
            one["position_ids"][0] = feeds["position_ids"][0, 0]
            one["past_lens"][0] = past
            one["block_indices_begins"][1] = used
            one["max_context_len"][...] = past + 1
            if used != self._used:
                req.set_tensor("block_indices", ov.Tensor(self.table[:used], shared_memory=True))
                self._used = used
            return
        self._one_bound = False
        step = {
            "input_ids": ids.reshape(-1),
            "position_ids": feeds["position_ids"].reshape(-1),
            "logits_index": index,
            **self.step_inputs(past, int(ids.size)),
        }
        for name, x in step.items():
            req.set_tensor(name, ov.Tensor(x, shared_memory=True))

    def _blocks_used(self, past: int, n: int) -> int:
        """Blocks holding positions ``0 .. past + n - 1``; never more than the table has."""
        used = -(-(past + n) // self.block)
        if used > self.blocks:  # the kernel would read block ids past the table: never let it
            raise InputError(f"{n} tokens at position {past} do not fit the {self.blocks} cache blocks")
        return used

    def step_inputs(self, past: int, n: int) -> dict:
        used = self._blocks_used(past, n)
        return {
            "past_lens": np.array([past], np.int32),
            "subsequence_begins": np.array([0, n], np.int32),
            "block_indices_begins": np.array([0, used], np.int32),
            "block_indices": self.table[:used],
            "max_context_len": np.array(past + n, np.int32),
        }

    def probe(self, req, vocab: int) -> None:
        """Two tokens at position 0 through the paged model: it must answer with the logits the signature
        promises before the runner relies on it."""
        feeds = {  # as the runner's signature has them: batch 1
            "input_ids": np.zeros((1, 2), np.int64),
            "position_ids": np.arange(2, dtype=np.int64)[None],
            "logits_index": np.array([[0, 1]], np.int64),
        }
        try:
            self.set_step(req, feeds, 0)
            req.infer()
        except RuntimeError as exc:  # OpenVINO's message ends with what the kernel found
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise RuntimeError(
                f"a two-token probe failed ({lines[-1] if lines else type(exc).__name__}); re-export the bundle"
            ) from None
        shape = tuple(req.get_tensor("logits").shape)
        if shape != (1, 2, vocab):
            raise RuntimeError(f"logits {shape} for 2 tokens, not (1, 2, {vocab})")

    def describe(self) -> str:
        size = f"{self.bytes / 2**20:.1f} MiB" if self.bytes >= 2**20 else f"{self.bytes / 2**10:.0f} KiB"
        return f"paged (blocks of {self.block} positions, {self.element} cache, {size})"


def paged_failure(key: str, exc: Exception) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"{key}: OpenVINO's paged attention does not take this IR ({first_line(exc)}); run it with "
        "kv_cache='state'"
    )
