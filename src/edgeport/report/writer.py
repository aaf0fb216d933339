"""``report.md`` and a self-contained ``report.html``, rebuilt from a run folder's JSON.

The report is a list of sections made of blocks (paragraph, table, image,
preformatted text); :func:`to_markdown` and :func:`to_html` render the same
list, so the two never disagree.  Stages that did not run say so.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, DataError
from . import plots
from .render import to_html, to_markdown
from .rundata import DASH, FILES, Row, RunData, devices, environment, load

# The accuracy an artifact may give up, against the best one, to be recommended for its speed.
SHIP_TOLERANCE = 0.002


PLOTS = ("training.png", "latency.png", "pareto.png", "scaling.png")  # under RUN/plots/


def write_report(run_dir: str | os.PathLike, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``RUN/report.md``, ``RUN/report.html`` and ``RUN/plots/*.png``; return both paths.

    Each file is refused if it exists, unless ``force``; each is written atomically.
    """
    from ..fsutil import atomic_write, check_new_files

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run folder {run_dir} not found; run `edgeport pipeline --out {run_dir}` first")
    from .lm import is_lm_run, write_lm_report

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
    """The fastest passing artifact on the Pareto front within :data:`SHIP_TOLERANCE` of the best score
    (the task's headline metric), never one flagged slower than its fp32 twin."""
    ok = [r for r in plots.pareto_front(rows) if r.passed is not False and not r.slower_than_fp32]
    if not ok:
        return None
    best = max(r.score for r in ok)
    return min((r for r in ok if r.score >= best - SHIP_TOLERANCE), key=lambda r: r.p50_us)


def build_sections(data: RunData) -> list[tuple[str, list]]:
    """Every section of the report, in order (each built by its own function)."""
    train = data.raw["train"] if isinstance(data.raw.get("train"), dict) else None
    return [
        ("Summary", _summary(data, train)),
        ("Model and training", _training(data, train)),
        ("Results: backend × precision × device", _results(data)),
        *_task_sections(data),
        *_plot_sections(data),
        ("Timing noise", _noise(data)),
        ("Predictions", _predictions(data)),
        ("Environment", _environment(data)),
    ]


def _training(data: RunData, train: dict | None) -> list:
    if train is None:
        return [("p", f"Training: {data.status('train')}.")]
    params = train.get("params")
    seconds = train.get("train_seconds")
    blocks = [
        ("p", f"Model **{train.get('model', DASH)}**" + (f", {params:,} trainable parameters." if isinstance(params, int) else ".")),
        ("pre", _model_summary(train, data)),
        (
            "table",
            ["epochs", "seed", "train time", "val accuracy", "test accuracy"],
            [[
                str(train.get("epochs", DASH)),
                str(train.get("seed", DASH)),
                f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else DASH,
                _pct(train.get("val_accuracy")),
                _pct(train.get("test_accuracy")),
            ]],
        ),
    ]  # fmt: skip
    img = plots.training_curve(train.get("history") or [], data.run_dir / "plots" / "training.png")
    blocks.append(("img", img, "training curve") if img else ("p", "No per-epoch history in train.json."))
    return blocks


def _task_of(data: RunData):
    from ..tasks import registry

    name = next((r.task for r in data.rows if r.task), "") or "classify"
    try:
        return registry.task_class(name)
    except Exception:  # noqa: BLE001 - an unknown task name in a hand-edited verify.json
        return registry.task_class("classify")


def _results(data: RunData) -> list:
    rows = data.rows
    if not rows:
        return [("p", f"Verification: {data.status('verify')}. Benchmark: {data.status('bench')}.")]
    blocks = [
        ("p", f"{stage}: {data.status(stage)}; its columns show {DASH}.")
        for stage in ("verify", "bench", "manifest")
        if not data.ran(stage)
    ]
    task = _task_of(data)
    lat_b = next((r.latency_batch for r in rows if r.latency_batch), 1)
    multi = len(data.hosts()) > 1
    head = ["backend", "device", "precision", "format", f"{task.name} metrics", "max abs error vs PyTorch"]
    head += [f"p50 µs (b={lat_b})", f"p99 µs (b={lat_b})", "throughput /s", "size", "result"] + (
        ["host"] if multi else []
    )
    table = [
        [r.backend, r.device, r.precision, r.format, task.summary_of(r.metrics) or DASH, _sci(r.max_abs),
         _us(r.p50_us), _us(r.p99_us), _tput(r), _size(r.size_bytes),
         _status(r) + (" (" + "; ".join(r.notes) + ")" if r.notes else "")]
        + ([r.host] if multi else [])
        for r in rows
    ]  # fmt: skip
    blocks.append(("table", head, table))
    fails = [f"{r.name}: {'; '.join(r.reasons) or 'failed'}" for r in rows if r.passed is False]
    if fails:
        blocks.append(("list", fails))
    return blocks


def _task_sections(data: RunData) -> list:
    """The task's own section: every metric per artifact against its gate (and pictures, if any)."""
    rows = [r for r in data.rows if r.metrics]
    if not rows:
        return []
    task = _task_of(data)
    gates = task.gate_table()
    names = [m for m, _, _ in (task.SHOW or ())] or list(gates)
    names += [m for m in rows[0].metrics if m not in names and m.startswith("ref_") is False and m != "n"][:4]
    head = ["artifact", *names, "result"]
    table = []
    for r in rows:
        cells = [r.name]
        for m in names:
            v = r.metrics.get(m)
            pct = (
                m in gates and gates[m].percent or m in ("accuracy", "map50", "map", "miou", "pixel_accuracy")
            )
            cells.append(DASH if v is None else (f"{v * 100:.2f}%" if pct else f"{v:.4g}"))
        table.append([*cells, _status(r)])
    text = "; ".join(
        f"{g.metric} {'≥' if g.direction == 'min' else '≤'} "
        + ", ".join(f"{p} {v:g}" for p, v in g.defaults.items())
        + f" ({g.text})"
        for g in task.GATES
    )
    blocks = [("p", f"Task **{task.name}** ({task.title}). Default gates: {text}."), ("table", head, table)]
    pictures = data.run_dir / "task.png"
    if pictures.is_file():
        blocks.append(("img", pictures, f"{task.name} predictions"))
    return [(f"Task metrics: {task.title}", blocks)]


def _plot_sections(data: RunData) -> list:
    rows, pdir = data.rows, data.run_dir / "plots"
    out = []
    for title, fn, name, what in (
        ("Latency per backend", plots.latency_bars, "latency.png", "bench"),
        ("Quality vs latency", plots.accuracy_vs_latency, "pareto.png", "verify and bench"),
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
                        f"Ship **{pick.name}** ({pick.format}): p50 {_us(pick.p50_us)} µs, {pick.score_name} "
                        f"{_score(pick)}; the fastest passing artifact on the Pareto front within "
                        f"{SHIP_TOLERANCE * 100:.1f} points of the best, and not slower than its fp32 twin.",
                    ),
                )
        out.append((title, blocks))
    return out


def _score(r: Row) -> str:
    if r.score is None:
        return DASH
    return (
        _pct(abs(r.score))
        if r.score_name not in ("perplexity", "mae", "rel_error")
        else f"{abs(r.score):.4g}"
    )


def _noise(data: RunData) -> list:
    rows = [r for r in data.rows if r.cov is not None]
    if not rows:
        return [("p", f"Benchmark: {data.status('bench')}.")]
    noisy = sorted((r for r in rows if r.cov > 0.10), key=lambda r: -r.cov)
    from .rundata import NOISE_CEILING, NOISE_FLOOR

    text = (
        f"Speed comparisons (int8 against fp32, and the recommendation) count a difference only beyond a "
        f"noise margin: half the larger latency CoV of the two rows, between {NOISE_FLOOR * 100:.0f}% and "
        f"{NOISE_CEILING * 100:.0f}%. "
    )
    if noisy:
        text += (
            f"{len(noisy)} of {len(rows)} rows varied a lot (latency CoV above 10%): the machine was busy; "
            "rerun the benchmark on a quiet machine, or with a longer --min-seconds, before trusting small ratios."
        )
        return [("p", text), ("table", ["row", "CoV"], [[r.name, f"{r.cov * 100:.1f}%"] for r in noisy])]
    worst = max(rows, key=lambda r: r.cov)
    return [("p", text + f"Every row was steady (largest CoV {worst.cov * 100:.1f}%, {worst.name}).")]


def _predictions(data: RunData) -> list:
    grid, samples = data.run_dir / "grid.png", data.run_dir / "samples.png"
    if samples.is_file():
        return [
            ("p", "Sample images of your eval data with the reference model's predictions (red: wrong)."),
            ("img", samples, "sample predictions"),
        ]
    if grid.is_file():
        return [("img", grid, "4x4 prediction grid")]
    return [("p", "Not run: no grid.png or samples.png (the pipeline renders them).")]


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
    slow = [r.name for r in data.rows if r.slower_than_fp32]
    if slow:
        parts.append(f"Not recommended (slower than fp32 beyond noise): {', '.join(slow)}.")
    return [("p", " ".join(parts)), ("p", f"Run folder: `{data.run_dir.resolve()}`")]


def _model_summary(train: dict, data=None) -> str:
    try:  # the torchsummary table, when torch is installed and the model runs no untrusted code
        from ..sources.models import build_model, summary_text
        from ..trust import code_is_trusted

        shape = tuple(train.get("input_shape", [1, 1, 28, 28])[-3:])
        model = build_model(
            str(train["model"]),
            train.get("model_args") or {},
            trust_code=code_is_trusted(),  # train.json is a file like any other: no import without the opt-in
            origin=f"run folder {data.run_dir} (train.json)" if data is not None else "train.json",
        )
        return summary_text(model, shape).strip()
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


__all__ = ["write_report", "build_sections", "to_markdown", "to_html", "recommend", "FILES"]
