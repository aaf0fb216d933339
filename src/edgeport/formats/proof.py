"""Proof of quantization, shared by the format modules: the failure message and the size check.

The tutorial this project grew from shipped an "optimized" model in which
nothing was quantized.  Each format's ``prove_int8`` reads the file itself
(never the object that produced it), so such a model cannot pass.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ExportError

# Each int8 artifact must be at most this fraction of its fp32 sibling, plus a fixed allowance
# for graph text and quantization parameters (an int8 OpenVINO IR adds ~2 KB of XML per
# FakeQuantize node): the allowance matters only for small models, where it would otherwise
# outweigh the weights, and an fp32 file renamed as int8 still fails from ~46 KiB up (below
# that, the op checks of each format's proof catch it).
MAX_SIZE_RATIO = 0.30
SIZE_ALLOWANCE = 32 << 10


def fail(path, check: str, seen: str, expected: str) -> ExportError:
    return ExportError(
        f"int8 proof failed for {Path(path).name}: check '{check}' - found {seen}, expected {expected}; "
        "the quantizer did not produce an int8 model (report the quantizer settings that produced this file)"
    )


def prove_size(int8_artifact, fp32_artifact, max_ratio: float = MAX_SIZE_RATIO) -> float:
    """``int8 bytes / fp32 bytes`` over every file of each artifact; :class:`ExportError` when the int8
    artifact is larger than ``max_ratio`` of the fp32 one plus :data:`SIZE_ALLOWANCE`."""
    ratio = int8_artifact.total_bytes / max(1, fp32_artifact.total_bytes)
    if int8_artifact.total_bytes > max_ratio * fp32_artifact.total_bytes + SIZE_ALLOWANCE:
        raise fail(
            int8_artifact.file,
            "size",
            f"{ratio * 100:.1f}% of the fp32 artifact {fp32_artifact.file} "
            f"({int8_artifact.total_bytes:,} of {fp32_artifact.total_bytes:,} bytes)",
            f"<= {max_ratio * 100:.0f}% + {SIZE_ALLOWANCE >> 10} KiB of graph text",
        )
    return ratio
