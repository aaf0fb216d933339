"""Printing a bundle's int8 per-layer report (torch-free: ``edgeport inspect`` uses it)."""

from __future__ import annotations

from ..errors import safe_text


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
