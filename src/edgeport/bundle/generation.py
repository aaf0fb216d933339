"""The manifest's ``generation`` block: what a text-generation bundle needs beyond its tensor specs.

A decoder-only language model is exported as one graph per format that
takes ``input_ids``, ``position_ids`` and ``logits_index`` (the positions
whose logits are returned) and keeps its key/value cache between calls:
as explicit ``past_*``/``present_*`` tensors (ONNX), as OpenVINO state, or
as ExecuTorch mutable buffers.  The block records the architecture, the
vocabulary, the context bound, the cache layout, the tokenizer file (listed
with its hash among the checkpoint's files), the weight-only quantization
of each artifact, golden prompts and tokens for ``selfcheck`` and the gates.

Every field any reader uses is checked here, one by one; a bad one raises
:class:`BundleError` naming it.  stdlib only.
"""

from __future__ import annotations

TASK = "text-generation"
CACHE_KINDS = ("inputs-outputs", "state", "static-buffers")
MAX_VOCAB = 1 << 22
MAX_CONTEXT = 1 << 20
GATE_NAMES = ("fp32_agreement", "fp32_greedy", "int8_ppl_increase", "int4_ppl_increase")
_ARCH_INTS = ("layers", "heads", "kv_heads", "head_dim", "hidden", "params")
_BLOCK = {"task", "architecture", "vocab_size", "max_context", "cache", "tokenizer", "stop_token_ids"}
_OPTIONAL = {"bos_token_id", "quantization", "golden", "gates", "evidence"}


def _keys(bad, where: str, d, required, optional=()) -> dict:
    if not isinstance(d, dict):
        raise bad(where, f"must be an object, got {type(d).__name__}")
    missing = sorted(set(required) - set(d))
    extra = sorted(str(k)[:40] for k in set(d) - set(required) - set(optional))
    if missing:
        raise bad(where, f"lacks field(s) {', '.join(missing)}")
    if extra:
        raise bad(where, f"has unknown field(s) {', '.join(extra[:5])}")
    return d


def _int(bad, where: str, v, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise bad(where, f"must be a whole number between {lo} and {hi}, got {str(v)[:40]}")
    return v


def _num(bad, where: str, v, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise bad(where, f"must be a number between {lo:g} and {hi:g}, got {str(v)[:40]}")
    return float(v)


def _text(bad, where: str, v, limit: int = 200, *, optional: bool = False):
    if v is None and optional:
        return None
    if not isinstance(v, str) or len(v) > limit or any(ord(c) < 0x20 and c not in "\n\t" for c in v):
        raise bad(where, f"must be text of at most {limit} characters without control characters")
    return v


def _ids(bad, where: str, v, vocab: int, *, lo: int = 0, hi: int = MAX_CONTEXT) -> list[int]:
    if not isinstance(v, list) or not lo <= len(v) <= hi:
        raise bad(where, f"must be a list of {lo}..{hi} token ids")
    for i, t in enumerate(v):
        _int(bad, f"{where}[{i}]", t, 0, vocab - 1)
    return v


def check_generation(g, artifacts, signature, bad) -> dict:
    """Validate the block against the manifest's artifacts and tensor specs; returns it unchanged."""
    _keys(bad, "generation", g, _BLOCK, _OPTIONAL)
    if g["task"] != TASK:
        raise bad("generation.task", f"must be {TASK!r}")
    arch = _keys(
        bad,
        "generation.architecture",
        g["architecture"],
        {"model_type", *_ARCH_INTS},
        {"family", "tied_embeddings"},
    )
    _text(bad, "generation.architecture.model_type", arch["model_type"], 64)
    for k in _ARCH_INTS:
        _int(bad, f"generation.architecture.{k}", arch[k], 1, 1 << 40)
    vocab = _int(bad, "generation.vocab_size", g["vocab_size"], 2, MAX_VOCAB)
    ctx = _int(bad, "generation.max_context", g["max_context"], 2, MAX_CONTEXT)
    _check_specs(bad, signature, vocab, ctx)
    _check_cache(bad, g["cache"], arch)
    _check_tokenizer(bad, g["tokenizer"], artifacts, vocab)
    _ids(bad, "generation.stop_token_ids", g["stop_token_ids"], vocab, hi=64)
    if g.get("bos_token_id") is not None:
        _int(bad, "generation.bos_token_id", g["bos_token_id"], 0, vocab - 1)
    keys = {a.key for a in artifacts}
    for key, q in (g.get("quantization") or {}).items():
        if key not in keys:
            raise bad("generation.quantization", f"names artifact {str(key)[:40]!r}, which the bundle lacks")
        _keys(
            bad,
            f"generation.quantization.{key}",
            q,
            {"method", "bits"},
            {"group_size", "symmetric", "embedding", "lm_head", "tool", "note"},
        )
        _int(bad, f"generation.quantization.{key}.bits", q["bits"], 2, 32)
        if q.get("group_size") is not None:
            _int(bad, f"generation.quantization.{key}.group_size", q["group_size"], 1, 1 << 20)
        for k in ("method", "embedding", "lm_head", "tool", "note"):
            _text(bad, f"generation.quantization.{key}.{k}", q.get(k, ""), 300)
    if g.get("gates") is not None:
        gates = _keys(bad, "generation.gates", g["gates"], (), GATE_NAMES)
        for k, v in gates.items():
            _num(bad, f"generation.gates.{k}", v, 0.0, 100.0)
    if g.get("golden") is not None:
        _check_golden(bad, g["golden"], vocab, ctx, keys)
    _text(bad, "generation.evidence", g.get("evidence", ""), 300)
    return g


def _check_specs(bad, signature, vocab: int, ctx: int) -> None:
    names = [s.name for s in signature.inputs]
    if names != ["input_ids", "position_ids", "logits_index"] or [s.name for s in signature.outputs] != [
        "logits"
    ]:
        raise bad("generation", "needs inputs input_ids, position_ids, logits_index and the output logits")
    if signature.outputs[0].shape[-1] != vocab:
        raise bad("outputs[0].shape", f"must end with the vocabulary size {vocab}")
    if "seq" not in signature.dims or signature.dims["seq"].max > ctx:
        raise bad("dims.seq", f"must exist and be bounded by max_context {ctx}")


def _check_cache(bad, c, arch) -> None:
    _keys(
        bad,
        "generation.cache",
        c,
        {"layout", "dtype", "bytes_per_token", "formats"},
        {"past_inputs", "present_outputs"},
    )
    _text(bad, "generation.cache.layout", c["layout"], 100)
    if c["dtype"] not in ("float32", "float16", "bfloat16"):
        raise bad("generation.cache.dtype", "must be float32, float16 or bfloat16")
    _int(bad, "generation.cache.bytes_per_token", c["bytes_per_token"], 1, 1 << 30)
    formats = _keys(bad, "generation.cache.formats", c["formats"], (), ("onnx", "openvino", "executorch"))
    for k, v in formats.items():
        if v not in CACHE_KINDS:
            raise bad(f"generation.cache.formats.{k}", f"must be one of {', '.join(CACHE_KINDS)}")
    for k in ("past_inputs", "present_outputs"):  # the ONNX graph's explicit cache tensors
        if k not in c:
            continue
        names = c[k]
        if not isinstance(names, list) or len(names) != 2 * arch["layers"]:
            raise bad(f"generation.cache.{k}", "must list one key and one value tensor per layer")
        for i, n in enumerate(names):
            _text(bad, f"generation.cache.{k}[{i}]", n, 128)


def _check_tokenizer(bad, t, artifacts, vocab: int) -> None:
    if t is None:
        return
    _keys(bad, "generation.tokenizer", t, {"file", "sha256", "bytes", "vocab_size"}, {"kind"})
    listed = {e.path: e for a in artifacts for e in a.files()}
    entry = listed.get(t["file"])
    if entry is None or entry.sha256 != t["sha256"] or entry.bytes != t["bytes"]:
        raise bad(
            "generation.tokenizer.file", "must be a file an artifact lists, with the same sha256 and size"
        )
    n = _int(bad, "generation.tokenizer.vocab_size", t["vocab_size"], 1, MAX_VOCAB)
    if n > vocab:
        raise bad("generation.tokenizer.vocab_size", f"is {n}, larger than the model's vocabulary {vocab}")


def _check_golden(bad, gold, vocab: int, ctx: int, keys: set) -> None:
    _keys(
        bad, "generation.golden", gold, {"prompts", "text", "artifacts"}, {"margin", "new_tokens", "evidence"}
    )
    prompts = gold["prompts"]
    if not isinstance(prompts, list) or len(prompts) > 32:
        raise bad("generation.golden.prompts", "must be a list of at most 32 prompts")
    for i, p in enumerate(prompts):
        where = f"generation.golden.prompts[{i}]"
        _keys(bad, where, p, {"ids", "tokens"}, {"text"})
        _text(bad, f"{where}.text", p.get("text"), 2000, optional=True)
        ids = _ids(bad, f"{where}.ids", p["ids"], vocab, lo=1, hi=ctx)
        _ids(bad, f"{where}.tokens", p["tokens"], vocab, hi=ctx - len(ids))
    text = _keys(
        bad, "generation.golden.text", gold["text"], {"ids", "reference_argmax", "reference_nll"}, {"prefill"}
    )
    ids = _ids(bad, "generation.golden.text.ids", text["ids"], vocab, lo=2, hi=ctx)
    arg = _ids(bad, "generation.golden.text.reference_argmax", text["reference_argmax"], vocab, hi=ctx)
    if len(arg) != len(ids) - 1:
        raise bad("generation.golden.text.reference_argmax", "must hold one token per predicted position")
    _num(bad, "generation.golden.text.reference_nll", text["reference_nll"], 0.0, 100.0)
    if "prefill" in text:
        _int(bad, "generation.golden.text.prefill", text["prefill"], 1, len(ids))
    if "margin" in gold:
        _num(bad, "generation.golden.margin", gold["margin"], 0.0, 1.0)
    if "new_tokens" in gold:
        _int(bad, "generation.golden.new_tokens", gold["new_tokens"], 1, ctx)
    for key, row in gold["artifacts"].items():
        if key not in keys:
            raise bad(
                "generation.golden.artifacts", f"names artifact {str(key)[:40]!r}, which the bundle lacks"
            )
        _keys(bad, f"generation.golden.artifacts.{key}", row, {"agreement", "nll"}, {"greedy_identical"})
        _num(bad, f"generation.golden.artifacts.{key}.agreement", row["agreement"], 0.0, 1.0)
        _num(bad, f"generation.golden.artifacts.{key}.nll", row["nll"], 0.0, 100.0)
        if "greedy_identical" in row:
            _int(bad, f"generation.golden.artifacts.{key}.greedy_identical", row["greedy_identical"], 0, 32)
