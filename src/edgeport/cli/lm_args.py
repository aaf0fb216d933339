"""Text-generation options of the existing commands, each group added by one line in its parser:
`export`/`pipeline` (:func:`export_args`), `verify` (:func:`verify_args`), `bench` (:func:`bench_args`);
and the configs they become.  argparse only; heavy imports happen inside the functions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .args import bounded_int, csv_list

TASK = "text-generation"


def lm_requested(args) -> bool:
    """Whether a command's options name a decoder-only language model."""
    if getattr(args, "task", None) == TASK:
        return True
    ref = getattr(args, "model_ref", None) or ""
    if ref == "tiny-lm" or ref.startswith("hf:"):
        return True
    run = getattr(args, "run", None)
    return bool(run) and (Path(run) / "config.json").is_file()


def gate_overrides(args) -> dict | None:
    """Only the gates named by --gate NAME=VALUE (the bundle's own gates fill in the rest)."""
    if not getattr(args, "gate", None):
        return None
    from ..lm.evaluate import gate_name, parse_gates

    given = parse_gates(args.gate)
    named = {gate_name(str(g).partition("=")[0]) for g in args.gate}
    return {k: v for k, v in given.items() if k in named}


def verify_args(p) -> None:
    """Nothing of its own: `verify --gate` (args.gate_arg) also names a decoder's gates."""


def export_args(p: argparse.ArgumentParser, *, pipeline: bool = False) -> None:
    """The decoder options of `export` (and `pipeline`), in one group."""
    g = p.add_argument_group("text generation (decoder-only language models: hf:DIR, tiny-lm)")
    # --task text-generation and --gate come from the task group (args.task_args); a decoder's
    # gates are fp32.agreement, fp32.greedy, int8.ppl_increase, int4.ppl_increase.
    g.add_argument(
        "--max-context",
        type=bounded_int(8, 1 << 20),
        default=None,
        help="KV cache positions: prompt + new tokens (default: min(1024, the model's max positions))",
    )
    g.add_argument(
        "--weight-only",
        type=csv_list,
        default=["int8", "int4"],
        help="weight-only precisions besides fp32: int8,int4 or none",
    )
    g.add_argument(
        "--group-size",
        type=bounded_int(16, 1024),
        default=128,
        help="int4 group size (lowered to divide every layer's inputs; recorded per artifact)",
    )
    if pipeline:  # export's own --tokenizer (cli/export_cmds.py) serves decoders too
        g.add_argument(
            "--tokenizer",
            default=None,
            metavar="tokenizer.json",
            help="tokenizers JSON file (default: the checkpoint folder's tokenizer.json)",
        )
        g.add_argument(
            "--steps",
            type=bounded_int(1, 1_000_000),
            default=None,
            help="tiny-lm training steps (default 1200)",
        )
        bench_args(g)


def bench_args(p) -> None:
    p.add_argument(
        "--prompt-lengths",
        type=csv_list,
        default=None,
        help="text-generation bundles: prompt lengths to time (default 16,128,512)",
    )
    p.add_argument(
        "--new-tokens",
        type=bounded_int(2, 4096),
        default=None,
        help="text-generation bundles: tokens generated per timed run (default 32)",
    )
    p.add_argument(
        "--repeats",
        type=bounded_int(1, 100),
        default=None,
        help="text-generation bundles: timed runs per prompt length, median reported (default 3)",
    )


def lm_bench_config(args, threads=None):
    from ..runtime.lm_bench import LMBenchConfig

    kw = {}
    if getattr(args, "prompt_lengths", None):
        kw["prompt_lengths"] = tuple(
            bounded_int(1, 1 << 20, "a prompt length")(t) for t in args.prompt_lengths
        )
    for k in ("new_tokens", "repeats"):
        if getattr(args, k, None):
            kw[k] = getattr(args, k)
    return LMBenchConfig(threads=threads, **kw)


def export_config(args):
    from ..lm.evaluate import parse_gates
    from ..lm.export import LMExportConfig

    weight_only = () if args.weight_only == ["none"] else tuple(args.weight_only)
    kw = {"formats": tuple(args.formats)} if getattr(args, "formats", None) else {}
    return LMExportConfig(
        weight_only=weight_only,
        max_context=args.max_context,
        group_size=args.group_size,
        gates=parse_gates(args.gate or []),
        data=getattr(args, "data", None),
        **kw,
    )
