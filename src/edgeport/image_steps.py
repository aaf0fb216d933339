"""The image steps as data: their names, order, fields and bounds, the presets, and building them
for an input spec from a preset, a JSON file and the command-line overrides (stdlib only).

:class:`edgeport.preprocessing.Preprocessing` runs them; the manifest validator and
``--preprocess FILE.json`` check them here, each field typed and bounded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ConfigError, safe_text

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
            raise fail(where, f"has unknown field(s) {', '.join(sorted(map(str, extra)))[:100]}")
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


def from_preset(name: str, input_name: str = "input"):
    from .preprocessing import Preprocessing

    if name not in PRESETS:
        raise ConfigError(f"unknown preprocessing preset {name!r}; choose from {', '.join(PRESETS)}")
    return Preprocessing(input_name, tuple(PRESETS[name]()), name)


def from_json_file(path: str | os.PathLike, input_name: str):
    """Steps from a small JSON file: a list of steps, or {"preset": ..., "steps": [...]}."""
    from .jsonsafe import read_preprocess_file
    from .preprocessing import Preprocessing

    p = Path(path)
    data = read_preprocess_file(p)
    if not isinstance(data, (dict, list)):
        raise ConfigError(
            f"--preprocess {p} holds a {type(data).__name__}; expected a list of steps or "
            '{"preset": NAME} / {"steps": [...]}'
        )
    steps = data.get("steps") if isinstance(data, dict) else data
    preset = data.get("preset") if isinstance(data, dict) else None
    if preset is not None and (not isinstance(preset, str) or len(preset) > 64):
        raise ConfigError(
            f"--preprocess {p}: preset must be a name ({', '.join(PRESETS)}), got {type(preset).__name__}"
        )
    if steps is None and preset:
        return from_preset(preset, input_name)
    _check_steps(steps, _config_fail)
    return Preprocessing(input_name, tuple(steps), preset)


def build(
    *,
    input_spec,
    preset: str | None = None,
    mode: str | None = None,
    resize: int | None = None,
    crop: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    scale: float | None = None,
):
    """Preprocessing for ``input_spec`` from a preset or JSON file (``preset``) plus flag overrides.

    With no preset: MNIST's for a 1x28x28 input, ImageNet-style for 3-channel
    images (resize to crop/0.875, centre crop to the input size), a plain 0..1
    scaling for other 1-channel images.
    """
    from .preprocessing import Preprocessing

    if input_spec.layout is None:
        raise ConfigError(f"input {input_spec.name!r} is not an image input; it takes no preprocessing steps")
    c_axis, hw = (1, (2, 3)) if input_spec.layout == "NCHW" else (3, (1, 2))
    channels = input_spec.shape[c_axis]
    size = tuple(input_spec.shape[i] for i in hw)
    if preset and (preset.endswith(".json") or os.path.sep in preset):
        base = from_json_file(preset, input_spec.name)
    elif preset:
        base = from_preset(preset, input_spec.name)
    elif channels == 1 and size == (28, 28):
        base = from_preset("mnist", input_spec.name)
    elif channels == 3 and all(isinstance(s, int) for s in size):
        base = Preprocessing(
            input_spec.name, tuple(_imagenet_steps(size[0], int(round(min(size) / 0.875)))), "imagenet"
        )
        if size[0] != size[1]:
            base = _override(base, "center_crop", {"op": "center_crop", "size": list(size)})
    else:
        base = Preprocessing(
            input_spec.name,
            (
                {"op": "decode", "mode": "L" if channels == 1 else "RGB"},
                {"op": "scale", "factor": 1.0 / 255.0},
                {"op": "layout", "layout": input_spec.layout},
                {"op": "dtype", "dtype": input_spec.dtype},
            ),
            None,
        )
    custom = False
    if mode:
        step = dict(base.step("decode"), mode=mode)
        if mode == "RGB":
            step.pop("fit_digit", None)
        base, custom = _override(base, "decode", step), True
    if resize is not None:
        base, custom = (
            _override(
                base,
                "resize",
                {
                    "op": "resize",
                    "size": int(resize),
                    "mode": "shorter",
                    "interpolation": "bilinear",
                    "antialias": True,
                },
            ),
            True,
        )
    if crop is not None:
        c = [crop, crop] if isinstance(crop, int) else list(crop)
        base, custom = _override(base, "center_crop", {"op": "center_crop", "size": c}), True
    if scale is not None:
        base, custom = _override(base, "scale", {"op": "scale", "factor": float(scale)}), True
    if mean is not None or std is not None:
        old = base.step("normalize") or {"mean": [0.0] * channels, "std": [1.0] * channels}
        step = {"op": "normalize", "mean": list(mean or old["mean"]), "std": list(std or old["std"])}
        base, custom = _override(base, "normalize", step), True
    if preset and (
        preset.endswith(".json") or os.path.sep in preset
    ):  # steps the user wrote: no silent change
        for op, want in (("layout", input_spec.layout), ("dtype", input_spec.dtype)):
            have = (base.step(op) or {}).get(op)
            if have is not None and have != want:
                raise ConfigError(
                    f"--preprocess {safe_text(preset, 200)} sets {op} {safe_text(str(have), 40)}, but input "
                    f"{input_spec.name!r} takes {want}; make the step match, or leave it out (edgeport adds it)"
                )
    base = _override(base, "layout", {"op": "layout", "layout": input_spec.layout})
    base = _override(base, "dtype", {"op": "dtype", "dtype": input_spec.dtype})
    if custom:
        base = Preprocessing(base.input, base.steps, f"{base.preset}+custom" if base.preset else "custom")
    _check_steps([dict(s) for s in base.steps], _config_fail)
    problem = base.mismatch(input_spec)
    if problem:
        raise ConfigError(
            f"preprocessing does not fit the model: {problem}; adjust --preprocess/--resize/--crop"
        )
    return base


def _override(p, op: str, step: dict):
    from .preprocessing import Preprocessing

    steps = [s for s in p.steps if s["op"] != op] + [step]
    steps.sort(key=lambda s: OPS.index(s["op"]))
    return Preprocessing(p.input, tuple(steps), p.preset)
