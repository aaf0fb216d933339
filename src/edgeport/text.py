"""Raw text -> token-id feeds through a ``tokenizer.json`` kept in the bundle (torch-free).

At export, ``--tokenizer tokenizer.json`` (a Hugging Face ``tokenizers``
file) is copied into the bundle as :data:`TOKENIZER_FILE`, hashed like every
file, and recorded in the manifest's ``text`` block:

``tokenizer``     the file entry (path, sha256, bytes)
``input``         the token-id input it feeds; ``mask_input`` / ``type_input``: the attention-mask
                  and token-type inputs, when the model takes them (else null)
``pad_id``        the id padding uses (the tokenizer's own, else its [PAD]/<pad> token, else 0)
``min_length``    ``max_length``: the id input's sequence bounds (a fixed size, or a named dim's)
``vocab_size``    the tokenizer's vocabulary, added tokens included; ``embedding_rows``: the
                  largest embedding table of the model when export could see it (else null)

A tokenizer whose vocabulary is larger than the model's embedding can take is
refused at export.  :class:`TextEncoder` needs the ``tokenizers`` package
(the ``text`` extra) and nothing else: it pads or cuts each batch to the
input's bounds.  This module imports only the standard library and numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ConfigError, InputError

TOKENIZER_FILE = "text/tokenizer.json"
MAX_TOKENIZER_BYTES = 64 << 20
MAX_TEXTS = 100_000
MASK_NAMES = ("attention_mask", "mask", "input_mask")
TYPE_NAMES = ("token_type_ids", "type_ids", "segment_ids")
PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>", "<PAD>")
KEYS = {"tokenizer", "input", "mask_input", "type_input", "pad_id", "min_length", "max_length", "vocab_size"}


def _tokenizers():
    try:
        import tokenizers
    except ImportError:
        raise ConfigError(
            "raw text needs the tokenizers package: pip install 'edgeport[text]' (or pip install tokenizers)"
        ) from None
    return tokenizers


def parse_tokenizer(data: bytes, where: str):
    """A ``tokenizers.Tokenizer`` from the bytes of a tokenizer.json (ConfigError if it is not one)."""
    tok = _tokenizers()
    try:
        return tok.Tokenizer.from_str(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, Exception) as exc:  # noqa: BLE001 - the Rust side raises Exception
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ConfigError(
            f"{where} is not a tokenizer.json the tokenizers package can read ({first})"
        ) from None


def _int_inputs(signature) -> list:
    return [s for s in signature.inputs if s.dtype in ("int64", "int32") and s.rank == 2]


def _bounds(signature, spec) -> tuple[int, int]:
    s = spec.shape[1]
    if isinstance(s, int):
        return s, s
    d = signature.dims[s]
    return max(1, d.min), d.max


def _pad_id(tokenizer) -> int:
    pad = tokenizer.padding
    if pad and isinstance(pad.get("pad_id"), int):
        return int(pad["pad_id"])
    for t in PAD_TOKENS:
        i = tokenizer.token_to_id(t)
        if i is not None:
            return int(i)
    return 0


def text_block(signature, path, embedding_rows: int | None = None) -> tuple[dict, bytes]:
    """(the manifest's ``text`` block without its file entry, the tokenizer bytes) for ``--tokenizer``."""
    p = Path(path)
    where = f"--tokenizer {p}"
    try:
        if p.stat().st_size > MAX_TOKENIZER_BYTES:
            raise ConfigError(
                f"{where} is larger than {MAX_TOKENIZER_BYTES >> 20} MiB; pass a tokenizer.json"
            )
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read ({exc.strerror or exc}); check the path") from None
    tokenizer = parse_tokenizer(data, where)
    ints = _int_inputs(signature)
    named = {s.name: s for s in ints}
    mask = next((named[n] for n in MASK_NAMES if n in named), None)
    types = next((named[n] for n in TYPE_NAMES if n in named), None)
    ids = [s for s in ints if s not in (mask, types)]
    others = [s.name for s in signature.inputs if s not in (*ids[:1], mask, types)]
    if not ids or others:
        raise ConfigError(
            f"{where}: the model's inputs {signature.input_names} are not token ids [batch, seq] (int64/int32) "
            f"plus optional {MASK_NAMES[0]}/{TYPE_NAMES[0]}; raw text cannot feed {others or 'them'}"
        )
    vocab = int(tokenizer.get_vocab_size(with_added_tokens=True))
    if embedding_rows is not None and vocab > embedding_rows:
        raise ConfigError(
            f"{where} has {vocab:,} tokens but the model's largest embedding has {embedding_rows:,} rows; "
            "pass the tokenizer the model was trained with"
        )
    lo, hi = _bounds(signature, ids[0])
    block = {
        "input": ids[0].name,
        "mask_input": mask.name if mask else None,
        "type_input": types.name if types else None,
        "pad_id": _pad_id(tokenizer),
        "min_length": lo,
        "max_length": hi,
        "vocab_size": vocab,
        "embedding_rows": embedding_rows,
    }
    if not 0 <= block["pad_id"] < (embedding_rows or vocab):
        raise ConfigError(f"{where}: pad id {block['pad_id']} is outside the vocabulary (0..{vocab - 1})")
    return block, data


def validate_text_block(t, signature, bad) -> dict:
    """Check a manifest's ``text`` block against the specs; ``bad(where, what)`` makes the error."""
    if not isinstance(t, dict) or set(t) - KEYS - {"embedding_rows"} or KEYS - set(t):
        raise bad("text", f"must hold {', '.join(sorted(KEYS))} (and optionally embedding_rows)")
    names = {s.name: s for s in _int_inputs(signature)}
    if t["input"] not in names:
        raise bad("text.input", "must name an integer [batch, seq] input")
    for k in ("mask_input", "type_input"):
        if t[k] is not None and (t[k] not in names or t[k] == t["input"]):
            raise bad(f"text.{k}", "must be null or name another integer [batch, seq] input")

    def count(k, lo=0, hi=1 << 31):
        v = t.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise bad(f"text.{k}", f"must be a whole number {lo}..{hi}")
        return v

    vocab = count("vocab_size", 1)
    rows = None if t.get("embedding_rows") is None else count("embedding_rows", 1)
    if rows is not None and vocab > rows:
        raise bad("text.vocab_size", f"{vocab} exceeds the embedding's {rows} rows")
    count("pad_id", 0, (rows or vocab) - 1)
    lo, hi = _bounds(signature, names[t["input"]])
    if (count("min_length", 1), count("max_length", 1)) != (lo, hi):
        raise bad("text", f"min_length/max_length must be the input's sequence bounds {lo}..{hi}")
    return t


class TextEncoder:
    """Strings -> the feeds of a text model (ids, and its attention mask / token types if it takes them)."""

    def __init__(self, block: dict, data: bytes, signature, where: str = TOKENIZER_FILE) -> None:
        self.block, self.signature = block, signature
        self.tokenizer = parse_tokenizer(data, where)
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    @property
    def input(self) -> str:
        return self.block["input"]

    def encode(self, texts) -> dict[str, np.ndarray]:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts or len(texts) > MAX_TEXTS or not all(isinstance(t, str) for t in texts):
            raise InputError(f"pass 1..{MAX_TEXTS:,} strings to encode, got {len(texts)} item(s)")
        b = self.block
        enc = self.tokenizer.encode_batch(texts)
        length = min(b["max_length"], max(b["min_length"], max(len(e.ids) for e in enc)))
        ids = np.full((len(enc), length), b["pad_id"], np.int64)
        mask = np.zeros((len(enc), length), np.int64)
        types = np.zeros((len(enc), length), np.int64)
        for i, e in enumerate(enc):
            n = min(length, len(e.ids))
            ids[i, :n], mask[i, :n], types[i, :n] = e.ids[:n], 1, e.type_ids[:n]
        feeds = {b["input"]: ids}
        if b["mask_input"]:
            feeds[b["mask_input"]] = mask
        if b["type_input"]:
            feeds[b["type_input"]] = types
        return {k: v.astype(self.signature.input(k).np_dtype) for k, v in feeds.items()}

    def feeds(self, texts) -> dict[str, np.ndarray]:
        return self.encode(texts)


__all__ = ["TOKENIZER_FILE", "TextEncoder", "parse_tokenizer", "text_block", "validate_text_block"]
