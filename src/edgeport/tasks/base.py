"""What every task module provides: its output roles, parameters, metrics, gates and labels.

A task reads a model's outputs by *role* (``class_scores``, ``boxes``,
``mask_logits``, ``embedding``, ``token_logits``...), measures an artifact
against the PyTorch reference always and against labels when the data has
them, and judges the result with *gates*: named thresholds on its metrics,
documented per precision and overridable by the user (``--gate
miou_drop=0.01``).  Metrics stream: an :class:`Accumulator` takes batch after
batch and keeps bounded state.  numpy only, so ``selfcheck`` and ``predict``
use the same code on a device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError

LABELLED = "@labelled"  # a gate name's suffix: the threshold that applies when the eval data has labels


@dataclass(frozen=True)
class Gate:
    """A threshold on one metric: ``min`` means metric >= threshold, ``max`` metric <= threshold.

    ``labelled``: thresholds (per precision) that replace the default when the data has labels, so the
    task's own metric decides and this one is only a floor (classify: with labels, accuracy within
    0.5 points decides and top-1 agreement only has to stay >= 98%; without labels agreement is all
    there is, and its gate stays at 99.5%).  Recorded in the manifest as ``METRIC@labelled``.
    """

    metric: str
    direction: str  # "min" | "max"
    defaults: dict  # precision -> threshold (absent: not gated at that precision)
    text: str = ""
    percent: bool = True  # shown as percent / points
    labelled: dict = field(default_factory=dict)  # precision -> threshold with labelled data

    def passes(self, value: float, threshold: float) -> bool:
        eps = 1e-12
        return value >= threshold - eps if self.direction == "min" else value <= threshold + eps

    def describe(self, value: float, threshold: float, labelled: bool = False) -> str:
        op = ">=" if self.direction == "min" else "<="
        on = " with labels" if labelled else ""
        if self.percent:
            return f"{self.metric} {value * 100:.2f}% (gate {op} {threshold * 100:.2f}%{on})"
        return f"{self.metric} {value:.4g} (gate {op} {threshold:.4g}{on})"


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    choices: tuple | None = None
    lo: float | None = None
    hi: float | None = None
    text: str = ""

    def check(self, value):
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(
                    f"--task-param {self.name}={str(value)[:40]!r}: choose one of "
                    f"{', '.join(map(str, self.choices))}"
                )
            return value
        if value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise ConfigError(
                f"--task-param {self.name}={str(value)[:40]!r}: expected a number between {self.lo} and {self.hi}"
            )
        return type(self.default)(value) if isinstance(self.default, (int, float)) else value


class Accumulator:
    """Running metrics of one artifact against the reference (and labels), batch by batch."""

    def update(self, ref: dict, out: dict, labels=None) -> None:
        raise NotImplementedError

    def result(self) -> dict:
        """Metric name -> value (None where it could not be measured), plus ``n``."""
        raise NotImplementedError


class Task:
    """Base class of every task: subclasses set the class attributes and implement the hooks."""

    name = ""
    title = ""
    roles = ()  # the roles this task judges; at least the first must be present
    label_kind = None  # what labels look like: class, boxes, mask, tokens, values (None: no labels)
    GATES = ()  # Gate, ...
    PARAMS = ()  # Param, ...
    primary_metric = ""  # ranks int8 candidates (with labels: primary_label_metric)
    primary_label_metric = ""

    def __init__(self, signature, params: dict | None = None) -> None:
        self.signature = signature
        self.params = self.resolve_params(params)

    def __repr__(self) -> str:
        return f"<task {self.name} {self.params}>"

    # -- parameters ------------------------------------------------------------------
    @classmethod
    def resolve_params(cls, given: dict | None) -> dict:
        given = dict(given or {})
        known = {p.name: p for p in cls.PARAMS}
        unknown = [k for k in given if k not in known]
        if unknown:
            names = ", ".join(known) or "none"
            raise ConfigError(
                f"--task-param {str(unknown[0])[:40]}: task {cls.name} takes no such parameter "
                f"(it takes: {names})"
            )
        return {p.name: p.check(given.get(p.name, p.default)) for p in cls.PARAMS}

    # -- roles -------------------------------------------------------------------------
    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        """Roles for observed outputs ``[{name, shape, dtype, kind, role}]`` (declared roles kept)."""
        raise NotImplementedError

    def outputs(self, role: str) -> list:
        return self.signature.outputs_with_role(role)

    def output(self, role: str):
        found = self.outputs(role)
        return found[0] if found else None

    # -- metrics and gates -----------------------------------------------------------
    def accumulator(self) -> Accumulator:
        raise NotImplementedError

    @classmethod
    def gate_table(cls) -> dict[str, Gate]:
        """Gate name -> gate, the ``METRIC@labelled`` variants included."""
        out = {g.metric: g for g in cls.GATES}
        out |= {g.metric + LABELLED: g for g in cls.GATES if g.labelled}
        return out

    def gates_for(self, precision: str, overrides: dict | None = None) -> dict[str, float]:
        """The thresholds that apply at ``precision``: the documented defaults, then the user's.

        A user's ``METRIC`` override applies with and without labels (it drops ``METRIC@labelled``)."""
        out = {g.metric: g.defaults[precision] for g in self.GATES if g.defaults.get(precision) is not None}
        out |= {g.metric + LABELLED: g.labelled[precision] for g in self.GATES if precision in g.labelled}
        named = {
            k.rpartition(".")[2]
            for k, v in (overrides or {}).items()
            if k.rpartition(".")[0] in ("", precision)
        }
        for metric in named:
            if LABELLED not in metric and metric + LABELLED not in named:
                out.pop(metric + LABELLED, None)
        for key, value in (overrides or {}).items():
            prec, _, metric = key.rpartition(".")
            if prec and prec != precision:
                continue
            if metric not in self.gate_table():
                raise ConfigError(
                    f"--gate {key}: task {self.name} has no gate {metric!r}; its gates are "
                    f"{', '.join(self.gate_table())}"
                )
            if value is None:
                out.pop(metric, None)
            else:
                out[metric] = float(value)
        return out

    def judge(self, metrics: dict, gates: dict[str, float]) -> tuple[list[str], list[str]]:
        """(reasons it failed, gates that were evaluated).  A gate whose metric is None is skipped."""
        table = self.gate_table()
        labelled = bool(metrics.get("labelled"))
        reasons, evaluated = [], []
        for name, threshold in gates.items():
            metric, suffix = name.removesuffix(LABELLED), name.endswith(LABELLED)
            if suffix != labelled and (suffix or metric + LABELLED in gates):
                continue  # the other variant applies to this data
            value = metrics.get(metric)
            if value is None:
                continue
            evaluated.append(name)
            gate = table[name]
            if not (isinstance(value, (int, float)) and math.isfinite(value)) or not gate.passes(
                value, threshold
            ):
                reasons.append(gate.describe(float(value), threshold, suffix))
        return reasons, evaluated

    def rank_key(self, metrics: dict) -> tuple:
        """Higher is better: int8 candidates are ranked by this (labels first, then the reference metric)."""

        def signed(name):
            v = metrics.get(name)
            if v is None or not math.isfinite(v):
                return -math.inf
            g = self.gate_table().get(name)
            return -v if g is not None and g.direction == "max" else v

        return (signed(self.primary_label_metric), signed(self.primary_metric))

    # -- labels ----------------------------------------------------------------------
    def check_labels(self, labels) -> None:
        """:class:`DataError` when ``labels`` cannot be this task's labels (range, dtype, NaN)."""

    # what tables show: (metric, short name, percent?) - gate metrics and the label metrics
    SHOW: tuple = ()

    def summary(self, metrics: dict) -> str:
        return self.summary_of(metrics)

    @classmethod
    def summary_of(cls, metrics: dict, *, label_only: bool = False) -> str:
        """One short line of the metrics that matter, for tables (``label_only``: the label metrics)."""
        shown = cls.SHOW or tuple((g.metric, g.metric, g.percent) for g in cls.GATES)
        parts = []
        for metric, short, percent in shown:
            v = metrics.get(metric)
            if v is None or (label_only and metric not in cls.LABEL_METRICS):
                continue
            parts.append(f"{short} {v * 100:.2f}%" if percent else f"{short} {v:.4g}")
        return ", ".join(parts)

    LABEL_METRICS: tuple = ()

    # -- predict -----------------------------------------------------------------------
    def predict_rows(self, outputs: dict, labels, *, top_k: int = 3) -> list[dict]:
        """One JSON-able row per sample of a batch of outputs: what ``edgeport predict`` prints."""
        rows = []
        for i in range(len(next(iter(outputs.values())))):
            rows.append({n: _describe(np.asarray(v[i])) for n, v in outputs.items()})
        return rows

    def format_row(self, row: dict) -> str:
        return "; ".join(f"{k}: {v}" for k, v in row.items() if k != "file")

    def picture(self, image, row: dict, outputs_i: dict, input_hw):
        """A picture of one prediction over its image (PIL image), or None for tasks people read."""
        return None


def check_int_labels(labels, lo: int, hi: int, what: str, allowed=()) -> np.ndarray:
    """Labels as int64, each in ``lo..hi`` (or one of ``allowed``); :class:`DataError` naming the first bad one."""
    a = np.asarray(labels)
    if a.dtype.kind not in "iuf" or a.dtype.kind == "c":
        raise DataError(f"{what} must be integers, got {a.dtype}; pass integer class ids")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            v = a[bad].flat[0]
            raise DataError(f"{what} must be whole numbers, found {v!r}; pass integer class ids")
    a = a.astype(np.int64)
    ok = (a >= lo) & (a <= hi)
    for v in allowed:
        ok |= a == v
    if not ok.all():
        v = int(a[~ok].flat[0])
        extra = f" (or {', '.join(map(str, allowed))})" if allowed else ""
        raise DataError(
            f"{what}: found {v}, expected {lo}..{hi}{extra}; the labels do not fit the model's classes"
        )
    return a


def safe_div(a: float, b: float) -> float | None:
    return a / b if b else None


def _describe(a: np.ndarray) -> str:
    if a.size == 0:
        return f"{list(a.shape)} (empty)"
    if a.dtype.kind in "fiu":
        af = a.astype(np.float64)
        return f"{list(a.shape)} min {af.min():.4g} max {af.max():.4g} mean {af.mean():.4g}"
    return f"{list(a.shape)} {a.dtype}"
