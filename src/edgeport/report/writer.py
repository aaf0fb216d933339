"""``report.md`` and a self-contained ``report.html``, rebuilt from a run folder's JSON.

The report is a list of sections made of blocks (paragraph, table, image,
preformatted text); :func:`to_markdown` and :func:`to_html` render the same
list, so the two never disagree.  Stages that did not run say so.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from ..errors import ConfigError, DataError
from . import plots
from .rundata import DASH, FILES, Row, RunData, devices, environment, load

# The accuracy an artifact may give up, against the best one, to be recommended for its speed.
SHIP_TOLERANCE = 0.002


PLOTS = ("training.png", "latency.png", "pareto.png", "scaling.png")


def write_report(run_dir: str | os.PathLike, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``RUN/report.md``, ``RUN/report.html`` and ``RUN/plots/*.png``; return both paths.

    Each file is refused if it exists, unless ``force``; each is written atomically.
    """
    from ..fsutil import atomic_write, check_new_files

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run folder {run_dir} not found; run `edgeport pipeline --out {run_dir}` first")
    from ..lm.report import is_lm_run, write_lm_report

    if is_lm_run(run_dir):  # a text-generation run: perplexity, TTFT, tokens/s, samples
        return write_lm_report(run_dir, force=force)
    md, page = run_dir / "report.md", run_dir / "report.html"
    if (run_dir / "plots").is_dir() or not force:
        check_new_files(
            [md, page, *((run_dir / "plots" / n) for n in PLOTS if (run_dir / "plots").is_dir())], force
        )
    try:
        data = load(run_dir)
        sections = build_sections(data)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
        raise DataError(
            f"the run folder {run_dir} holds a malformed JSON file ({type(exc).__name__}: {str(exc)[:120]}); "
            "re-run the stage that wrote it"
        ) from None
    try:
        atomic_write(md, to_markdown(sections))
        atomic_write(page, to_html(sections))
    except PermissionError as exc:
        raise ConfigError(
            f"cannot write the report into {run_dir} ({exc.strerror}); make it writable"
        ) from None
    return md, page


# --------------------------------------------------------------------------- formatting


def _pct(x):
    return DASH if x is None else f"{x * 100:.2f}%"


def _us(x):
    return DASH if x is None else f"{x:,.1f}"


def _sci(x):
    return DASH if x is None else f"{x:.1e}"


def _size(n):
    if not n:
        return DASH
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _tput(r: Row):
    return DASH if r.throughput is None else f"{r.throughput:,.0f} (b={r.throughput_batch})"


def _status(r: Row):
    return {True: "pass", False: "FAIL", None: DASH}[r.passed]


# --------------------------------------------------------------------------- sections


def recommend(rows: list[Row]) -> Row | None:
    """The fastest passing artifact within :data:`SHIP_TOLERANCE` of the best accuracy."""
    ok = [r for r in plots.pareto_front(rows) if r.passed is not False]
    if not ok:
        return None
    best = max(r.accuracy for r in ok)
    return min((r for r in ok if r.accuracy >= best - SHIP_TOLERANCE), key=lambda r: r.p50_us)


def build_sections(data: RunData) -> list[tuple[str, list]]:
    raw, rows, pdir = data.raw, data.rows, data.run_dir / "plots"
    train = raw["train"] if isinstance(raw.get("train"), dict) else None
    sections = [("Summary", _summary(data, train))]

    blocks = []
    if train is None:
        blocks.append(("p", f"Training: {data.status('train')}."))
    else:
        params = train.get("params")
        blocks.append(
            (
                "p",
                f"Model **{train.get('model', DASH)}**"
                + (f", {params:,} trainable parameters." if isinstance(params, int) else "."),
            )
        )
        blocks.append(("pre", _model_summary(train)))
        blocks.append(
            (
                "table",
                ["epochs", "seed", "train time", "val accuracy", "test accuracy"],
                [
                    [
                        str(train.get("epochs", DASH)),
                        str(train.get("seed", DASH)),
                        f"{train['train_seconds']:.1f} s"
                        if isinstance(train.get("train_seconds"), (int, float))
                        else DASH,
                        _pct(train.get("val_accuracy")),
                        _pct(train.get("test_accuracy")),
                    ]
                ],
            )
        )
        img = plots.training_curve(train.get("history") or [], pdir / "training.png")
        blocks.append(("img", img, "training curve") if img else ("p", "No per-epoch history in train.json."))
    sections.append(("Model and training", blocks))

    blocks = []
    if not rows:
        blocks.append(("p", f"Verification: {data.status('verify')}. Benchmark: {data.status('bench')}."))
    else:
        for stage in ("verify", "bench", "manifest"):
            if not data.ran(stage):
                blocks.append(("p", f"{stage}: {data.status(stage)}; its columns show {DASH}."))
        lat_b = next((r.latency_batch for r in rows if r.latency_batch), 1)
        blocks.append(
            (
                "table",
                [
                    "backend",
                    "device",
                    "precision",
                    "format",
                    "accuracy",
                    "max abs error vs PyTorch",
                    "agreement",
                    f"p50 µs (b={lat_b})",
                    f"p99 µs (b={lat_b})",
                    "throughput /s",
                    "size",
                    "result",
                ]
                + (["host"] if len(data.hosts()) > 1 else []),
                [
                    [
                        r.backend,
                        r.device,
                        r.precision,
                        r.format,
                        _pct(r.accuracy),
                        _sci(r.max_abs),
                        _pct(r.agreement),
                        _us(r.p50_us),
                        _us(r.p99_us),
                        _tput(r),
                        _size(r.size_bytes),
                        _status(r) + (" (" + "; ".join(r.notes) + ")" if r.notes else ""),
                    ]
                    + ([r.host] if len(data.hosts()) > 1 else [])
                    for r in rows
                ],
            )
        )
        fails = [f"{r.name}: {'; '.join(r.reasons) or 'failed'}" for r in rows if r.passed is False]
        if fails:
            blocks.append(("list", fails))
    sections.append(("Results: backend × precision × device", blocks))

    for title, fn, name, what in (
        ("Latency per backend", plots.latency_bars, "latency.png", "bench"),
        ("Accuracy vs latency", plots.accuracy_vs_latency, "pareto.png", "verify and bench"),
        ("Batch-size scaling", plots.batch_scaling, "scaling.png", "bench"),
    ):
        img = fn(rows, pdir / name) if rows else None
        blocks = [("img", img, title)] if img else [("p", f"Not run: needs {what} results.")]
        if name == "pareto.png" and img:
            pick = recommend(rows)
            if pick:
                blocks.insert(
                    0,
                    (
                        "p",
                        f"Ship **{pick.name}** ({pick.format}): p50 {_us(pick.p50_us)} µs, accuracy "
                        f"{_pct(pick.accuracy)}; the fastest passing artifact on the Pareto front within "
                        f"{SHIP_TOLERANCE * 100:.1f} points of the best accuracy.",
                    ),
                )
        sections.append((title, blocks))

    grid, samples = data.run_dir / "grid.png", data.run_dir / "samples.png"
    if samples.is_file():
        pred = [
            ("p", "Sample images of your eval data with the reference model's predictions (red: wrong)."),
            ("img", samples, "sample predictions"),
        ]
    elif grid.is_file():
        pred = [("img", grid, "4x4 prediction grid")]
    else:
        pred = [("p", "Not run: no grid.png or samples.png (the pipeline renders them).")]
    sections.append(("Predictions", pred))
    sections.append(("Environment", _environment(data)))
    return sections


def _summary(data: RunData, train: dict | None) -> list:
    parts = []
    warns = data.warnings()
    if warns:
        parts.append("**WARNING: " + "; ".join(warns) + ".**")
    ev = data.evidence()
    if ev:
        parts.append(f"Evidence: {ev}.")
    if train:
        parts.append(f"Model {train.get('model', DASH)}, test accuracy {_pct(train.get('test_accuracy'))}.")
    verified = [r for r in data.rows if r.passed is not None]
    if verified:
        bad = [r.name for r in verified if not r.passed]
        parts.append(
            f"{len(verified) - len(bad)} of {len(verified)} verified artifacts pass"
            + (f"; failing: {', '.join(bad)}." if bad else ".")
        )
    else:
        parts.append(f"Verification: {data.status('verify')}.")
    pick = recommend(data.rows)
    if pick:
        parts.append(f"Recommended artifact: **{pick.name}** ({pick.format}).")
    return [("p", " ".join(parts)), ("p", f"Run folder: `{data.run_dir.resolve()}`")]


def _model_summary(train: dict) -> str:
    try:  # the torchsummary table, when torch is installed
        from ..sources.models import build_model, summary_text

        shape = tuple(train.get("input_shape", [1, 1, 28, 28])[-3:])
        return summary_text(build_model(train["model"]), shape).strip()
    except Exception:  # noqa: BLE001  light install, or a model not importable here
        shape = "x".join(map(str, train.get("input_shape", [])[1:])) or DASH
        return (
            f"model: {train.get('model', DASH)}\nparameters: {train.get('params', DASH)}\n"
            f"input: {shape}\nlabels: {', '.join(map(str, train.get('labels', []))) or DASH}"
        )


def _environment(data: RunData) -> list:
    env = environment(data.raw)
    blocks = [
        ("table", ["item", "value"], [[k, v] for k, v in env.items()])
        if env
        else ("p", "No environment recorded (no stage has run).")
    ]
    devs = devices(data.raw)
    if devs:
        blocks.append(
            (
                "table",
                ["backend", "device", "usable", "reason"],
                [
                    [
                        str(d.get("backend", DASH)),
                        str(d.get("device", DASH)),
                        "yes" if d.get("usable") else "no",
                        str(d.get("reason") or ""),
                    ]
                    for d in devs
                ],
            )
        )
    else:
        blocks.append(("p", f"Devices: {data.status('devices')}."))
    return blocks


# --------------------------------------------------------------------------- rendering


def to_markdown(sections: list) -> str:
    out = ["# edgeport report", ""]
    for title, blocks in sections:
        out += [f"## {title}", ""]
        for b in blocks:
            kind = b[0]
            if kind == "p":
                out.append(b[1])
            elif kind == "pre":
                out += ["```", b[1], "```"]
            elif kind == "list":
                out += [f"- {x}" for x in b[1]]
            elif kind == "img":
                path = Path(b[1])
                rel = (
                    path.relative_to(path.parents[1]).as_posix() if path.parent.name == "plots" else path.name
                )
                out.append(f"![{b[2]}]({rel})")
            elif kind == "table":
                out.append("| " + " | ".join(b[1]) + " |")
                out.append("|" + "---|" * len(b[1]))
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in b[2]]
            out.append("")
    return "\n".join(out)


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}h1{border-bottom:2px solid #ddd}h2{margin-top:1.8em;color:#234}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left}th{background:#f2f4f7}tr:nth-child(even) td{background:#fafbfc}td.pass{color:#096b1f;
font-weight:600}td.FAIL{color:#fff;background:#c62828!important;font-weight:600}img{max-width:100%;
border:1px solid #eee}pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em}"""


def _inline(text: str) -> str:
    esc = html.escape(text)
    parts = esc.split("**")
    esc = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = esc.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(sections: list) -> str:
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>edgeport report</title>",
        f"<style>{CSS}</style></head><body><h1>edgeport report</h1>",
    ]
    for title, blocks in sections:
        out.append(f"<h2>{html.escape(title)}</h2>")
        for b in blocks:
            kind = b[0]
            if kind == "p":
                out.append(f"<p>{_inline(b[1])}</p>")
            elif kind == "pre":
                out.append(f"<pre>{html.escape(b[1])}</pre>")
            elif kind == "list":
                out.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in b[1]) + "</ul>")
            elif kind == "img":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                out.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
                body = "".join(
                    "<tr>"
                    + "".join(
                        f"<td class='{c if c in ('pass', 'FAIL') else ''}'>{html.escape(c)}</td>" for c in row
                    )
                    + "</tr>"
                    for row in b[2]
                )
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)


__all__ = ["write_report", "build_sections", "to_markdown", "to_html", "recommend", "FILES"]
