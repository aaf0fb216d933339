"""``export_lm``: a decoder-only LM -> one bundle with ONNX, OpenVINO and ExecuTorch decoders, fp32 and
weight-only int8/int4, checked against transformers before the bundle is swapped in.

Stages: resolve the model; write the reference checkpoint (config, safetensors,
tokenizer); export each format (:mod:`.formats`) and quantize it (:mod:`.quant`);
compute the golden prompts, tokens and text with transformers; run every
artifact through the runtime's decoders on them; fail (``ParityError``, no
bundle written) when an fp32 artifact's greedy tokens or next-token agreement
differ from PyTorch; write the manifest with its ``generation`` block.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import fsutil
from ..bundle import RANDOM_WEIGHTS_WARNING, SCHEMA_VERSION, Bundle, Manifest, load_bundle
from ..bundle.writer import write_manifest
from ..errors import ConfigError, ParityError
from ..specs import BATCH, Dim, Signature, TensorSpec
from . import TASK
from .evaluate import (
    DEFAULT_GATES,
    GOLDEN_TOKENS,
    GOLDEN_WINDOW,
    artifact_row,
    golden_prompts,
    reference_golden,
    text_ids,
)
from .writers import write_checkpoint, write_formats

LM_FORMATS = ("onnx", "openvino", "executorch")
WEIGHT_ONLY = ("int8", "int4")


@dataclass(frozen=True, kw_only=True)
class LMExportConfig:
    formats: tuple[str, ...] = LM_FORMATS
    weight_only: tuple[str, ...] = WEIGHT_ONLY  # int8 and/or int4, besides fp32
    max_context: int | None = None  # default: min(1024, the model's max positions); 8..1,048,576
    group_size: int = 128  # int4 groups (a power of two, 16..1024); lowered per model to divide every Linear
    onnx_accuracy_level: int = 4  # MatMulNBits compute: 0 fp32, 4 int8 (onnxruntime-genai's CPU default)
    gates: dict = field(default_factory=lambda: dict(DEFAULT_GATES))
    data: str | None = None  # held-out text for the golden window: stdlib or text:FILE
    threads: int | None = None

    def validate(self) -> None:
        bad = [f for f in self.formats if f not in LM_FORMATS]
        if bad or not self.formats:
            raise ConfigError(
                f"--formats {','.join(bad) or '(none)'}: text-generation bundles are exported to "
                f"{', '.join(LM_FORMATS)} (TorchScript is not offered for decoders)"
            )
        bad = [p for p in self.weight_only if p not in WEIGHT_ONLY]
        if bad:
            raise ConfigError(f"--weight-only {','.join(bad)}: choose from {', '.join(WEIGHT_ONLY)} or none")
        if self.max_context is not None and not 8 <= self.max_context <= 1 << 20:
            raise ConfigError(f"--max-context must be between 8 and 1,048,576, got {self.max_context}")
        if self.group_size not in (16, 32, 64, 128, 256, 512, 1024):
            raise ConfigError(f"--group-size must be a power of two from 16 to 1024, got {self.group_size}")
        if self.onnx_accuracy_level not in (0, 1, 2, 3, 4):
            raise ConfigError(f"onnx accuracy level must be 0..4, got {self.onnx_accuracy_level}")


def lm_signature(vocab: int, max_context: int) -> Signature:
    dims = {BATCH: Dim(BATCH, 1, 1), "seq": Dim("seq", 1, max_context), "keep": Dim("keep", 1, max_context)}
    return Signature(
        inputs=(
            TensorSpec(
                "input_ids", "int64", (BATCH, "seq"), description="token ids appended to the KV cache"
            ),
            TensorSpec(
                "position_ids",
                "int64",
                (BATCH, "seq"),
                description="their positions: cache length + 0..seq-1",
            ),
            TensorSpec(
                "logits_index",
                "int64",
                (BATCH, "keep"),
                description="positions (0..seq-1) whose logits to return",
            ),
        ),
        outputs=(TensorSpec("logits", "float32", (BATCH, "keep", vocab), kind="logits"),),
        dims=dims,
    )


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"export: {msg}", file=sys.stderr, flush=True)


def _max_context(source, wanted: int | None) -> int:
    limit = source.max_positions
    if wanted is None:
        return min(1024, limit)
    if wanted > limit:
        raise ConfigError(
            f"--max-context {wanted} is past the model's {limit} positions (max_position_embeddings); "
            f"choose at most {limit}"
        )
    return wanted


def generation_block(source, arch: dict, max_context: int, tokenizer_entry, config) -> dict:
    from .wrappers import cache_names

    past, present = cache_names(arch["layers"])
    kinds = {"onnx": "inputs-outputs", "openvino": "state", "executorch": "static-buffers"}
    return {
        "task": TASK,
        "architecture": arch,
        "vocab_size": source.vocab_size,
        "max_context": max_context,
        "cache": {
            "layout": "[batch, kv_heads, positions, head_dim] per layer, one key and one value tensor",
            "dtype": "float32",
            "bytes_per_token": 2 * arch["layers"] * arch["kv_heads"] * arch["head_dim"] * 4,
            "formats": {f: kinds[f] for f in config.formats},
            "past_inputs": past,
            "present_outputs": present,
        },
        "tokenizer": tokenizer_entry,
        "stop_token_ids": source.stop_token_ids(),
        "bos_token_id": source.bos_token_id(),
        "quantization": {},
        "gates": dict(config.gates),
    }


def export_lm(
    ref: str,
    out,
    *,
    config: LMExportConfig = LMExportConfig(),
    random_init: bool = False,
    tokenizer: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Bundle:
    """Export the decoder ``ref`` names (hf:DIR, hf:ORG/NAME, tiny-lm, or a tiny-lm run folder) to ``out``."""
    from .source import resolve_lm

    t0 = time.perf_counter()
    config.validate()
    if out is None:
        raise ConfigError("--out is required: the folder to write the bundle to")
    target = Path(out)
    fsutil.clean_leftovers(target)
    fsutil.prepare_target(target, force, "bundle")
    source = resolve_lm(ref, random_init=random_init, tokenizer=tokenizer)
    arch = source.architecture()
    max_context = _max_context(source, config.max_context)
    _say(progress, f"{source.ref}: {arch['model_type']}, {arch['params']:,} params, context {max_context}")
    warnings = [RANDOM_WEIGHTS_WARNING] if random_init else []
    if source.tokenizer is None:
        warnings.append("no tokenizer.json: prompts are token ids")
    with fsutil.staging_dir(target, "bundle") as staging:
        ckpt, tok_entry = write_checkpoint(staging, source)
        gen = generation_block(source, arch, max_context, tok_entry, config)
        signature = lm_signature(source.vocab_size, max_context)
        arts, quant = write_formats(staging, source, arch, max_context, config, progress)
        gen["quantization"] = quant
        artifacts = (ckpt, *arts)
        _say(progress, "golden prompts and text: transformers greedy generate and teacher forcing")
        golden, ident = _golden(source, config, max_context)
        manifest = Manifest(
            schema_version=SCHEMA_VERSION, model=source.ref, signature=signature, preprocessing=None,
            labels=(), artifacts=artifacts, provenance=dict(source.provenance), environment={}, parity={},
            random_init=random_init, warnings=tuple(warnings), data={"golden_text": ident},
            generation=gen | {"golden": golden | {"artifacts": {}}, "evidence": ident["evidence"]},
        )  # fmt: skip
        rows = _check_artifacts(Bundle(staging, manifest, trusted=True), golden, config, progress)
        from ..host import device_info

        manifest = manifest.replace(
            environment=device_info(),
            parity={"text_generation": rows, "passed": True},
            generation=manifest.generation | {"golden": golden | {"artifacts": rows}},
        )
        write_manifest(staging, manifest)
    bundle = load_bundle(target)
    bundle.trusted = True
    _say(
        progress,
        f"wrote {target} in {time.perf_counter() - t0:.1f} s ({', '.join(a.key for a in bundle.artifacts)})",
    )
    return bundle


def _golden(source, config: LMExportConfig, max_context: int) -> tuple[dict, dict]:
    """(golden prompts and held-out text with transformers' greedy tokens and stats, the text's identity)."""
    window, ident = text_ids(
        source.tokenizer, source.vocab_size, config.data, min(GOLDEN_WINDOW, max_context)
    )
    prompts = golden_prompts(source.tokenizer, source.vocab_size)
    new = min(GOLDEN_TOKENS, max_context - max(len(p["ids"]) for p in prompts))
    return reference_golden(source.model, prompts, window, new) | {"evidence": ident["evidence"]}, ident


def _check_artifacts(bundle: Bundle, golden: dict, config: LMExportConfig, progress: bool) -> dict:
    """Every artifact on the golden text and prompts; ParityError when an fp32 one leaves PyTorch."""
    from ..format_registry import info
    from ..runtime.decoders import decoder_class
    from ..runtime.lm_check import gate_reasons

    rows, failures = {}, []
    for art in bundle.artifacts:
        if art.format == "torch":
            continue
        backend = info(art.format).backend
        _say(progress, f"checking {art.key} on {backend}")
        with decoder_class(backend)(bundle, precision=art.precision, threads=config.threads) as runner:
            row = artifact_row(runner, golden)
        rows[art.key] = row
        if art.precision == "fp32":
            check = {
                "agreement": row["agreement"],
                "greedy_identical": row["greedy_identical"],
                "greedy_total": len(golden["prompts"]),
            }
            failures += [f"{art.key}: {r}" for r in gate_reasons("fp32", check, config.gates)]
    if failures:
        raise ParityError("fp32 decoder differs from PyTorch: " + "; ".join(failures), failures)
    return rows
