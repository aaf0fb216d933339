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


def latency_bars(rows: list[Row], out: Path) -> Path | None:
    """Batch-1 (smallest batch) p50 per backend/device/precision, whiskers to p99."""
    rows = [r for r in rows if r.p50_us is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.4))
    names = [f"{r.backend} · {r.device} · {r.precision}" for r in rows]
    p50 = [r.p50_us for r in rows]
    err = [max(0.0, (r.p99_us or r.p50_us) - r.p50_us) for r in rows]
    ax.barh(
        names,
        p50,
        xerr=[[0] * len(rows), err],
        color=[COLORS.get(r.precision, "#777") for r in rows],
        capsize=3,
    )
    for i, v in enumerate(p50):
        ax.text(v, i, f" {v:,.0f} µs", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"latency p50, µs (batch {rows[0].latency_batch}); whisker: p99")
    ax.set_title("Latency per backend")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out)


def pareto_front(rows: list[Row]) -> list[Row]:
    """Rows no other row beats on both latency (lower) and accuracy (higher)."""
    pts = [r for r in rows if r.p50_us is not None and r.accuracy is not None]
    return [
        r
        for r in pts
        if not any(
            (o.p50_us <= r.p50_us and o.accuracy >= r.accuracy)
            and (o.p50_us < r.p50_us or o.accuracy > r.accuracy)
            for o in pts
        )
    ]


def accuracy_vs_latency(rows: list[Row], out: Path) -> Path | None:
    pts = [r for r in rows if r.p50_us is not None and r.accuracy is not None]
    if not pts:
        return None
    front = sorted(pareto_front(pts), key=lambda r: r.p50_us)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in pts:
        on = r in front
        ax.scatter(
            r.p50_us,
            r.accuracy * 100,
            s=80 if on else 40,
            color=COLORS.get(r.precision, "#777"),
            edgecolors="black" if on else "none",
            zorder=3,
        )
        ax.annotate(
            r.name, (r.p50_us, r.accuracy * 100), fontsize=7, xytext=(4, 4), textcoords="offset points"
        )
    ax.plot([r.p50_us for r in front], [r.accuracy * 100 for r in front], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set(
        xlabel=f"latency p50, µs (batch {pts[0].latency_batch}, log scale)",
        ylabel="test accuracy (%)",
        title="Accuracy vs latency: ship an artifact on the front",
    )
    ax.legend(loc="lower right")
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
