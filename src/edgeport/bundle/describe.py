"""A bundle in words: what `edgeport inspect`, `export` and the other commands print about it.

Text only (stdlib): each function returns lines, and the CLI prints them.
"""

from __future__ import annotations

from ..errors import safe_text


def describe(bundle) -> str:
    """What `edgeport inspect` prints: the manifest in words (signature, task and gates, artifacts,
    calibration, parity, per-stage seconds, the int8 layer report)."""
    out: list[str] = []
    m = bundle.manifest
    schema = f"schema {m.schema_version}" + (
        f", read from schema {m.upgraded_from} (read-only)" if m.read_only else ""
    )
    out.append(f"bundle {safe_text(bundle.path)}  ({schema}, model {safe_text(m.model)})")
    for w in m.warnings:
        out.append(f"WARNING: {safe_text(w)}")
    for s in m.signature.inputs:
        vr = f" range {s.value_range[0]:.3g}..{s.value_range[1]:.3g}" if s.value_range else ""
        out.append(f"input  {safe_text(s.describe())}{vr}")
    for s in m.signature.outputs:
        out.append(f"output {safe_text(s.describe())}")
    for name, d in m.signature.dims.items():
        ex = f" (exported at {d.example})" if d.example is not None else ""
        out.append(f"dim    {safe_text(name)}: {d.min}..{d.max}{ex}")
    task = bundle.task
    params = ", ".join(f"{k}={v}" for k, v in task.params.items())
    out.append(f"task: {task.name} ({task.title}){': ' + safe_text(params) if params else ''}")
    for prec, gates in ((m.task or {}).get("gates") or {}).items():
        table = task.gate_table()
        shown = ", ".join(
            f"{k} {'>=' if table[k].direction == 'min' else '<='} {v:g}"
            for k, v in gates.items()
            if k in table
        )
        out.append(f"  {prec} gates: {shown or 'elementwise tolerance only'}")
    pre = bundle.preprocessing
    out.append(f"preprocessing: {safe_text(pre.describe()) if pre else 'none (no image or audio input)'}")
    if m.text:
        t = m.text
        out.append(
            f"text: {safe_text(t['tokenizer']['path'])} ({t['vocab_size']} tokens) feeds {safe_text(t['input'])}, "
            f"pad id {t['pad_id']}, length {t['min_length']}..{t['max_length']}"
        )
    labels = ", ".join(m.labels[:20]) + (f", ... ({len(m.labels)} in all)" if len(m.labels) > 20 else "")
    out.append(f"labels: {safe_text(labels) or '-'}")
    out += artifact_lines(bundle)
    if m.generation:
        out += generation_lines(bundle)
    for a in m.artifacts:
        out += _artifact_notes(a, bundle.task)
    if m.calibration:
        cal = m.calibration
        src = cal.get("source", {}) if isinstance(cal.get("source"), dict) else {}
        out.append(
            f"calibration: {cal.get('size')} samples ({safe_text(src.get('kind', cal.get('split', '?')))}, "
            f"{safe_text(src.get('evidence', ''))}), method {safe_text(cal.get('method'))}"
        )
    if m.golden:
        out.append(f"golden I/O: {m.golden['n']} samples ({safe_text(m.golden.get('source', ''))})")
    out += parity_lines(m.parity)
    out += timing_lines(m.timings)
    if not m.generation:
        out.append(format_layer_report(bundle))
    return "\n".join(out)


def artifact_lines(bundle) -> list[str]:
    out: list[str] = []
    task = bundle.task
    out.append(f"bundle {safe_text(bundle.path)} ({task.name}):")
    for w in bundle.warnings:
        out.append(f"  WARNING: {safe_text(w)}")
    for a in bundle.artifacts:
        size = a.total_bytes
        out.append(f"  {a.key:<18} {a.file:<34} {size / 1024:9.1f} KiB  sha256 {a.sha256[:12]}")
    for f in bundle.failures:
        out.append(
            f"  {f['format'] + '/' + f['precision']:<18} FAILED at {safe_text(f['stage'])}, not in the bundle: "
            f"{safe_text(f['reason'])}"
        )
    return out


def timing_lines(timings) -> list[str]:
    """Seconds per export stage, slowest first (what `--verbose` and `inspect` show)."""
    out: list[str] = []
    if not isinstance(timings, dict) or not timings:
        return out
    total = sum(v for v in timings.values() if isinstance(v, (int, float)))
    out.append(f"export stages ({total:.1f} s in all):")
    for name, sec in sorted(timings.items(), key=lambda kv: -kv[1]):
        out.append(f"  {safe_text(name)[:60]:<42} {sec:8.2f} s")
    return out


def generation_lines(bundle) -> list[str]:
    """`inspect`'s lines for a text-generation bundle."""
    out: list[str] = []
    g = bundle.manifest.generation
    a = g["architecture"]
    tok = g.get("tokenizer")
    tokenizer = (
        f"{safe_text(tok['file'])} ({tok['vocab_size']} tokens)" if tok else "none (prompts are token ids)"
    )
    out.append(
        f"text generation: {a['model_type']} {a['params']:,} params, {a['layers']} layers, {a['heads']} heads "
        f"({a['kv_heads']} KV), vocab {g['vocab_size']}, context {g['max_context']}, KV cache "
        f"{g['cache']['bytes_per_token']:,} B/token; tokenizer {tokenizer}"
    )
    for key, q in (g.get("quantization") or {}).items():
        out.append(
            f"  {key}: {safe_text(q['method'])}; embedding {safe_text(q.get('embedding', '?'))}; "
            f"LM head {safe_text(q.get('lm_head', '?'))}"
        )
    for key, row in ((g.get("golden") or {}).get("artifacts") or {}).items():
        art = next((x for x in bundle.artifacts if x.key == key), None)
        mem = art.details.get("memory_at_max_context_bytes") if art else None
        out.append(
            f"  {key:<18} golden agreement {row['agreement'] * 100:6.2f}%, greedy identical "
            f"{row.get('greedy_identical', '-')}/{len(g['golden']['prompts'])}"
            + (f", memory at context {mem / 1e6:.1f} MB" if mem else "")
        )
    return out


def _num(v, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def parity_lines(parity) -> list[str]:
    """Export-time parity against PyTorch: max abs difference per artifact, output and batch size."""
    out: list[str] = []
    if not isinstance(parity, dict) or not isinstance(parity.get("artifacts"), dict):
        return out
    inputs = parity.get("inputs", {}) if isinstance(parity.get("inputs"), dict) else {}
    sizes = [str(b) for b in parity.get("batch_sizes", []) if isinstance(b, int)]
    evidence = safe_text(inputs.get("evidence") or "")
    out.append(
        f"parity vs PyTorch at export: {_num(inputs.get('n'), 'd')} inputs"
        f"{f' ({evidence})' if evidence else ''}, max abs difference per output at batch "
        f"{', '.join(sizes)}: {'passed' if parity.get('passed') else 'FAILED'}"
    )
    for key, art in parity["artifacts"].items():
        per = art.get("batch_sizes", {}) if isinstance(art, dict) else {}
        if not isinstance(per, dict):
            continue
        names = []
        for row in per.values():
            for n in (row.get("outputs") or {}) if isinstance(row, dict) else {}:
                if n not in names:
                    names.append(n)
        for name in names or [None]:
            cells = []
            for b in sizes:
                row = per.get(b) if isinstance(per.get(b), dict) else {}
                r = (row.get("outputs") or {}).get(name, {}) if name else row
                r = r if isinstance(r, dict) else {}
                agree = r.get("agreement")
                cells.append(
                    f"b{b} {_num(r.get('max_abs'), '.1e')}"
                    + (f" {agree * 100:.1f}%" if isinstance(agree, (int, float)) and agree < 1 else "")
                    + ("" if r.get("passed", True) else " FAIL")
                )
            label = f"{key} {name}" if name else key
            out.append(f"  {safe_text(label):<30} {'  '.join(cells)}")
    return out


def _artifact_notes(a, task) -> list[str]:
    d = a.details if isinstance(a.details, dict) else {}
    notes = []
    if a.precision == "int8" and isinstance(d.get("speedup_vs_fp32"), (int, float)):
        notes.append(
            f"selected {safe_text(d.get('selected'))} ({safe_text(d.get('selection_rule', ''))}), "
            f"{d['speedup_vs_fp32']:.2f}x fp32 throughput at batch {d.get('speed_batch')}"
        )
        if d.get("slower_than_fp32"):
            notes.append("SLOWER than its fp32 twin on the exporting machine")
    deleg = d.get("delegation")
    if isinstance(deleg, dict):
        notes.append(
            f"XNNPACK delegation: {deleg.get('delegated_ops', '?')} ops inside, {deleg.get('non_delegated_ops', '?')} "
            f"outside {safe_text(deleg.get('outside', ''))[:200]}"
        )
    if isinstance(d.get("max_batch"), int):
        notes.append(f"batch 1..{d['max_batch']}")
    if isinstance(d.get("planned_memory_bytes"), int):
        at = d.get("planned_for") if isinstance(d.get("planned_for"), dict) else {}
        where = ", ".join(f"{safe_text(k)}={v}" for k, v in at.items())
        notes.append(f"memory planned: {d['planned_memory_bytes'] / 2**20:.1f} MiB at {where}")
    if d.get("exporter"):
        notes.append(f"exporter: {safe_text(d['exporter'])}")
    if isinstance(d.get("selection_metrics"), dict):
        shown = task.summary_of(d["selection_metrics"])
        if shown:
            notes.append(f"int8 on the selection split: {safe_text(shown)}")
    return [f"    {a.key}: {n}" for n in notes]


def _report_of(obj) -> dict | None:
    if hasattr(obj, "manifest"):
        obj = obj.manifest
    if hasattr(obj, "layer_report"):
        return obj.layer_report
    if isinstance(obj, dict) and "formats" not in obj:
        return obj.get("layer_report")
    return obj


def format_layer_report(obj) -> str:
    report = _report_of(obj)
    if not report or not report.get("formats"):
        return "no int8 layer report in this bundle (export with --int8)"
    lines = [
        f"int8 per-layer error vs fp32 PyTorch ({report.get('images', '?')} {safe_text(report.get('split', ''))} samples)",
        f"{'artifact':<18} {'layer':<32} {'SQNR dB':>9} {'max abs err':>12}",
    ]
    for fmt, rows in report["formats"].items():
        for row in rows:
            sq = row.get("sqnr_db")
            sq_s = "inf" if sq is None else f"{sq:.2f}"
            lines.append(
                f"{safe_text(fmt) + '/int8':<18} {safe_text(row['layer'])[:32]:<32} {sq_s:>9} {row['max_abs_error']:>12.4g}"
            )
    return "\n".join(lines)


__all__ = [
    "artifact_lines",
    "describe",
    "format_layer_report",
    "generation_lines",
    "parity_lines",
    "timing_lines",
]
