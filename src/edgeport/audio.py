"""Audio preprocessing, torch-free: WAV files or decoded waveforms -> one model input (numpy + stdlib).

The steps (:mod:`edgeport.audio_steps`) are recorded in the manifest as a
preprocessing block with ``"kind": "audio"``; :class:`AudioPreprocessing`
runs them the same way at export, in ``verify`` and in an edge application's
``predict``.  Files are decoded by :mod:`edgeport.audioio` (only the window a
clip keeps is read) and log-mel features computed by :mod:`edgeport.mel`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .audio_steps import PRESETS, check_audio_steps, feature_shape, fit
from .errors import ConfigError, InputError


@dataclass(frozen=True)
class AudioPreprocessing:
    """Ordered steps that turn waveforms into one model input."""

    kind: ClassVar[str] = "audio"
    input: str
    steps: tuple[dict, ...]
    preset: str | None = None

    @classmethod
    def from_manifest(cls, d: dict) -> AudioPreprocessing:
        return cls(d["input"], tuple(d["steps"]), d.get("preset"))

    def to_manifest(self) -> dict:
        return {
            "input": self.input,
            "kind": "audio",
            "preset": self.preset,
            "steps": [dict(s) for s in self.steps],
        }

    def step(self, op: str) -> dict | None:
        return next((s for s in self.steps if s["op"] == op), None)

    @property
    def by_op(self) -> dict:
        return {s["op"]: s for s in self.steps}

    @property
    def sample_rate(self) -> int:
        return int(self.step("decode_wav")["sample_rate"])

    @property
    def samples(self) -> int:
        return int(self.step("pad_crop")["samples"])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.step("layout")["shape"])

    @property
    def dtype(self) -> str:
        s = self.step("dtype")
        return s["dtype"] if s else "float32"

    def value_range(self) -> tuple[float, float] | None:
        """The input range of waveform features ([-1, 1] normalised); None for log-mels (observed instead)."""
        if self.step("log_mel"):
            return None
        n = self.step("normalize") or {"mean": 0.0, "std": 1.0}
        return (-1.0 - n["mean"]) / n["std"], (1.0 - n["mean"]) / n["std"]

    def mismatch(self, spec) -> str:
        """Why these steps cannot feed ``spec`` (empty if they can)."""
        per = tuple(spec.shape[1:])
        if not all(isinstance(d, int) for d in per):
            return f"input {spec.name!r} has dynamic dims {list(per)}; audio steps make a fixed shape"
        if per != self.shape:
            return f"the steps make {list(self.shape)} per clip but input {spec.name!r} takes {list(per)}"
        if spec.dtype != self.dtype:
            return f"the steps produce {self.dtype} but input {spec.name!r} is {spec.dtype}"
        return ""

    def describe(self) -> str:
        return " -> ".join(
            f"{s['op']}({', '.join(f'{k}={v}' for k, v in s.items() if k != 'op')})" for s in self.steps
        )

    # -- running ---------------------------------------------------------------
    def window(self, n: int) -> int:
        """Where the kept clip starts in a waveform of ``n`` samples (negative: zeros pad the front)."""
        samples, mode = self.samples, self.step("pad_crop").get("mode", "center")
        if mode == "start":
            return 0
        return (n - samples) // 2 if n >= samples else -((samples - n) // 2)

    def decode_file(self, path: str | os.PathLike, *, limit: int | None = None) -> np.ndarray:
        """One WAV file -> the clip the steps keep: mono float32 ``[samples]`` at the steps' sample rate.
        (``limit`` is accepted for the image interface and unused: only the kept window is read.)"""
        from .audioio import read_window, resampled_length, wav_info

        info = wav_info(path)
        n = resampled_length(info.frames, info.rate, self.sample_rate)
        return read_window(path, self.sample_rate, self.window(n), self.samples)

    def check_file(self, path: str | os.PathLike, *, limit: int | None = None) -> None:
        """A DataError now if ``path`` is not a WAV file this can read (its header only)."""
        from .audioio import wav_info

        wav_info(path)

    def load(self, paths, *, limit: int | None = None) -> np.ndarray:
        return self.apply([self.decode_file(p) for p in paths])

    def pad_crop(self, wave: np.ndarray) -> np.ndarray:
        a, samples = self.window(len(wave)), self.samples
        out = np.zeros(samples, np.float32)
        lo, hi = max(0, a), min(len(wave), a + samples)
        out[lo - a : hi - a] = wave[lo:hi]
        return out

    def apply(self, waves) -> np.ndarray:
        """Waveforms at the steps' sample rate -> the model input ``[N, *shape]``.

        ``waves``: a float array ``[N, T]`` in [-1, 1] (or int16 PCM), or a list of 1-D arrays of any
        lengths (each is padded or cut as the steps say).
        """
        batch = [self.pad_crop(w) for w in _as_waves(waves)]
        x = np.stack(batch)
        by = self.by_op
        if "log_mel" in by:
            from .mel import log_mel

            x = log_mel(x, self.sample_rate, by["log_mel"])
            if by["layout"].get("axes", "mel_time") == "time_mel":
                x = x.transpose(0, 2, 1)
        if "normalize" in by:
            x = (x - np.float32(by["normalize"]["mean"])) / np.float32(by["normalize"]["std"])
        x = x.reshape((len(x),) + self.shape)
        return np.ascontiguousarray(x, dtype=np.float16 if self.dtype == "float16" else np.float32)


def _as_waves(waves) -> list[np.ndarray]:
    items = list(waves) if isinstance(waves, (list, tuple)) else None
    if items is None:
        arr = np.asarray(waves)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2:
            raise InputError(
                f"waveforms must be [N, samples] or a list of 1-D arrays, got shape {list(arr.shape)}"
            )
        items = list(arr)
    if not items:
        raise InputError("no waveforms given; pass at least one")
    out = []
    for i, w in enumerate(items):
        w = np.asarray(w)
        if w.ndim != 1 or w.size == 0:
            raise InputError(f"waveform {i} has shape {list(w.shape)}; pass mono 1-D samples")
        if w.dtype == np.int16:
            w = w.astype(np.float32) / 32768.0
        elif w.dtype.kind != "f":
            raise InputError(f"waveform {i} is {w.dtype}; pass float samples in [-1, 1] or int16 PCM")
        w = w.astype(np.float32)
        if not np.isfinite(w).all():
            raise InputError(f"waveform {i} holds NaN or infinite samples")
        out.append(w)
    return out


# --------------------------------------------------------------------------- manifest and building


def validate_manifest_audio(pre: dict, signature, bad) -> dict:
    extra = set(pre) - {"input", "kind", "preset", "steps"}
    if extra or "input" not in pre or "steps" not in pre:
        raise bad("preprocessing", "must hold input, kind, steps (and optionally preset)")
    if pre.get("preset") is not None and (not isinstance(pre["preset"], str) or len(pre["preset"]) > 64):
        raise bad("preprocessing.preset", "must be a short string or null")
    try:
        spec = signature.input(pre["input"])
    except (KeyError, TypeError):
        raise bad("preprocessing.input", "does not name one of the inputs") from None
    steps = check_audio_steps(pre["steps"], bad)
    problem = AudioPreprocessing(pre["input"], tuple(steps), pre.get("preset")).mismatch(spec)
    if problem:
        raise bad("preprocessing", problem)
    return pre


def _config_fail(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where} {what}")


def json_steps(preset: str | None) -> dict | None:
    """The audio block of a ``--preprocess FILE.json`` (``{"kind": "audio", "steps": [...]}``), else None."""
    if not preset or not (preset.endswith(".json") or os.path.sep in preset):
        return None
    from .jsonsafe import read_preprocess_file

    data = read_preprocess_file(Path(preset))
    return data if isinstance(data, dict) and data.get("kind") == "audio" else None


def wanted(preset, data_specs) -> bool:
    """Whether an export takes audio steps: ``wavfolder:`` data, an audio preset, or an audio JSON file."""
    if isinstance(preset, AudioPreprocessing) or (isinstance(preset, str) and preset in PRESETS):
        return True
    if isinstance(preset, str) and json_steps(preset) is not None:
        return True
    return preset is None and any(isinstance(d, str) and d.startswith("wavfolder:") for d in data_specs)


def audio_input(signature):
    """The input audio steps feed: the first floating-point input."""
    for spec in signature.inputs:
        if spec.dtype in ("float32", "float16"):
            return spec
    raise ConfigError("audio preprocessing needs a float32/float16 model input; the model has none")


def build(signature, preset=None) -> AudioPreprocessing:
    """Audio steps for ``signature``'s audio input: a JSON file's steps as written, or the ``kws`` preset
    (the default) fitted to the input's per-sample shape (see :func:`edgeport.audio_steps.fit`)."""
    spec = audio_input(signature)
    if isinstance(preset, AudioPreprocessing):
        pre = AudioPreprocessing(spec.name, preset.steps, preset.preset)
    elif (block := json_steps(preset)) is not None:
        steps = check_audio_steps(block.get("steps"), _config_fail)
        pre = AudioPreprocessing(spec.name, tuple(steps), block.get("preset"))
    else:
        name = preset or "kws"
        if name not in PRESETS:
            raise ConfigError(
                f"unknown audio preset {name!r}; choose from {', '.join(PRESETS)} or a JSON file"
            )
        pre = AudioPreprocessing(spec.name, tuple(fit(PRESETS[name](), spec)), name)
    check_audio_steps([dict(s) for s in pre.steps], _config_fail)
    problem = pre.mismatch(spec)
    if problem:
        raise ConfigError(f"audio preprocessing does not fit the model: {problem}; adjust --preprocess")
    return pre


__all__ = ["AudioPreprocessing", "build", "feature_shape", "validate_manifest_audio", "wanted"]
