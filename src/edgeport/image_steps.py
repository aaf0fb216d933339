"""The image steps as data: their names, order, fields and bounds, and the presets (stdlib only).  :mod:`edgeport.preprocessing` builds them for an input spec from a preset, a JSON
file and the command-line overrides.

:class:`edgeport.preprocessing.Preprocessing` runs them; the manifest validator and
``--preprocess FILE.json`` check them here, each field typed and bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .errors import ConfigError

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_LABELS = [str(i) for i in range(10)]
OPS = ("decode", "resize", "center_crop", "scale", "normalize", "layout", "dtype")
MAX_SIDE = 16384


def _mnist_steps() -> list[dict]:
    return [
        {"op": "decode", "mode": "L", "fit_digit": True},
        {"op": "scale", "factor": 1.0 / 255.0},
        {"op": "normalize", "mean": [MNIST_MEAN], "std": [MNIST_STD]},
        {"op": "layout", "layout": "NCHW"},
        {"op": "dtype", "dtype": "float32"},
    ]


def _imagenet_steps(size: int = 224, resize: int = 256) -> list[dict]:
    return [
        {"op": "decode", "mode": "RGB"},
        {"op": "resize", "size": resize, "mode": "shorter", "interpolation": "bilinear", "antialias": True},
        {"op": "center_crop", "size": [size, size]},
        {"op": "scale", "factor": 1.0 / 255.0},
        {"op": "normalize", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        {"op": "layout", "layout": "NCHW"},
        {"op": "dtype", "dtype": "float32"},
    ]


PRESETS: dict[str, Callable[[], list[dict]]] = {"mnist": _mnist_steps, "imagenet": _imagenet_steps}


# --------------------------------------------------------------------------- validation


def _check_steps(steps, fail: Callable[[str, str], Exception]) -> list[dict]:
    """Each step's fields and types; ``fail(where, what)`` builds the error to raise."""
    if not isinstance(steps, list) or not steps:
        raise fail("preprocessing.steps", "must be a non-empty list")
    if len(steps) > len(OPS):
        raise fail("preprocessing.steps", f"has {len(steps)} steps, at most {len(OPS)}")
    order = [s.get("op") if isinstance(s, dict) else None for s in steps]
    if order[0] != "decode" or any(o not in OPS for o in order) or len(set(order)) != len(order):
        raise fail("preprocessing.steps", f"must start with decode and use each of {', '.join(OPS)} once")
    if order != sorted(order, key=OPS.index):
        raise fail("preprocessing.steps", f"must come in the order {', '.join(OPS)}")
    allowed = {
        "decode": {"mode", "fit_digit"},
        "resize": {"size", "mode", "interpolation", "antialias"},
        "center_crop": {"size"},
        "scale": {"factor"},
        "normalize": {"mean", "std"},
        "layout": {"layout"},
        "dtype": {"dtype"},
    }
    for i, s in enumerate(steps):
        where = f"preprocessing.steps[{i}] ({s['op']})"
        extra = set(s) - {"op"} - allowed[s["op"]]
        if extra:
            raise fail(
                where, f"has unknown field(s) {', '.join(sorted(repr(str(k))[:40] for k in extra))[:100]}"
            )
        _check_step(s, where, fail)
    return steps


def _side(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE


def _finite(v, lo=-1e6, hi=1e6) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, int):  # a huge int (10**400) cannot become a float: compare it as it is
        return lo <= v <= hi
    return math.isfinite(v) and lo <= v <= hi


def _check_step(s: dict, where: str, fail) -> None:
    op = s["op"]
    if op == "decode":
        if s.get("mode") not in ("L", "RGB") or not isinstance(s.get("fit_digit", False), bool):
            raise fail(where, "needs mode L or RGB (and fit_digit true/false)")
        if s.get("fit_digit") and s["mode"] != "L":
            raise fail(where, "fit_digit needs mode L")
    elif op == "resize":
        size = s.get("size")
        mode = s.get("mode", "shorter" if isinstance(size, int) else "exact")
        ok_size = (
            _side(size)
            if mode == "shorter"
            else (isinstance(size, list) and len(size) == 2 and all(map(_side, size)))
        )
        if mode not in ("shorter", "exact") or not ok_size:
            raise fail(where, f"needs size (int for mode shorter, [h, w] for exact, 1..{MAX_SIDE})")
        if s.get("interpolation", "bilinear") != "bilinear" or s.get("antialias", True) is not True:
            raise fail(where, "supports interpolation bilinear with antialias true only")
    elif op == "center_crop":
        size = s.get("size")
        if not (isinstance(size, list) and len(size) == 2 and all(map(_side, size))):
            raise fail(where, f"needs size [h, w] with sides 1..{MAX_SIDE}")
    elif op == "scale":
        if not _finite(s.get("factor"), 1e-9, 1e3) or s["factor"] <= 0:
            raise fail(where, "needs a positive factor")
    elif op == "normalize":
        mean, std = s.get("mean"), s.get("std")
        if not (
            isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) and len(mean) in (1, 3)
        ):
            raise fail(where, "needs mean and std lists of 1 or 3 numbers")
        if not all(map(_finite, mean)) or not all(_finite(v, 1e-6, 1e6) for v in std):
            raise fail(where, "needs finite means and stds > 0")
    elif op == "layout":
        if s.get("layout") not in ("NCHW", "NHWC"):
            raise fail(where, "needs layout NCHW or NHWC")
    elif op == "dtype":
        if s.get("dtype") not in ("float32", "float16"):
            raise fail(where, "needs dtype float32 or float16")


# --------------------------------------------------------------------------- building


def _config_fail(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where} {what}")
