"""Text-generation commands and options: ``generate``, and the decoder branches of export, train,
pipeline, verify and bench (their parsers add :func:`export_args` and friends in one line each).

``generate`` is on the light path: numpy + onnxruntime/openvino + tokenizers, no torch.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import safe_text
from .args import _Formatter, bounded_float, bounded_int, csv_list, seed_int, threads_int, trust_arg
from .lm_args import (  # noqa: F401  (the other commands reach the option groups through this module)
    TASK,
    bench_args,
    export_args,
    export_config,
    gate_overrides,
    lm_bench_config,
    lm_requested,
    verify_args,
)


def cmd_export_lm(args: argparse.Namespace) -> int:
    from ..bundle.describe import generation_lines
    from ..lm.export import export_lm
    from .output import print_bundle

    ref = args.model_ref or args.run
    if not ref:
        from ..errors import ConfigError

        raise ConfigError("--task text-generation needs --model hf:DIR (or tiny-lm) or --run RUN")
    bundle = export_lm(
        ref,
        args.out,
        config=export_config(args),
        random_init=args.random_init,
        tokenizer=args.tokenizer,
        force=args.force,
        progress=not args.quiet,
    )
    print_bundle(bundle)
    print("\n".join(generation_lines(bundle)))
    return 0


def cmd_train_lm(args: argparse.Namespace) -> int:
    from ..lm.train import LMTrainConfig, train_tiny_lm

    kw = {k: v for k, v in {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr}.items() if v}
    config = LMTrainConfig(seed=args.seed, threads=args.threads, **kw)
    info = train_tiny_lm(config, out=args.out, force=args.force, progress=not args.quiet)
    print(
        f"tiny-lm: {info['params']:,} params, {config.steps} steps ({info['tokens_seen']:,} tokens) in "
        f"{info['train_seconds']:.0f} s, held-out perplexity {info['heldout_perplexity']:.2f} -> {safe_text(args.out)}"
    )
    for prompt, text in info["samples"].items():
        print(f"--- {_printable(prompt + text)}")
    return 0


def cmd_pipeline_lm(args: argparse.Namespace) -> int:
    from ..lm_pipeline import LMPipelineConfig, run_lm_pipeline
    from .output import print_result

    config = LMPipelineConfig(
        model_ref=args.model_ref,
        run=getattr(args, "run", None),
        random_init=args.random_init,
        tokenizer=args.tokenizer,
        seed=args.seed,
        steps=args.steps,
        export=export_config(args),
        gates=gate_overrides(args),
        bench=lm_bench_config(args),
        backends=tuple(args.backends) if args.backends else None,
        data=args.data,
    )
    return print_result(
        run_lm_pipeline(args.out, config, force=args.force, resume=args.resume, progress=not args.quiet)
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from .args import trusted

    bundle = load_bundle(args.bundle, trust_model_code=trusted(args))
    prompt = (
        [bounded_int(0, 1 << 30, "a token id")(t) for t in csv_list(args.prompt)] if args.ids else args.prompt
    )
    opts = {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "seed": args.seed,
        "stop": list(args.stop or []),
        "ignore_eos": args.ignore_eos,
    }
    with bundle.runner(args.backend, args.precision, args.device, threads=args.threads) as r:
        if r.tokenizer is None and not args.ids:
            from ..errors import ConfigError

            raise ConfigError(
                f"bundle {args.bundle} has no tokenizer: pass the prompt as token ids with --ids 1,2,3"
            )
        if args.json:
            out = r.generate(prompt, args.max_new_tokens, **opts)
        elif r.tokenizer is None:  # ids in, ids out, each as it comes
            out = r.generate(prompt, args.max_new_tokens, **opts, on_token=_write_id)
        else:
            sys.stdout.write(",".join(map(str, prompt)) + " -> " if args.ids else _printable(prompt))
            out = r.generate(prompt, args.max_new_tokens, **opts, on_text=lambda s: _write(_printable(s)))
        name = r.name
    if args.json:
        import json

        print(json.dumps(out.to_json(), ensure_ascii=True))
    else:
        print()
        print(f"[{len(out.tokens)} tokens, stopped by {out.stop_reason}; {name}]", file=sys.stderr)
    return 0


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _write_id(token: int) -> None:
    _write(f"{token} ")


def _printable(text: str) -> str:
    """Generated text for a terminal: newlines and tabs kept, other control characters escaped."""
    return "\n".join("\t".join(safe_text(p, 1 << 20) for p in line.split("\t")) for line in text.split("\n"))


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text with a text-generation bundle, printing tokens as they come (works without torch)",
        formatter_class=_Formatter,
        description="Prefills the prompt into the artifact's KV cache, then samples one token per step (greedy "
        "unless --temperature > 0) until --max-new-tokens, a stop token or a --stop string. The prompt plus "
        "--max-new-tokens must fit the bundle's context (inspect shows it).",
    )
    p.add_argument("bundle", help="bundle folder written by `edgeport export --task text-generation`")
    p.add_argument("prompt", help="the prompt text (or token ids with --ids)")
    p.add_argument("--ids", action="store_true", help="the prompt is a comma list of token ids")
    p.add_argument(
        "--backend",
        default="onnxruntime",
        choices=["onnxruntime", "openvino", "executorch"],
        help="runtime to generate with",
    )
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8", "int4"], help="which artifact")
    p.add_argument("--device", default="cpu", help="device for the backend")
    p.add_argument(
        "--max-new-tokens", type=bounded_int(1, 1 << 20), default=64, help="tokens to generate at most"
    )
    p.add_argument("--temperature", type=bounded_float(0.0, 100.0), default=0.0, help="0 is greedy")
    p.add_argument(
        "--top-k", type=bounded_int(0, 1 << 22), default=0, help="sample among the k likeliest (0: off)"
    )
    p.add_argument(
        "--top-p",
        type=bounded_float(0.0, 1.0, lo_open=True),
        default=1.0,
        help="sample within this probability mass (1: off)",
    )
    p.add_argument("--seed", type=seed_int, default=None, help="sampling seed (same seed, same text)")
    p.add_argument("--stop", action="append", default=None, metavar="TEXT", help="stop string (repeatable)")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop at the model's end-of-text token")
    p.add_argument("--threads", type=threads_int, default=None, help="runtime threads (default: every core)")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object at the end instead of streaming"
    )
    trust_arg(p)
    p.set_defaults(func=cmd_generate)
