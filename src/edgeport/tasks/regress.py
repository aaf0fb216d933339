"""Regression (``values`` outputs judged against targets) and ``raw`` (outputs with no known meaning).

Against the reference: relative error ``||out - ref|| / ||ref||`` over every
value (and the SQNR it implies).  Against targets: mean absolute error of
both, and its relative increase.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from .base import Accumulator, Gate, Task

REGRESS_GATES = (
    Gate("rel_error", "max", {"fp32": 1e-4, "fp16": 0.01, "int8": 0.05}, "||out - ref|| / ||ref||"),
    Gate("mae_increase", "max", {"fp16": 0.01, "int8": 0.05}, "relative increase of the mean absolute error"),
)
RAW_GATES = (Gate("rel_error", "max", {"fp32": 1e-4, "fp16": 0.01, "int8": 0.10}, "||out - ref|| / ||ref||"),)


class ErrorAccumulator(Accumulator):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.n = 0
        self.noise = self.signal = 0.0
        self.abs_err = self.ref_abs_err = 0.0
        self.count = 0

    def update(self, ref: dict, out: dict, labels=None) -> None:
        for k, name in enumerate(self.names):
            r = np.asarray(ref[name], np.float64)
            o = np.asarray(out[name], np.float64)
            if k == 0:
                self.n += len(r)
            self.noise += float(np.sum((o - r) ** 2))
            self.signal += float(np.sum(r**2))
            if labels is not None and k == 0:
                t = np.asarray(labels, np.float64).reshape(r.shape)
                self.abs_err += float(np.abs(o - t).sum())
                self.ref_abs_err += float(np.abs(r - t).sum())
                self.count += r.size

    def result(self) -> dict:
        res = {"n": self.n}
        if self.n:
            res["rel_error"] = math.sqrt(self.noise / self.signal) if self.signal else math.sqrt(self.noise)
            res["sqnr_db"] = 10 * math.log10(self.signal / self.noise) if self.noise and self.signal else None
        if self.count:
            mae, ref_mae = self.abs_err / self.count, self.ref_abs_err / self.count
            res |= {"mae": mae, "ref_mae": ref_mae, "mae_increase": (mae / ref_mae - 1.0) if ref_mae else 0.0}
        return res


class Regress(Task):
    name = "regress"
    title = "Regression"
    roles = ("values",)
    label_kind = "values"
    GATES = REGRESS_GATES
    primary_metric = "rel_error"
    primary_label_metric = "mae"
    SHOW = (("rel_error", "rel err", False), ("mae", "MAE", False), ("mae_increase", "MAE +", True))
    LABEL_METRICS = ("mae",)

    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        roles = [o.get("role") for o in outputs]
        first = next(
            (i for i, o in enumerate(outputs) if not roles[i] and o["dtype"].startswith("float")), None
        )
        return [
            r or ("values" if i == first and "values" not in roles else "aux") for i, r in enumerate(roles)
        ]

    def accumulator(self) -> Accumulator:
        return ErrorAccumulator([s.name for s in self.outputs("values")])

    def check_labels(self, labels) -> None:
        if labels is not None:
            a = np.asarray(labels)
            if a.dtype.kind not in "iuf" or not np.isfinite(a.astype(np.float64)).all():
                raise DataError("regression targets must be finite numbers")


class Raw(Regress):
    name = "raw"
    title = "Raw outputs"
    roles = ("aux",)
    label_kind = None
    GATES = RAW_GATES
    primary_label_metric = ""
    SHOW = (("rel_error", "rel err", False), ("sqnr_db", "SQNR dB", False))
    LABEL_METRICS = ()

    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        return [o.get("role") or "aux" for o in outputs]

    def accumulator(self) -> Accumulator:
        return ErrorAccumulator([s.name for s in self.signature.outputs if s.dtype.startswith("float")])
