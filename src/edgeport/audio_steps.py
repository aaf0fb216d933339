"""The audio steps as data: names, order, fields and bounds, the ``kws`` preset, and fitting the steps
to an input spec (stdlib + numpy).

A manifest block ``{"input": NAME, "kind": "audio", "preset": ..., "steps": [...]}`` holds, in order:

================  ====================================================================================
``decode_wav``    ``sample_rate`` (Hz, files are resampled to it), ``mono`` (true: channels are averaged)
``pad_crop``      ``samples`` per clip, ``mode`` center|start (zeros pad a short clip, a long one is cut)
``log_mel``       optional: ``n_fft``, ``hop``, ``n_mels``, ``f_min``, ``f_max`` (Hz), ``eps``:
                  ``log(mel power + eps)``, ``1 + samples // hop`` frames (see :mod:`edgeport.mel`)
``normalize``     optional: scalar ``mean`` and ``std``
``layout``        ``shape``: the per-sample shape the model input takes (``[1, 40, 101]``, ``[16000]``);
                  ``axes`` mel_time (default) or time_mel, the order of a spectrogram's two axes
``dtype``         optional: float32 (default) or float16
================  ====================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

OPS = ("decode_wav", "pad_crop", "log_mel", "normalize", "layout", "dtype")
REQUIRED = ("decode_wav", "pad_crop", "layout")
FIELDS = {
    "decode_wav": {"sample_rate", "mono"},
    "pad_crop": {"samples", "mode"},
    "log_mel": {"n_fft", "hop", "n_mels", "f_min", "f_max", "eps"},
    "normalize": {"mean", "std"},
    "layout": {"shape", "axes"},
    "dtype": {"dtype"},
}
MAX_SAMPLES = 1 << 24  # ~17 minutes at 16 kHz per clip
MAX_DIM = 1 << 24
MAX_FEATURES = 1 << 24  # values per clip after the steps (64 MiB of float32): a manifest cannot ask for more


def kws_steps() -> list[dict]:
    """Keyword spotting: 16 kHz mono, 1 s centred, 40 log-mels over 30 ms windows every 10 ms."""
    return [
        {"op": "decode_wav", "sample_rate": 16000, "mono": True},
        {"op": "pad_crop", "samples": 16000, "mode": "center"},
        {
            "op": "log_mel",
            "n_fft": 480,
            "hop": 160,
            "n_mels": 40,
            "f_min": 20.0,
            "f_max": 8000.0,
            "eps": 1e-6,
        },
        {"op": "layout", "shape": [1, 40, 101], "axes": "mel_time"},
        {"op": "dtype", "dtype": "float32"},
    ]


PRESETS: dict[str, Callable[[], list[dict]]] = {"kws": kws_steps}


def _int(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _num(v, lo: float, hi: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def check_audio_steps(steps, fail) -> list[dict]:
    """Every step's fields, types and bounds, and that they fit together; ``fail(where, what)`` makes the error."""
    if not isinstance(steps, list) or not 3 <= len(steps) <= len(OPS):
        raise fail("preprocessing.steps", f"must list 3 to {len(OPS)} audio steps")
    order = [s.get("op") if isinstance(s, dict) else None for s in steps]
    if (
        any(o not in OPS for o in order)
        or len(set(order)) != len(order)
        or order != sorted(order, key=OPS.index)
    ):
        raise fail(
            "preprocessing.steps", f"must use the audio steps in the order {', '.join(OPS)}, each once"
        )
    if any(r not in order for r in REQUIRED):
        raise fail("preprocessing.steps", f"must hold {', '.join(REQUIRED)}")
    by = {s["op"]: s for s in steps}
    for i, s in enumerate(steps):
        extra = set(s) - {"op"} - FIELDS[s["op"]]
        if extra:
            where = f"preprocessing.steps[{i}] ({s['op']})"
            raise fail(
                where, f"has unknown field(s) {', '.join(sorted(repr(str(k))[:40] for k in extra))[:100]}"
            )
    rate = by["decode_wav"].get("sample_rate")
    if not _int(rate, 1000, 384_000) or by["decode_wav"].get("mono", True) is not True:
        raise fail("preprocessing.steps (decode_wav)", "needs sample_rate 1000..384000 Hz and mono true")
    pc = by["pad_crop"]
    if not _int(pc.get("samples"), 1, MAX_SAMPLES) or pc.get("mode", "center") not in ("center", "start"):
        raise fail(
            "preprocessing.steps (pad_crop)", f"needs samples 1..{MAX_SAMPLES} and mode center or start"
        )
    if "log_mel" in by:
        _check_log_mel(by["log_mel"], rate, pc["samples"], fail)
    if "normalize" in by:
        n = by["normalize"]
        if not _num(n.get("mean"), -1e6, 1e6) or not _num(n.get("std"), 1e-9, 1e6):
            raise fail("preprocessing.steps (normalize)", "needs a finite scalar mean and a std > 0")
    _check_layout(by, fail)
    if by.get("dtype", {}).get("dtype", "float32") not in ("float32", "float16"):
        raise fail("preprocessing.steps (dtype)", "needs dtype float32 or float16")
    return steps


def _check_log_mel(s: dict, rate: int, samples: int, fail) -> None:
    where = "preprocessing.steps (log_mel)"
    if not _int(s.get("n_fft"), 8, min(16384, samples)) or not _int(s.get("hop"), 1, s["n_fft"]):
        raise fail(where, f"needs n_fft 8..min(16384, samples={samples}) and hop 1..n_fft")
    if not _int(s.get("n_mels"), 1, 512) or not _num(s.get("eps"), 1e-12, 1.0):
        raise fail(where, "needs n_mels 1..512 and eps between 1e-12 and 1")
    f_min, f_max = s.get("f_min"), s.get("f_max")
    if not _num(f_min, 0.0, rate / 2) or not _num(f_max, 0.0, rate / 2) or not f_min < f_max:
        raise fail(where, f"needs 0 <= f_min < f_max <= {rate / 2:g} Hz (half the sample rate)")
    from .mel import mel_filters

    empty = int((mel_filters(rate, s["n_fft"], s["n_mels"], f_min, f_max).sum(axis=0) == 0).sum())
    if empty:
        raise fail(where, f"has {empty} mel band(s) holding no FFT bin: use fewer n_mels or a larger n_fft")


def feature_shape(by: dict) -> tuple[int, ...]:
    """The shape one clip has before the layout step: ``(samples,)``, or the spectrogram's two axes."""
    samples = by["pad_crop"]["samples"]
    lm = by.get("log_mel")
    if lm is None:
        return (samples,)
    t = 1 + samples // lm["hop"]
    return (t, lm["n_mels"]) if by["layout"].get("axes", "mel_time") == "time_mel" else (lm["n_mels"], t)


def _check_layout(by: dict, fail) -> None:
    lay = by["layout"]
    shape = lay.get("shape")
    where = "preprocessing.steps (layout)"
    if not (isinstance(shape, list) and 1 <= len(shape) <= 4 and all(_int(d, 1, MAX_DIM) for d in shape)):
        raise fail(where, f"needs shape: a list of 1 to 4 sizes 1..{MAX_DIM}")
    if lay.get("axes", "mel_time") not in ("mel_time", "time_mel") or ("axes" in lay and "log_mel" not in by):
        raise fail(where, "takes axes mel_time or time_mel, and only after log_mel")
    feat = feature_shape(by)
    if math.prod(feat) > MAX_FEATURES:
        raise fail(where, f"makes {math.prod(feat):,} values per clip, at most {MAX_FEATURES:,}")
    if [d for d in shape if d != 1] != [d for d in feat if d != 1]:
        raise fail(
            where, f"shape {shape} does not hold the features {list(feat)} (only sizes of 1 may be added)"
        )


def fit(steps: list[dict], spec) -> list[dict]:
    """A preset's steps fitted to ``spec``'s per-sample shape.

    One size above 1 (``[16000]``, ``[1, 16000]``): waveform in, ``pad_crop`` keeps that many samples
    and ``log_mel`` is dropped.  Two (``[1, 40, 101]``): a spectrogram; the size equal to the preset's
    ``n_mels`` is the mel axis (else the first), the other the frames; the clip keeps its duration and
    ``hop`` becomes ``samples // (frames - 1)`` when the preset's does not give that many frames.
    """
    from .errors import ConfigError

    by = {s["op"]: dict(s) for s in steps}
    per = [d for d in spec.shape[1:]]
    if not all(isinstance(d, int) for d in per):
        raise ConfigError(
            f"input {spec.name!r} has dynamic dims {per}; audio steps make a fixed shape, fix them"
        )
    big = [d for d in per if d != 1]
    if len(big) == 1:
        by.pop("log_mel", None)
        by["pad_crop"]["samples"] = big[0]
        by["layout"] = {"op": "layout", "shape": per}
    elif len(big) == 2 and "log_mel" in by:
        lm = by["log_mel"]
        a, b = big
        axes = "time_mel" if (b == lm["n_mels"] and a != lm["n_mels"]) else "mel_time"
        n_mels, n_frames = (b, a) if axes == "time_mel" else (a, b)
        samples = by["pad_crop"]["samples"]
        hop = lm["hop"]
        if 1 + samples // hop != n_frames:
            hop = samples // max(1, n_frames - 1) if n_frames > 1 else samples
        if hop < 1 or 1 + samples // hop != n_frames:
            raise ConfigError(
                f"input {spec.name!r} takes {n_frames} frames; no hop gives that many from {samples} samples - "
                "pass --preprocess FILE.json with matching pad_crop and log_mel steps"
            )
        lm |= {"n_mels": n_mels, "hop": hop, "n_fft": min(samples, max(lm["n_fft"], hop))}
        by["layout"] = {"op": "layout", "shape": per, "axes": axes}
    else:
        raise ConfigError(
            f"input {spec.name!r} takes {per} per sample; audio steps make a waveform ([16000], [1, 16000]) "
            "or a spectrogram ([1, 40, 101]) - pass --preprocess FILE.json for anything else"
        )
    by["dtype"] = {"op": "dtype", "dtype": spec.dtype}
    return [by[op] for op in OPS if op in by]
