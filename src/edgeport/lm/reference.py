"""The PyTorch reference of a decoder: transformers' own forward and greedy ``generate``.

:func:`load_reference` rebuilds the model from a bundle's checkpoint files
(read verified, parsed by transformers from a private temporary folder, no
code run); the rest compute what every artifact is compared with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from ..errors import BundleError
from ..runtime.lm_check import token_stats


def load_reference(bundle):
    """The bundle's reference model (eval, float32) from its hash-checked checkpoint files."""
    from transformers import AutoModelForCausalLM

    from .source import quiet_transformers

    quiet_transformers()
    art = bundle.artifact("torch", "fp32")
    with tempfile.TemporaryDirectory(prefix="edgeport-lm-") as tmp:
        for e in art.files():
            (Path(tmp) / PurePosixPath(e.path).name).write_bytes(bundle.read_file(e.path, e.bytes, e.sha256))
        try:
            model = AutoModelForCausalLM.from_pretrained(
                tmp,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                dtype=torch.float32,
                attn_implementation="sdpa",
            )
        except Exception as exc:  # noqa: BLE001
            raise BundleError(
                f"the bundle's checkpoint does not load in transformers ({str(exc)[:160]})"
            ) from None
    return model.eval()


@torch.no_grad()
def greedy_tokens(model, ids, n: int) -> list[int]:
    """``n`` tokens of transformers' greedy ``generate`` after ``ids`` (never stopping early)."""
    x = torch.tensor([list(ids)], dtype=torch.long)
    out = model.generate(
        x,
        attention_mask=torch.ones_like(x),
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
        num_beams=1,
    )
    return [int(t) for t in out[0, x.shape[1] :]]


@torch.no_grad()
def window_stats(model, ids) -> tuple[np.ndarray, np.ndarray]:
    """(argmax, nll) of the reference's next-token predictions over ``ids`` (one full forward)."""
    x = torch.tensor([list(ids)], dtype=torch.long)
    logits = model(input_ids=x, use_cache=False).logits[0, :-1].float().numpy()
    return token_stats(logits, np.asarray(ids[1:], np.int64))
