"""Small language models: edgeport's decoders against the peers, one model, one prompt, one machine.

Builds (or reuses) a random-init Llama-style decoder of ~110M parameters (hidden 768, 12 layers,
12 heads, vocab 32000, tied embeddings) with a BPE tokenizer trained on the standard library's
docstrings, exports it with edgeport (ONNX, OpenVINO, ExecuTorch; fp32, int8, int4 weight-only),
benchmarks every artifact (TTFT and decode tokens/s at prompt lengths 16, 128, 512, beside the
memory-bandwidth limit), then runs the same model through the peers that install beside the pinned
stack and prints edgeport / peer ratios:

- openvino-genai ``LLMPipeline`` on IR exported by optimum-intel (``optimum-cli export openvino
  --weight-format fp32|int8|int4``), twice: with its default attention backend on CPU (``PA``:
  continuous batching over a paged KV cache) and with ``ATTENTION_BACKEND=SDPA`` (the stateful
  model with the cache in ReadValue/Assign).  edgeport's OpenVINO decoder pages its cache on CPU,
  as genai's PA does (``kv_cache`` in the output says so).
  optimum-intel pins an older transformers, so it lives in its own venv (``--peer-venv``, default
  /tmp/edgeport-peer-venv), created on first use: a plain venv whose .pth file adds this venv's
  site-packages *after* its own, plus ``pip install --no-deps`` of optimum-intel 2.2.0, optimum 2.3.0, transformers 5.5.4, huggingface-hub 1.21.0, tokenizers
  0.22.2 and httpx.  This venv is never modified.
- onnxruntime-genai (``python -m onnxruntime_genai.models.builder -p fp32|int8|int4 -e cpu``).

Peer and edgeport runs alternate (peer, edgeport, peer, ...) for ``--rounds`` rounds, so a busy
machine slows both alike; medians are reported, and the median of the per-round ratios (each
round's two runs are back to back, so a drift of the machine's speed cancels in it).  Both sides get the same prompt ids, greedy
decoding of ``--new-tokens`` tokens, the same thread count, and for fp32 OpenVINO the same
``INFERENCE_PRECISION_HINT=f32`` and ``KV_CACHE_PRECISION=f32``.  openvino-genai runs with prefix caching
off: by default its LLMPipeline keeps the KV blocks of earlier calls, so a repeated prompt is not
prefilled again (TTFT of 12 ms for 512 tokens) and the rounds would not measure the same work.

Usage: python benchmarks/lm_bench.py [--workdir /tmp/edgeport-lm-bench] [--formats onnx,openvino,executorch]
       [--precisions fp32,int8,int4] [--prompt-lengths 16,128,512] [--new-tokens 64] [--rounds 3] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PEER_PINS = ["optimum-intel==2.2.0", "optimum==2.3.0", "transformers==5.5.4", "huggingface-hub==1.21.0",
             "tokenizers==0.22.2"]  # fmt: skip
MODEL = {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 12,
         "num_attention_heads": 12, "num_key_value_heads": 12, "max_position_embeddings": 2048,
         "tie_word_embeddings": True, "bos_token_id": 0, "eos_token_id": 0}  # fmt: skip


def say(msg: str) -> None:
    print(f"[lm_bench] {msg}", file=sys.stderr, flush=True)


def make_model(folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from edgeport.lm.corpus import stdlib_docstrings
    from edgeport.lm.tinylm import EOT, train_tokenizer

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**MODEL)).save_pretrained(folder)
    tok = train_tokenizer(stdlib_docstrings("train"), vocab_size=MODEL["vocab_size"])
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT, bos_token=EOT).save_pretrained(folder)


def peer_venv(venv: Path) -> Path:
    """The optimum-intel venv (created on first use); returns its python."""
    py = venv / "bin" / "python"
    if py.is_file():
        return py
    import site

    say(f"creating the optimum-intel venv {venv}")
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", str(venv)], check=True)
    pth = next(venv.glob("lib/python3*/site-packages")) / "zz_edgeport_base.pth"
    # After the venv's own packages: every site folder this interpreter sees (a layered venv has several).
    base = [p for p in sys.path if p.endswith("site-packages")] or site.getsitepackages()
    pth.write_text("".join(p + "\n" for p in dict.fromkeys(base)))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *PEER_PINS], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "httpx<1"], check=True)
    return py


def optimum_ir(model: Path, out: Path, precision: str, py: Path) -> Path:
    if not (out / "openvino_model.xml").is_file():
        say(f"optimum-cli export openvino --weight-format {precision}")
        cli = [str(py), "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model", str(model),
               "--task", "text-generation-with-past", "--weight-format", precision, str(out)]  # fmt: skip
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def ortgenai_model(model: Path, out: Path, precision: str) -> Path:
    if not (out / "genai_config.json").is_file():
        say(f"onnxruntime_genai builder -p {precision}")
        cli = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(model), "-o", str(out),
               "-p", precision, "-e", "cpu"]  # fmt: skip
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def edgeport_run(runner, ids: np.ndarray, n: int) -> tuple[float, float, list[int]]:
    """(TTFT ms, decode tokens/s, tokens): the same loop as `edgeport bench`."""
    runner.reset()
    t0 = time.perf_counter()
    tok = int(np.argmax(runner.forward(ids, last_only=True)[-1]))
    t1 = time.perf_counter()
    out = [tok]
    for _ in range(n - 1):
        tok = int(np.argmax(runner.forward(np.array([tok], np.int64), last_only=True)[-1]))
        out.append(tok)
    return (t1 - t0) * 1e3, (n - 1) / (time.perf_counter() - t1), out


def genai_runner(folder: Path, precision: str, threads: int, n: int, attention: str = "PA"):
    """openvino-genai's LLMPipeline.  ``attention`` "PA": its default on CPU, continuous batching over a
    paged KV cache; "SDPA": its stateful model with the cache in ReadValue/Assign, as edgeport runs it."""
    import openvino as ov
    import openvino_genai as ogenai

    props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "ATTENTION_BACKEND": attention}
    if precision == "fp32":
        props |= {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
    kw = {}
    if attention == "PA":
        # LLMPipeline's default scheduler caches prefixes across generate() calls: every round after the
        # first then finds the whole prompt cached (TTFT 12 ms for 512 tokens here) and decodes behind a
        # warm cache.  Each round must start cold, as edgeport's does.
        scheduler = ogenai.SchedulerConfig()
        scheduler.enable_prefix_caching = False
        kw["scheduler_config"] = scheduler
    pipe = ogenai.LLMPipeline(str(folder), "CPU", **kw, **props)
    cfg = ogenai.GenerationConfig()
    cfg.max_new_tokens = cfg.min_new_tokens = n
    cfg.ignore_eos, cfg.do_sample = True, False

    def run(ids: np.ndarray):
        x = ids[None].astype(np.int64)
        res = pipe.generate(ogenai.TokenizedInputs(ov.Tensor(x), ov.Tensor(np.ones_like(x))), cfg)
        pm = res.perf_metrics
        return pm.get_ttft().mean, 1000.0 / pm.get_tpot().mean, [int(t) for t in res.tokens[0]]

    return run


def ortgenai_runner(folder: Path, n: int):
    import onnxruntime_genai as og

    model = og.Model(str(folder))

    def run(ids: np.ndarray):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + n, do_sample=False)
        gen = og.Generator(model, params)
        t0 = time.perf_counter()
        gen.append_tokens(ids.astype(np.int32)[None])
        gen.generate_next_token()
        t1 = time.perf_counter()
        for _ in range(n - 1):
            gen.generate_next_token()
        t2 = time.perf_counter()
        return (t1 - t0) * 1e3, (n - 1) / (t2 - t1), [int(t) for t in gen.get_sequence(0)[len(ids) :]]

    return run


def compare(bundle, backend: str, precision: str, peer_name: str, peer, args, threads: int) -> list[dict]:
    rows = []
    with bundle.runner(backend, precision, threads=threads) as r:
        for p in args.prompt_lengths:
            if p + args.new_tokens > r.max_context:
                continue
            ids = np.random.default_rng(p).integers(0, 23000, size=p).astype(np.int64)
            peer(ids), edgeport_run(r, ids, 4)  # warm-up both
            pe, ed = [], []
            for _ in range(args.rounds):
                pe.append(peer(ids))
                ed.append(edgeport_run(r, ids, args.new_tokens))
            med = lambda runs, i: statistics.median(x[i] for x in runs)  # noqa: E731
            same = sum(a == b for a, b in zip((x[2] for x in pe), (x[2] for x in ed)))
            rows.append({"backend": backend, "precision": precision, "peer": peer_name, "prompt": p,
                         "edgeport_ttft_ms": med(ed, 0), "peer_ttft_ms": med(pe, 0),
                         "edgeport_tok_s": med(ed, 1), "peer_tok_s": med(pe, 1),
                         "same_tokens": f"{same}/{args.rounds}"})  # fmt: skip
            rows[-1]["ratio"] = rows[-1]["edgeport_tok_s"] / rows[-1]["peer_tok_s"]
            # each round's two runs are back to back: the median of their ratios shrugs off slow drifts
            rows[-1]["ratio_paired"] = statistics.median(e[1] / q[1] for e, q in zip(ed, pe))
            rows[-1]["edgeport_kv_cache"] = r.describe().get("kv_cache", "")
            say(json.dumps(rows[-1]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/edgeport-lm-bench"))
    ap.add_argument("--formats", default="onnx,openvino,executorch")
    ap.add_argument("--precisions", default="fp32,int8,int4")
    ap.add_argument("--prompt-lengths", default="16,128,512")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="default: every core")
    ap.add_argument("--peer-venv", type=Path, default=Path("/tmp/edgeport-peer-venv"))
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args(argv)
    args.prompt_lengths = [int(x) for x in args.prompt_lengths.split(",")]
    precisions = args.precisions.split(",")
    from edgeport.bundle import load_bundle
    from edgeport.lm.export import LMExportConfig, export_lm
    from edgeport.runtime.base import cpu_count
    from edgeport.runtime.benchmark import bench
    from edgeport.runtime.lm_bench import LMBenchConfig, markdown_table

    threads = args.threads or cpu_count()
    work = args.workdir
    model, bundle_dir = work / "model", work / "bundle"
    if not (model / "config.json").is_file():
        say("building the ~110M-parameter model and its tokenizer")
        make_model(model)
    if not (bundle_dir / "manifest.json").is_file():
        cfg = LMExportConfig(formats=tuple(args.formats.split(",")), weight_only=tuple(p for p in precisions if p != "fp32"),
                             max_context=max(args.prompt_lengths) + args.new_tokens + 64)  # fmt: skip
        t0 = time.perf_counter()
        export_lm(f"hf:{model}", bundle_dir, config=cfg, force=True)
        say(f"edgeport export: {time.perf_counter() - t0:.0f} s")
    bundle = load_bundle(bundle_dir)
    lm = LMBenchConfig(prompt_lengths=tuple(args.prompt_lengths), new_tokens=args.new_tokens, repeats=args.rounds,
                       threads=threads)  # fmt: skip
    report = bench(bundle, precisions=precisions, devices=["cpu"], lm=lm, progress=False)
    (work / "bench.json").write_text(json.dumps(report, indent=2))
    print("## edgeport bench\n")
    print(markdown_table(report))
    if args.no_peers:
        return 0
    rows = []
    py = peer_venv(args.peer_venv) if "openvino" in args.formats.split(",") else None
    formats = args.formats.split(",")
    for prec in precisions:
        if "openvino" in formats:
            ir = optimum_ir(model, work / f"optimum-{prec}", prec, py)
            for attention in ("PA", "SDPA"):
                rows += compare(bundle, "openvino", prec, f"openvino-genai {attention}",
                                genai_runner(ir, prec, threads, args.new_tokens, attention), args, threads)  # fmt: skip
        if "onnx" in formats:
            og_dir = ortgenai_model(model, work / f"ortgenai-{prec}", prec)
            rows += compare(bundle, "onnxruntime", prec, "onnxruntime-genai",
                            ortgenai_runner(og_dir, args.new_tokens), args, threads)  # fmt: skip
    (work / "peers.json").write_text(json.dumps(rows, indent=2))
    print("## against the peers (medians of interleaved rounds)\n")
    print("| backend | precision | peer | prompt | edgeport TTFT ms | peer TTFT ms | edgeport tok/s | peer tok/s "
          "| ratio | ratio per round (median) | same tokens |\n|---|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        print(f"| {r['backend']} | {r['precision']} | {r['peer']} | {r['prompt']} | {r['edgeport_ttft_ms']:.1f} "
              f"| {r['peer_ttft_ms']:.1f} | {r['edgeport_tok_s']:.1f} | {r['peer_tok_s']:.1f} | {r['ratio']:.2f} "
              f"| {r['ratio_paired']:.2f} | {r['same_tokens']} |")  # fmt: skip
    modes = sorted({r["edgeport_kv_cache"] for r in rows if r["edgeport_kv_cache"]})
    if modes:
        print("\nedgeport's OpenVINO KV cache: " + "; ".join(modes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
