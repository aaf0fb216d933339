"""Benchmark a text-generation bundle: time to first token and decode tokens/s at several prompt
lengths, per backend x precision x device, beside the memory-bandwidth limit of this machine.

One method for every backend: a seeded random prompt of P tokens; per repeat,
empty the cache, time the prefill call plus choosing the first token (TTFT),
then time each of the next N-1 decode steps (one ``forward`` of one token
plus its argmax).  Figures are medians over repeats, after one untimed
warm-up generation.  The limit is ``bandwidth / bytes read per token``: the
artifact's decode weight bytes plus the KV cache at the mean context of the
decode steps.  Peak RSS is the process's high-water mark, reset before each
runner is loaded (``/proc/self/clear_refs``), so each row shows its own peak.
torch-free except the ExecuTorch runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, EdgeportError
from .bandwidth import copy_bandwidth, decode_limit
from .base import cpu_count
from .decoders import DEFAULT_BACKENDS
from .plan import environment, select_runs

SCHEMA = "edgeport.bench-lm/1"


@dataclass(frozen=True, kw_only=True)
class LMBenchConfig:
    prompt_lengths: tuple[int, ...] = (16, 128, 512)  # each 1..max_context - new_tokens
    new_tokens: int = 32  # 2..4096 decode steps timed per repeat (the first is the TTFT token)
    repeats: int = 3  # 1..100
    threads: int | None = None  # default: every core (decode is bandwidth-bound)

    def validate(self) -> None:
        if not self.prompt_lengths or any(not 1 <= p <= 1 << 20 for p in self.prompt_lengths):
            raise ConfigError(f"--prompt-lengths must be whole numbers >= 1, got {list(self.prompt_lengths)}")
        if not 2 <= self.new_tokens <= 4096 or not 1 <= self.repeats <= 100:
            raise ConfigError("--new-tokens must be 2..4096 and --repeats 1..100")


def _peak_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _one(runner, prompt: np.ndarray, n: int) -> tuple[float, float]:
    """(TTFT seconds, decode seconds for n-1 steps) of one greedy generation."""
    clock = time.perf_counter_ns
    runner.reset()
    t0 = clock()
    tok = int(np.argmax(runner.forward(prompt, last_only=True)[-1]))
    t1 = clock()
    for _ in range(n - 1):
        tok = int(np.argmax(runner.forward(np.array([tok], np.int64), last_only=True)[-1]))
    return (t1 - t0) / 1e9, (clock() - t1) / 1e9


def _rows(runner, config: LMBenchConfig, bw: dict, skipped: list, load_s: float, peak_ok: bool) -> list[dict]:
    info = runner.describe()
    # the cache as the runtime keeps it (OpenVINO's CPU plugin: u8 for int8/int4); else the manifest's fp32
    kv_per_token = info.get("kv_cache_bytes_per_token", runner.generation["cache"]["bytes_per_token"])
    weights = runner.artifact.details.get("decode_weight_bytes_per_token", runner.artifact.total_bytes)
    rng = np.random.default_rng(0)
    rows = []
    for p in config.prompt_lengths:
        if p + config.new_tokens > runner.max_context:
            skipped.append(
                {
                    "backend": runner.backend,
                    "device": runner.device,
                    "precision": runner.precision,
                    "reason": f"prompt {p} + {config.new_tokens} new tokens is past the context "
                    f"{runner.max_context}",
                }
            )
            continue
        prompt = rng.integers(0, runner.vocab_size, size=p).astype(np.int64)
        _one(runner, prompt, min(4, config.new_tokens))  # warm-up
        runs = [_one(runner, prompt, config.new_tokens) for _ in range(config.repeats)]
        ttft = float(np.median([r[0] for r in runs]))
        decode = float(np.median([r[1] for r in runs]))
        tps = (config.new_tokens - 1) / decode
        per_token = weights + kv_per_token * (p + config.new_tokens / 2)
        limit = decode_limit(bw["gb_per_s"], per_token)
        rows.append(
            {
                **{k: info[k] for k in ("backend", "device", "format", "precision", "threads")},
                "prompt_tokens": p,
                "new_tokens": config.new_tokens,
                "repeats": config.repeats,
                "ttft_ms": ttft * 1e3,
                "decode_tokens_per_s": tps,
                "decode_ms_per_token": 1e3 / tps,
                "bytes_on_disk": runner.artifact.total_bytes,
                "bytes_per_token": int(per_token),
                "limit_tokens_per_s": limit,
                "fraction_of_limit": tps / limit,
                "load_seconds": load_s,
                "peak_rss_mb": _peak_mb(),
                "peak_rss_per_row": peak_ok,
                "details": {
                    k: v
                    for k, v in info.items()
                    if k not in ("backend", "device", "format", "precision", "threads")
                },
            }
        )
    return rows


def bench_lm(
    bundle,
    *,
    backends=None,
    precisions=None,
    devices=None,
    config: LMBenchConfig | None = None,
    progress: bool = True,
) -> dict:
    """The report dict (schema ``edgeport.bench-lm/1``) of every selected decoder."""
    from ..progress import progress_bar

    config = config or LMBenchConfig()
    config.validate()
    runs, skipped = select_runs(
        bundle, backends=backends or DEFAULT_BACKENDS, precisions=precisions, devices=devices
    )
    threads = config.threads or cpu_count()
    bw = copy_bandwidth(threads)
    bar = progress_bar(len(runs), progress, "bench", unit="artifact")
    rows: list[dict] = []
    try:
        for backend, precision, device in runs:
            bar.set_description(f"{backend}:{device} {precision}")
            peak_ok = _peak_reset()
            try:
                t0 = time.perf_counter()
                with bundle.runner(backend, precision, device, threads=threads) as r:
                    rows += _rows(r, config, bw, skipped, time.perf_counter() - t0, peak_ok)
            except EdgeportError as exc:
                skipped.append(
                    {"backend": backend, "device": device, "precision": precision, "reason": str(exc)}
                )
            bar.update(1)
    finally:
        bar.close()
    return {
        "schema": SCHEMA,
        "bundle": str(bundle.path),
        "model": bundle.manifest.model,
        "method": {
            "timer": "time.perf_counter_ns around the prefill (+ first argmax) and around the decode steps",
            "prompt": "seeded random token ids of each prompt length; greedy decoding",
            "statistics": f"median over {config.repeats} repeats after one warm-up; tokens/s = (new_tokens - 1) "
            "/ decode seconds",
            "limit": "bandwidth / (decode weight bytes + KV cache bytes at the mean decode context)",
            "peak_rss_mb": "VmHWM after each artifact's rows, reset before loading it"
            if all(r["peak_rss_per_row"] for r in rows)
            else "process high-water mark (ru_maxrss)",
            "prompt_lengths": list(config.prompt_lengths),
            "new_tokens": config.new_tokens,
            "threads": threads,
        },
        "bandwidth": bw,
        "warnings_bundle": bundle.warnings,
        "device": environment(sorted({r[0] for r in runs})),
        "rows": rows,
        "skipped": skipped,
        "warnings": [],
    }


def markdown_table(report: dict) -> str:
    bw = report["bandwidth"]
    head = (
        "| backend | device | precision | prompt | TTFT ms | decode tok/s | limit tok/s | % of limit "
        "| disk MB | peak RSS MB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in report["rows"]:
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['precision']} | {r['prompt_tokens']} | {r['ttft_ms']:.1f} "
            f"| {r['decode_tokens_per_s']:.1f} | {r['limit_tokens_per_s']:.0f} | {r['fraction_of_limit'] * 100:.0f}% "
            f"| {r['bytes_on_disk'] / 1e6:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"Memory bandwidth: {bw['gb_per_s']:.1f} GB/s read+write ({bw['threads']} threads, "
        f"{bw['method']}). Limit = bandwidth / bytes read per decoded token.",
    ]
    return "\n".join(lines) + "\n"


CSV_FIELDS = (
    "backend",
    "device",
    "format",
    "precision",
    "threads",
    "prompt_tokens",
    "new_tokens",
    "ttft_ms",
    "decode_tokens_per_s",
    "limit_tokens_per_s",
    "fraction_of_limit",
    "bytes_on_disk",
    "bytes_per_token",
    "peak_rss_mb",
    "load_seconds",
)
FLEET_COLUMNS = (
    ("backend", lambda r: f"{r['backend']}:{r['device']}"),
    ("precision", lambda r: r["precision"]),
    ("prompt", lambda r: str(r["prompt_tokens"])),
    ("TTFT ms", lambda r: f"{r['ttft_ms']:.1f}"),
    ("decode tok/s", lambda r: f"{r['decode_tokens_per_s']:.1f}"),
    ("% of limit", lambda r: f"{r['fraction_of_limit'] * 100:.0f}%"),
    ("peak RSS MB", lambda r: f"{r['peak_rss_mb']:.0f}"),
)
