"""Proof of quantization, shared by the format modules: the failure message and the size check.

The tutorial this project grew from shipped an "optimized" model in which
nothing was quantized.  Each format's ``prove_int8`` reads the file itself
(never the object that produced it), so such a model cannot pass.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError

# Each int8 artifact must be at most this fraction of its fp32 sibling...
MAX_SIZE_RATIO = 0.30
# ... when the fp32 artifact is at least this large: below it, graph text and quantization
# parameters outweigh the weights, and the ratio proves nothing (it is still recorded).
MIN_BYTES_FOR_SIZE_CHECK = 256 << 10


def fail(path, check: str, seen: str, expected: str) -> ExportError:
    return ExportError(
        f"int8 proof failed for {Path(path).name}: check '{check}' - found {seen}, expected {expected}; "
        "the quantizer did not produce an int8 model (report the quantizer settings that produced this file)"
    )


def prove_size(int8_artifact, fp32_artifact, max_ratio: float = MAX_SIZE_RATIO) -> float:
    """``int8 bytes / fp32 bytes`` over every file of each artifact; :class:`ExportError` above ``max_ratio``
    (for fp32 artifacts of at least :data:`MIN_BYTES_FOR_SIZE_CHECK`)."""
    ratio = int8_artifact.total_bytes / max(1, fp32_artifact.total_bytes)
    if ratio > max_ratio and fp32_artifact.total_bytes >= MIN_BYTES_FOR_SIZE_CHECK:
        raise fail(
            int8_artifact.file,
            "size",
            f"{ratio * 100:.1f}% of the fp32 artifact {fp32_artifact.file}",
            f"<= {max_ratio * 100:.0f}%",
        )
    return ratio
