"""The data plan of an export: calibration, selection and eval sources from the user's data options."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .base import DataPlan, DataSource, balanced_positions
from .feeds import FeedSource
from .open import open_source
from .synthetic import SyntheticSource


def plan_data(
    *,
    signature,
    preprocessing,
    data: str | None = None,
    calibration_data: str | None = None,
    eval_data: str | None = None,
    data_dir=None,
    calibration_size: int = 300,
    selection_size: int = 5000,
    seed: int = 0,
    max_pixels=None,
    mnist=None,
) -> DataPlan:
    """Calibration, selection and eval sources from ``--data`` (split by recorded indices) or the two
    explicit ones.  Class labels give a class-balanced calibration set; boxes, masks and the rest a
    plain seeded one."""
    if data is not None and (calibration_data is not None or eval_data is not None):
        raise ConfigError("pass --data, or --calibration-data with --eval-data, not both")
    if (calibration_data is None) != (eval_data is None):
        raise ConfigError("--calibration-data and --eval-data go together (or pass one --data to split)")
    common = dict(
        signature=signature,
        preprocessing=preprocessing,
        data_dir=data_dir,
        max_pixels=max_pixels,
        mnist=mnist,
    )
    kind, _, rest = data.partition(":") if isinstance(data, str) else ("", "", "")
    if kind == "mnist" and not rest:
        return _mnist_plan(common, calibration_size, seed)
    if kind == "synthetic":
        n = open_source(data, role="eval", **common)
        cal = SyntheticSource(signature, calibration_size, seed=1, role="calibration")
        sel = SyntheticSource(signature, min(selection_size, len(n)), seed=2, role="selection")
        return DataPlan(cal, sel, n)
    if data is not None:
        cal, ev = _split_one(data, common, calibration_size, seed)
    else:
        cal_src = as_source(calibration_data, "calibration", common)
        ev = as_source(eval_data, "eval", common)
        size = min(calibration_size, len(cal_src))
        cal = cal_src.subset(
            balanced_positions(cal_src.class_labels(), size, seed, n=len(cal_src)), "calibration"
        )
    sel_pos = np.sort(np.random.default_rng(seed + 1).permutation(len(ev))[: min(selection_size, len(ev))])
    return DataPlan(cal, ev.subset(sel_pos, "selection"), ev)


def as_source(spec, role: str, common: dict) -> DataSource:
    """A spec string opened, a :class:`DataSource` as it is, or Python samples (:mod:`.feeds`) read."""
    if isinstance(spec, DataSource):
        return spec
    if isinstance(spec, (str, Path)):
        return open_source(str(spec), role=role, **common)
    return FeedSource.from_items(spec, common["signature"], role=role)


def _mnist_plan(common: dict, calibration_size: int, seed: int) -> DataPlan:
    """MNIST's own splits: calibration from train, selection from val, eval on test."""
    cal_all = open_source("mnist:train", role="calibration", **common)
    sel = open_source("mnist:val", role="selection", **common)
    ev = open_source("mnist:test", role="eval", **common)
    cal = cal_all.subset(balanced_positions(cal_all.class_labels(), calibration_size, seed), "calibration")
    return DataPlan(cal, sel, ev)


def _split_one(data: str, common: dict, calibration_size: int, seed: int):
    """(calibration, eval) split from one ``--data`` source by recorded, seeded indices."""
    src = as_source(data, "all", common)
    if len(src) < calibration_size + 10:
        raise DataError(
            f"--data {data if isinstance(data, str) else 'from Python'} holds {len(src)} samples: too few to split {calibration_size} for calibration "
            "and keep the rest for evaluation; pass a smaller --calibration-size or separate "
            "--calibration-data/--eval-data"
        )
    cal_pos = balanced_positions(src.class_labels(), calibration_size, seed, n=len(src))
    rest = np.setdiff1d(np.arange(len(src)), cal_pos)
    return src.subset(cal_pos, "calibration"), src.subset(rest, "eval")


__all__ = ["plan_data"]
