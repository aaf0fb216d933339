"""The tokenizer of a text-generation bundle, through the ``tokenizers`` package (no transformers, no torch).

The bundle carries ``tokenizer.json`` among its checkpoint's files, listed
with its hash; it is read verified and parsed with
``tokenizers.Tokenizer.from_str``.  Its vocabulary must fit the model's.
:class:`TextStream` turns generated ids into text piece by piece, holding
back an incomplete UTF-8 character until its last byte arrives.
"""

from __future__ import annotations

import importlib.util

from ..errors import BackendUnavailableError, BundleError, ConfigError

INSTALL = "pip install 'edgeport[lm]' (installs tokenizers)"


def _tokenizers():
    if importlib.util.find_spec("tokenizers") is None:
        raise BackendUnavailableError(f"text prompts need the tokenizers package: {INSTALL}")
    import tokenizers

    return tokenizers


def parse_tokenizer(text: str | bytes, where: str = "tokenizer.json"):
    """A ``tokenizers.Tokenizer`` from JSON text; :class:`ConfigError` naming ``where`` if it is not one."""
    tk = _tokenizers()
    try:
        return tk.Tokenizer.from_str(text.decode("utf-8") if isinstance(text, bytes) else text)
    except Exception as exc:  # noqa: BLE001 - tokenizers raises its own Exception type
        first = (str(exc).splitlines() or ["unreadable"])[0][:160]
        raise ConfigError(f"{where} is not a tokenizers JSON file ({first}); pass a tokenizer.json") from None


def vocab_size(tokenizer) -> int:
    """Ids the tokenizer can produce: one more than its largest id (added tokens included)."""
    ids = list(tokenizer.get_vocab(with_added_tokens=True).values())
    return (max(ids) + 1) if ids else 0


def check_fits(tokenizer, model_vocab: int, where: str) -> int:
    """The tokenizer's vocabulary size, or :class:`ConfigError` when it has ids the model cannot embed."""
    n = vocab_size(tokenizer)
    if n > model_vocab:
        raise ConfigError(
            f"{where} has a vocabulary of {n} tokens but the model's is {model_vocab}; they do not match: "
            "pass the tokenizer the model was trained with"
        )
    return n


class Tokenizer:
    """``encode(text) -> ids`` and ``decode(ids) -> text`` over a bundle's verified tokenizer.json."""

    def __init__(self, tok, model_vocab: int) -> None:
        self._tok = tok
        self.model_vocab = model_vocab

    @classmethod
    def from_bundle(cls, bundle) -> Tokenizer | None:
        g = bundle.manifest.generation or {}
        t = g.get("tokenizer")
        if not t:
            return None
        data = bundle.read_file(t["file"], t["bytes"], t["sha256"])  # hash checked before parsing
        tok = parse_tokenizer(data, f"{t['file']} of bundle {bundle.path}")
        try:
            check_fits(tok, int(g["vocab_size"]), f"{t['file']} of bundle {bundle.path}")
        except ConfigError as exc:
            raise BundleError(str(exc)) from None
        return cls(tok, int(g["vocab_size"]))

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise ConfigError(f"a prompt must be text or a list of token ids, got {type(text).__name__}")
        return list(self._tok.encode(text).ids)

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def stream(self) -> TextStream:
        return TextStream(self)


class TextStream:
    """Feed ids one at a time; each call returns the text they complete ('' while a character is partial)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tk = tokenizer
        self._ids: list[int] = []
        self._sent = 0  # characters of decode(self._ids) already returned

    def push(self, token: int) -> str:
        self._ids.append(int(token))
        text = self._tk.decode(self._ids)
        if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
            return ""
        piece, self._sent = text[self._sent :], len(text)
        return piece
