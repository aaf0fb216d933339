"""The report of a text-generation run: perplexity and agreement per artifact, TTFT and tokens/s
against the memory-bandwidth limit (tables and plots), a sample generation per artifact, training.

Rendered by :mod:`edgeport.report.writer`'s Markdown and HTML writers; no torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import safe_text
from ..runtime.lm_bench import SCHEMA as BENCH_SCHEMA

PLOTS = ("ttft.png", "decode.png")


def is_lm_run(run: Path) -> bool:
    p = run / "pipeline.json"
    try:
        return p.is_file() and json.loads(p.read_text()).get("task") == "text-generation"
    except (OSError, ValueError, AttributeError):
        return False


def _read(path: Path):
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def _plots(bench: dict, folder: Path) -> list[tuple]:
    from .plots import _plt, _save

    rows = bench["rows"]
    if not rows:
        return []
    plt = _plt()
    keys = sorted({(r["backend"], r["precision"]) for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    for b, p in keys:
        pts = sorted(
            (r["prompt_tokens"], r["ttft_ms"]) for r in rows if (r["backend"], r["precision"]) == (b, p)
        )
        ax.plot(*zip(*pts), marker="o", label=f"{b} {p}")
    ax.set(xlabel="prompt tokens", ylabel="time to first token (ms)", title="Time to first token")
    ax.legend(fontsize=7)
    out = [("img", str(_save(fig, folder / PLOTS[0])), "time to first token")]
    fig, ax = plt.subplots(figsize=(8, 4))
    shortest = min(r["prompt_tokens"] for r in rows)
    sel = [r for r in rows if r["prompt_tokens"] == shortest]
    names = [f"{r['backend']}\n{r['precision']}" for r in sel]
    ax.bar(names, [r["decode_tokens_per_s"] for r in sel], color="#1f77b4", label="measured")
    ax.scatter(
        names,
        [r["limit_tokens_per_s"] for r in sel],
        color="#c62828",
        marker="_",
        s=400,
        label="bandwidth limit",
    )
    ax.set(
        ylabel="decode tokens/s", title=f"Decode speed at a {shortest}-token prompt vs the bandwidth limit"
    )
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    out.append(("img", str(_save(fig, folder / PLOTS[1])), "decode tokens/s vs limit"))
    return out


def sections(run: Path) -> list:
    """The report of a text-generation run folder: one section per file that is there."""
    pipe, train = _read(run / "pipeline.json") or {}, _read(run / "model" / "train.json")
    verify, bench, gens = (
        _read(run / "verify.json"),
        _read(run / "bench.json"),
        _read(run / "generations.json"),
    )
    out = [("Summary", _summary(run, pipe))]
    if train:
        out.append(("Training", _training(train)))
    if verify:
        out.append(("Verify against PyTorch", _verify(verify)))
    if bench and bench.get("schema") == BENCH_SCHEMA:
        out.append(("Speed: time to first token and decode tokens/s", _speed(bench, run)))
    if gens:
        out.append(("Sample generations", _generations(gens)))
    return out


def _summary(run: Path, pipe: dict) -> list:
    from ..bundle import load_bundle

    status = "passed" if pipe.get("passed") else "FAILED: " + "; ".join(pipe.get("gates") or [])
    summary = [("p", f"Text-generation pipeline **{safe_text(status, 600)}**.")]
    try:
        bundle = load_bundle(run / "bundle")
        g, m = bundle.manifest.generation, bundle.manifest
        a = g["architecture"]
        summary.append(("p", f"Model `{safe_text(m.model)}`: {a['model_type']}, {a['params']:,} parameters, "
                             f"{a['layers']} layers, vocabulary {g['vocab_size']}, context {g['max_context']}."))  # fmt: skip
        summary += [("p", f"WARNING: {safe_text(w)}") for w in m.warnings]
        rows = [
            [x.key, f"{x.total_bytes / 1e6:.2f}", f"{x.details.get('memory_at_max_context_bytes', 0) / 1e6:.2f}",
             safe_text((g.get("quantization") or {}).get(x.key, {}).get("method", "-"), 120)]
            for x in m.artifacts
            if x.format != "torch"
        ]  # fmt: skip
        summary.append(("table", ["artifact", "MB on disk", "MB at context bound", "quantization"], rows))
    except Exception as exc:  # noqa: BLE001 - the report still renders what is there
        summary.append(("p", f"bundle not readable: {safe_text(exc, 200)}"))
    return summary


def _training(train: dict) -> list:
    hist = [
        [str(h["step"]), f"{h['train_loss']:.3f}", f"{h['heldout_perplexity']:.2f}"] for h in train["history"]
    ]
    return [
        ("p", f"tiny-lm: {train['params']:,} parameters, {train['tokens_seen']:,} tokens in "
              f"{train['train_seconds']:.0f} s; held-out perplexity {train['heldout_perplexity']:.2f}."),
        ("table", ["step", "train loss", "held-out perplexity"], hist),
        ("pre", "\n".join(safe_text(t, 2000) for t in train.get("samples", {}).values())),
    ]  # fmt: skip


def _verify(verify: dict) -> list:
    from ..runtime.lm_check import format_verify_table

    rows = [
        [f"{r['backend']}:{r['device']}", r["precision"], f"{r['agreement'] * 100:.2f}", f"{r['perplexity']:.3f}",
         f"{r['perplexity_change'] * 100:+.2f}%", f"{r['greedy_identical']}/{r['greedy_total']}",
         "pass" if r["passed"] else "FAIL"]
        for r in verify["rows"]
    ]  # fmt: skip
    head = ["backend", "precision", "agreement %", "perplexity", "change", "greedy", "result"]
    return [
        ("p", safe_text(format_verify_table(verify).splitlines()[0], 600)),
        ("table", head, rows),
        ("p", "Gates: " + ", ".join(f"{k} {v}" for k, v in verify.get("gates", {}).items()) + "."),
    ]


def _speed(bench: dict, run: Path) -> list:
    from ..runtime.lm_bench import markdown_table

    md = markdown_table(bench).splitlines()
    head = [h.strip() for h in md[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in md[2:] if line.startswith("|")]
    return [("table", head, rows), ("p", md[-1]), *_plots(bench, run / "plots")]


def _generations(gens: dict) -> list:
    blocks = [("p", f"Greedy, {SAMPLE_NOTE}.")]
    for name, g in gens.items():
        shown = g["text"] if g.get("text") is not None else ",".join(map(str, g["tokens"]))
        prompt = g["prompt"] if isinstance(g["prompt"], str) else ",".join(map(str, g["prompt"]))
        blocks.append(("pre", f"{safe_text(name)}\n{safe_text(prompt)} >>> {safe_text(shown, 4000)}"))
    return blocks


SAMPLE_NOTE = "one generation per artifact after the same prompt"


def write_lm_report(run: Path, *, force: bool = False) -> tuple[Path, Path]:
    from ..fsutil import atomic_write, check_new_files
    from .render import to_html, to_markdown

    md, page = run / "report.md", run / "report.html"
    check_new_files([md, page], force)
    secs = sections(run)
    atomic_write(md, to_markdown(secs))
    atomic_write(page, to_html(secs))
    return md, page
