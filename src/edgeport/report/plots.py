"""The report's plots (matplotlib, Agg).  Each returns the PNG path, or None with no data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .rundata import Row

COLORS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "int8": "#ff7f0e"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    import io

    from ..fsutil import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png")
    _plt().close(fig)
    return atomic_write(out, buf.getvalue())


def _name(labels, i) -> str:
    from ..errors import safe_text

    i = int(i)
    return safe_text(labels[i] if labels and 0 <= i < len(labels) else i, 24)


def sample_grid(images: list, actual, predicted, out: Path, *, labels=None, title=None) -> Path:
    """Up to 16 images (grey HW or RGB HWC, any size) titled "Actual: X / Predicted: Y" (red when wrong)."""
    plt = _plt()
    n = min(16, len(images))
    fig, axes = plt.subplots(4, 4, figsize=(8, 8.6))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = np.asarray(images[i])
        ax.imshow(img if img.ndim == 3 and img.shape[-1] == 3 else img.reshape(img.shape[:2]), cmap="gray")
        pred = _name(labels, predicted[i])
        if actual is None:
            ax.set_title(f"Predicted: {pred}", fontsize=9)
        else:
            ok = int(actual[i]) == int(predicted[i])
            ax.set_title(
                f"Actual: {_name(labels, actual[i])} / Predicted: {pred}",
                fontsize=9,
                color="black" if ok else "red",
            )
    if title:
        fig.suptitle(title)
    return _save(fig, out)


def training_curve(history: list[dict], out: Path) -> Path | None:
    """Train/validation loss and validation accuracy per epoch."""
    from .rundata import numbers

    hist = numbers(history, ("train_loss", "val_loss", "val_accuracy"))
    if not hist:
        return None
    plt = _plt()
    epochs = [h["epoch"] for h in hist]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        pts = [(e, h[key]) for e, h in zip(epochs, hist) if h.get(key) is not None]
        if pts:
            ax1.plot(*zip(*pts), marker="o", label=label)
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax1.legend()
    pts = [(e, h["val_accuracy"] * 100) for e, h in zip(epochs, hist) if h.get("val_accuracy") is not None]
    if pts:
        ax2.plot(*zip(*pts), marker="o", color="#2ca02c")
    ax2.set(xlabel="epoch", ylabel="accuracy (%)", title="Validation accuracy")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return _save(fig, out)


WHISKER_CAP = 4.0  # a p99 whisker is drawn at most this many times its p50 (and marked when clipped)


def latency_bars(rows: list[Row], out: Path) -> Path | None:
    """Batch-1 (smallest batch) p50 per backend/device/precision on a log axis, whiskers to p99 clipped at
    WHISKER_CAP x p50 (one slow outlier must not squash every other bar)."""
    rows = [r for r in rows if r.p50_us is not None and r.p50_us > 0]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.4))
    names = [f"{r.backend} · {r.device} · {r.precision}" for r in rows]
    p50 = np.array([r.p50_us for r in rows])
    p99 = np.array([max(r.p99_us or r.p50_us, r.p50_us) for r in rows])
    capped = np.minimum(p99, p50 * WHISKER_CAP)
    colors = [COLORS.get(r.precision, "#777") for r in rows]
    ax.barh(names, p50, color=colors, alpha=0.85)
    ax.errorbar(
        capped,
        range(len(rows)),
        xerr=[capped - p50, np.zeros(len(rows))],
        fmt="none",
        ecolor="#333",
        capsize=3,
    )
    for i, (v, hi, top) in enumerate(zip(p50, p99, capped)):
        clipped = hi > top * 1.0001
        ax.text(top, i, f" {v:,.0f} µs" + (f" (p99 {hi:,.0f} ▸)" if clipped else ""), va="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(p50.min() / 1.5, capped.max() * 4)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"latency p50, µs, log scale (batch {rows[0].latency_batch}); whisker: p99, clipped at {WHISKER_CAP:g}x p50"
    )
    ax.set_title("Latency per backend")
    ax.grid(axis="x", alpha=0.3, which="both")
    return _save(fig, out)


def pareto_front(rows: list[Row]) -> list[Row]:
    """Rows no other row beats on both latency (lower) and score (higher): the task's headline metric."""
    pts = [r for r in rows if r.p50_us is not None and r.score is not None]
    return [
        r
        for r in pts
        if not any(
            (o.p50_us <= r.p50_us and o.score >= r.score) and (o.p50_us < r.p50_us or o.score > r.score)
            for o in pts
        )
    ]


def accuracy_vs_latency(rows: list[Row], out: Path) -> Path | None:
    """The task's headline metric against batch-1 latency.  Points carry numbers and the legend names
    them, so labels never overlap however close the points are."""
    pts = sorted((r for r in rows if r.p50_us is not None and r.score is not None), key=lambda r: r.p50_us)
    if not pts:
        return None
    front = sorted(pareto_front(pts), key=lambda r: r.p50_us)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.8))
    scale = 100.0 if pts[0].score_name not in ("perplexity", "mae", "rel_error") else 1.0
    for k, r in enumerate(pts, 1):
        on = r in front
        y = r.score * scale
        ax.scatter(r.p50_us, y, s=90 if on else 45, color=COLORS.get(r.precision, "#777"),
                   edgecolors="black" if on else "none", zorder=3, label=f"{k}: {r.name}" + (" *" if on else ""))  # fmt: skip
        ax.annotate(str(k), (r.p50_us, y), fontsize=7, ha="center", va="center", color="white", zorder=4)
    ax.plot([r.p50_us for r in front], [r.score * scale for r in front], "k--", lw=1)
    ax.set_xscale("log")
    unit = " (%)" if scale == 100.0 else ""
    ax.set(
        xlabel=f"latency p50, µs (batch {pts[0].latency_batch}, log scale)",
        ylabel=f"{pts[0].score_name}{unit}",
        title="Quality vs latency (dashed: the Pareto front, marked *): ship an artifact on the front",
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out)


def batch_scaling(rows: list[Row], out: Path) -> Path | None:
    rows = [r for r in rows if r.scaling]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in rows:
        bs = sorted(r.scaling)
        ax.plot(
            bs,
            [r.scaling[b] for b in bs],
            marker="o",
            label=r.name,
            linestyle="-" if r.precision == "fp32" else "--",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="batch size", ylabel="throughput (samples/s)", title="Batch-size scaling")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out)


def task_pictures(pictures: list, out: Path, *, title: str = "") -> Path | None:
    """Up to 8 task pictures (PIL images: boxes drawn, masks overlaid) in a grid."""
    if not pictures:
        return None
    plt = _plt()
    n = min(8, len(pictures))
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.asarray(pictures[i]))
    if title:
        fig.suptitle(title)
    return _save(fig, out)
