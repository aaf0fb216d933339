"""Writing a decoder's files into the staging bundle: the reference checkpoint and every format x precision.

Each artifact's ``details`` carries its memory at the context bound: weight
bytes, the KV cache at ``max_context`` positions, their sum, and for ``.pte``
the memory plan (activations plus the static cache, planned at export); and
the weight bytes one decode step reads (the embedding table is skipped, only
one row is read, unless the LM head shares it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..bundle.writer import file_entry, make_artifact
from . import formats as lmf
from . import quant

FILES = {
    "onnx": {"fp32": "onnx/model.onnx", "int8": "onnx/model.int8.onnx", "int4": "onnx/model.int4.onnx"},
    "openvino": {
        "fp32": "openvino/model.xml",
        "int8": "openvino/model.int8.xml",
        "int4": "openvino/model.int4.xml",
    },
    "executorch": {
        "fp32": "executorch/model.pte",
        "int8": "executorch/model.int8.pte",
        "int4": "executorch/model.int4.pte",
    },
}
CACHE = {"onnx": "inputs-outputs", "openvino": "state", "executorch": "static-buffers"}
BITS = {"int8": 8, "int4": 4}


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"export: {msg}", file=sys.stderr, flush=True)


def write_checkpoint(staging: Path, source):
    """(the torch/fp32 artifact: checkpoint/ config, safetensors, tokenizer; the tokenizer's entry or None)."""
    folder = staging / "checkpoint"
    source.model.save_pretrained(folder, safe_serialization=True)
    tok = None
    if source.tokenizer_json is not None:
        (folder / "tokenizer.json").write_text(source.tokenizer_json, encoding="utf-8")
    files = sorted(p.relative_to(staging).as_posix() for p in folder.iterdir() if p.is_file())
    main = next(f for f in files if f.endswith(".safetensors"))
    art = make_artifact(
        staging,
        "torch",
        "fp32",
        main,
        [f for f in files if f != main],
        {"loader": "transformers AutoModelForCausalLM (trust_remote_code=False)"},
    )
    if source.tokenizer_json is not None:
        from ..runtime.lm_tokenizer import vocab_size

        e = file_entry(staging, "checkpoint/tokenizer.json")
        tok = {
            "file": e.path,
            "sha256": e.sha256,
            "bytes": e.bytes,
            "vocab_size": vocab_size(source.tokenizer),
            "kind": "tokenizers JSON",
        }
    return art, tok


def _memory(arch: dict, max_context: int, weights: int, embedding: int, plan: int | None = None) -> dict:
    kv = 2 * arch["layers"] * arch["kv_heads"] * arch["head_dim"] * 4 * max_context
    d = {
        "weights_bytes": weights,
        "kv_cache_bytes_at_max_context": kv,
        "memory_at_max_context_bytes": weights + (plan if plan is not None else kv),
        "decode_weight_bytes_per_token": weights - (0 if arch["tied_embeddings"] else embedding),
    }
    if plan is not None:
        d["memory_plan_bytes"] = plan
    return d


def _artifact(staging: Path, fmt: str, precision: str, arch, max_context, emb_bytes, t0, extra_details=None):
    rel = FILES[fmt][precision]
    extra = [rel[: -len(".xml")] + ".bin"] if fmt == "openvino" else []
    extra += [
        p.relative_to(staging).as_posix() for p in (staging / rel).parent.glob(Path(rel).name + ".data")
    ]
    weights = sum((staging / f).stat().st_size for f in [rel, *extra])
    details = {
        "cache": CACHE[fmt],
        "max_context": max_context,
        "export_seconds": round(time.perf_counter() - t0, 1),
    }
    plan = (extra_details or {}).get("memory_plan_bytes")
    details |= _memory(arch, max_context, weights, emb_bytes, plan) | (extra_details or {})
    return make_artifact(staging, fmt, precision, rel, extra, details)


def _embedding_bytes(arch: dict, vocab: int, fmt: str, precision: str) -> int:
    per = 1 if (fmt == "openvino" and precision != "fp32") else 4  # NNCF stores it int8; the others keep fp32
    return vocab * arch["hidden"] * per


def write_formats(staging: Path, source, arch: dict, max_context: int, config, progress: bool):
    """(artifacts, quantization record per artifact key) for every format x precision asked for."""
    arts, records = [], {}
    precisions = ("fp32", *config.weight_only)
    group = quant.group_size(source.model, config.group_size)
    vocab = source.vocab_size
    program = ov_base = None
    if {"onnx", "openvino"} & set(config.formats):
        _say(progress, "torch.export of the decoder with explicit KV cache tensors")
        program = lmf.cache_io_program(source.model, arch, max_context)
    if "openvino" in config.formats:
        ov_base = lmf.openvino_model(program, arch)
    for fmt in config.formats:
        for prec in precisions:
            t0 = time.perf_counter()
            _say(progress, f"{fmt}/{prec}")
            rel = FILES[fmt][prec]
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            extra = None
            if fmt == "onnx":
                if prec == "fp32":
                    lmf.write_onnx(program, arch, staging / rel)
                else:
                    records[f"onnx/{prec}"] = quant.onnx_weight_only(
                        staging / FILES["onnx"]["fp32"],
                        staging / rel,
                        BITS[prec],
                        group,
                        config.onnx_accuracy_level,
                    )
            elif fmt == "openvino":
                model = ov_base.clone()
                if prec != "fp32":
                    model, records[f"openvino/{prec}"] = quant.openvino_weight_only(model, BITS[prec], group)
                lmf.save_openvino(model, staging / rel)
            else:
                qfn = None
                if prec != "fp32":
                    qfn, records[f"executorch/{prec}"] = quant.executorch_quantizer(BITS[prec], group)
                data, extra = lmf.executorch_program(source.model, arch, max_context, qfn)
                (staging / rel).write_bytes(data)
            emb = _embedding_bytes(arch, vocab, fmt, prec)
            arts.append(_artifact(staging, fmt, prec, arch, max_context, emb, t0, extra))
    return arts, records
