"""``edgeport.verify``: one entry point for every bundle.

A text-generation bundle is checked token by token against ``transformers`` (:mod:`edgeport.lm.verify`:
agreement under teacher forcing, perplexity, greedy text); every other bundle streams its eval data
through each runner against PyTorch, judged by its task's gates (:mod:`edgeport.runtime.verify`).
This module sits above both, so neither imports the other.
"""

from __future__ import annotations


def verify(
    bundle_or_path,
    *,
    data=None,
    data_dir=None,
    backends=None,
    precisions=None,
    devices=None,
    atol: float | None = None,
    max_accuracy_drop: float | None = None,
    gates: dict | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    max_pixels: int | None = None,
) -> dict:
    """Verify every selected runner of a bundle; the report dict (``report["passed"]``, ``report["rows"]``).

    See :func:`edgeport.runtime.verify.verify` for the arguments; for a text-generation bundle
    ``limit`` bounds the held-out tokens and ``gates`` names its gates (``int8.ppl_increase`` ...).
    """
    from .runtime.plan import open_bundle

    bundle = open_bundle(bundle_or_path)
    if getattr(bundle.manifest, "generation", None):
        from .lm.verify import verify_lm

        sel = {"backends": backends, "precisions": precisions, "devices": devices}
        named = {k: v for k, v in (gates or {}).items() if v is not None}
        return verify_lm(bundle, data=data, **sel, gates=named, tokens=limit, progress=progress)
    from .runtime.verify import verify as verify_task

    return verify_task(
        bundle, data=data, data_dir=data_dir, backends=backends, precisions=precisions, devices=devices,
        atol=atol, max_accuracy_drop=max_accuracy_drop, gates=gates, batch_size=batch_size, limit=limit,
        progress=progress, max_pixels=max_pixels,
    )  # fmt: skip


__all__ = ["verify"]
