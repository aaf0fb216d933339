"""What a decoder is checked on: golden prompts, held-out text, the reference's answers, the gates.

Shared by export (which stores the golden prompts, tokens and text in the
manifest, with each artifact's export-time agreement) and ``verify``.
"""

from __future__ import annotations

import numpy as np

from ..runtime import lm_check
from .reference import greedy_tokens, window_stats

# Default gates (documented in the README; override with --gate NAME=VALUE).
DEFAULT_GATES = {
    "fp32_agreement": 0.999,
    "fp32_greedy": 1,
    "int8_ppl_increase": 0.02,
    "int4_ppl_increase": 0.10,
}
PROMPT_TEXTS = ("Return the", "This module provides", "The following")
PROMPT_IDS = ((1, 2, 3, 4, 5), (100, 7, 300), tuple(range(10, 26)))
GOLDEN_TOKENS = 32
GOLDEN_WINDOW = 128


def gate_name(name: str) -> str:
    """``int8.ppl_increase`` (the --gate spelling of every task) or ``int8_ppl_increase``."""
    prec, dot, metric = str(name).partition(".")
    return f"{prec}_{metric}" if dot else str(name)


def parse_gates(items) -> dict:
    """DEFAULT_GATES updated by ``NAME=VALUE`` strings (or a dict)."""
    from ..errors import ConfigError

    gates = dict(DEFAULT_GATES)
    pairs = items.items() if isinstance(items, dict) else (str(i).partition("=")[::2] for i in items or ())
    for name, value in pairs:
        name = gate_name(name)
        if name not in DEFAULT_GATES:
            raise ConfigError(f"--gate {name}: unknown gate; choose from {', '.join(DEFAULT_GATES)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--gate {name}={value}: expected a number") from None
        if not 0 <= v <= 100:
            raise ConfigError(f"--gate {name}={value}: expected a number between 0 and 100")
        gates[name] = v
    return gates


def golden_prompts(tokenizer, vocab: int) -> list[dict]:
    """Three prompts: text through the tokenizer, else fixed ids (mod the vocabulary)."""
    if tokenizer is not None:
        return [{"text": t, "ids": [int(i) for i in tokenizer.encode(t).ids]} for t in PROMPT_TEXTS]
    return [{"text": None, "ids": [i % vocab for i in ids]} for ids in PROMPT_IDS]


def text_ids(tokenizer, vocab: int, data: str | None, n: int, seed: int = 0) -> tuple[np.ndarray, dict]:
    """``n`` held-out token ids (and their identity): real text through the tokenizer, else seeded random ids."""
    if tokenizer is None:
        if data is not None:
            from ..errors import ConfigError

            raise ConfigError(
                "this model has no tokenizer, so it cannot read --data text; pass a tokenizer.json"
            )
        ids = np.random.default_rng(seed).integers(0, vocab, size=n)
        return ids.astype(np.int64), {
            "kind": "random-tokens",
            "seed": seed,
            "evidence": "random tokens: weak evidence",
        }
    from .corpus import read_text

    text, ident = read_text(data)
    ids = np.asarray(tokenizer.encode(text[: 40 * n]).ids, np.int64)[:n]
    if len(ids) < 2:
        from ..errors import DataError

        raise DataError(f"the eval text ({ident.get('kind')}) holds fewer than 2 tokens")
    ident["tokens"] = int(len(ids))
    return ids, ident


def reference_golden(model, prompts: list[dict], window, new_tokens: int) -> dict:
    """The golden block without the artifacts' rows: reference greedy tokens and the text's argmax/NLL."""
    argmax, nll = window_stats(model, [int(t) for t in window])
    return {
        "prompts": [dict(p, tokens=greedy_tokens(model, p["ids"], new_tokens)) for p in prompts],
        "text": {
            "ids": [int(t) for t in window],
            "prefill": len(window) // 2,
            "reference_argmax": [int(t) for t in argmax],
            "reference_nll": float(np.mean(nll)),
        },
        "new_tokens": new_tokens,
        "margin": lm_check.GOLDEN_MARGIN,
    }


def artifact_row(runner, golden: dict) -> dict:
    """An artifact's export-time figures on the golden text and prompts."""
    text = golden["text"]
    argmax, nll = lm_check.teacher_forced(runner, text["ids"], text["prefill"])
    row = lm_check.compare(argmax, nll, text["reference_argmax"], text["reference_nll"])
    same = sum(lm_check.greedy(runner, p["ids"], len(p["tokens"])) == p["tokens"] for p in golden["prompts"])
    return {"agreement": row["agreement"], "nll": row["nll"], "greedy_identical": int(same)}
