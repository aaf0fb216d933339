"""Synthetic keywords: one-second clips of tone patterns in noise, for keyword spotting.

Eight classes, each a pattern with random pitch (within its range), length, onset, loudness and
harmonics, over white noise and mains hum at a random signal-to-noise ratio:

``beep-beep`` two short beeps, ``chirp-down`` / ``chirp-up`` a falling / rising sweep,
``chord`` two tones a fifth apart, ``noise`` no event at all, ``tone-high`` / ``tone-low`` a
steady tone above 1.5 kHz / below 600 Hz, ``warble`` a tone wobbling 6-12 times a second.

:func:`write_wavfolder` stores clips as 16-bit PCM mono 16 kHz WAV files, one folder per class
(``--data wavfolder:DIR``); :func:`log_mels` computes the ``kws`` preset's features (40 log-mels,
n_fft 480, hop 160, 101 frames) of the same 16-bit samples.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 16000
CLASSES = ("beep-beep", "chirp-down", "chirp-up", "chord", "noise", "tone-high", "tone-low", "warble")
KWS = {"n_fft": 480, "hop": 160, "n_mels": 40, "f_min": 20.0, "f_max": 8000.0, "eps": 1e-6}


def _envelope(n: int, rng: np.random.Generator) -> np.ndarray:
    attack = max(1, int(rng.uniform(0.005, 0.03) * RATE))
    env = np.ones(n)
    env[:attack] = np.linspace(0, 1, attack)
    env[-attack:] = np.linspace(1, 0, attack)
    return env


def _tone(freq, rng: np.random.Generator) -> np.ndarray:
    """A tone following ``freq`` (Hz per sample), with a random second and third harmonic."""
    phase = 2 * np.pi * np.cumsum(freq) / RATE
    h2, h3 = rng.uniform(0, 0.5), rng.uniform(0, 0.25)
    return np.sin(phase) + h2 * np.sin(2 * phase) + h3 * np.sin(3 * phase)


def _event(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / RATE
    if kind == "chirp-up" or kind == "chirp-down":
        lo, hi = rng.uniform(250, 500), rng.uniform(1500, 3000)
        f = np.geomspace(lo, hi, n) if kind == "chirp-up" else np.geomspace(hi, lo, n)
        return _tone(f, rng)
    if kind == "tone-high" or kind == "tone-low":
        f0 = rng.uniform(1500, 3500) if kind == "tone-high" else rng.uniform(150, 600)
        return _tone(np.full(n, f0), rng)
    if kind == "warble":
        f0, depth, rate = rng.uniform(600, 1200), rng.uniform(0.1, 0.3), rng.uniform(6, 12)
        return _tone(f0 * (1 + depth * np.sin(2 * np.pi * rate * t)), rng)
    if kind == "chord":
        f0 = rng.uniform(300, 900)
        return 0.5 * (_tone(np.full(n, f0), rng) + _tone(np.full(n, 1.5 * f0), rng))
    if kind == "beep-beep":
        f0, gap = rng.uniform(700, 1400), int(n * rng.uniform(0.15, 0.3))
        beep = (n - gap) // 2
        out = np.zeros(n)
        out[:beep] = _tone(np.full(beep, f0), rng) * _envelope(beep, rng)
        out[beep + gap : 2 * beep + gap] = out[:beep]
        return out
    return np.zeros(n)  # noise: no event


def make_clip(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One second of ``kind`` as int16 samples at 16 kHz."""
    n = int(rng.uniform(0.3, 0.7) * RATE)
    start = int(rng.integers(0, RATE - n))
    clip = np.zeros(RATE)
    clip[start : start + n] = _event(kind, n, rng) * _envelope(n, rng)
    clip *= rng.uniform(0.03, 0.4) / max(np.abs(clip).max(), 1e-9) if kind != "noise" else 0.0
    level = rng.uniform(0.005, 0.08)
    hum = rng.uniform(0, 0.02) * np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * np.arange(RATE) / RATE)
    clip += rng.normal(0, level, RATE) + hum
    return np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)


def make_clips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(int16 clips [n, 16000], class ids [n]): classes in turn, clip ``i`` depends on (seed, i) only."""
    labels = np.arange(n) % len(CLASSES)
    clips = np.stack([make_clip(CLASSES[c], np.random.default_rng([seed, i])) for i, c in enumerate(labels)])
    return clips, labels.astype(np.int64)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.asarray(samples, "<i2").tobytes())


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, RATE):
            raise ValueError(f"{path}: expected 16-bit mono {RATE} Hz")
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy()


def write_wavfolder(clips: np.ndarray, labels: np.ndarray, folder: str | Path) -> Path:
    """``folder/<class>/clipNNNNN.wav``, one subfolder per class."""
    folder = Path(folder)
    for c in CLASSES:
        (folder / c).mkdir(parents=True, exist_ok=True)
    for i, (clip, c) in enumerate(zip(clips, labels)):
        write_wav(folder / CLASSES[int(c)] / f"clip{i:05d}.wav", clip)
    return folder


def read_wavfolder(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(int16 clips, class ids) of a folder written by :func:`write_wavfolder`, in sorted file order."""
    folder = Path(folder)
    clips, labels = [], []
    for c, name in enumerate(CLASSES):
        for p in sorted((folder / name).glob("*.wav")):
            clips.append(read_wav(p))
            labels.append(c)
    return np.stack(clips), np.asarray(labels, np.int64)


def mel_filters(rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """HTK-scale triangular filters ``[n_fft // 2 + 1, n_mels]``, unnormalised (torchaudio's defaults)."""
    try:
        from ..mel import mel_filters as shared  # the runtime's own, where this edgeport has it
    except ImportError:
        shared = None
    if shared is not None:
        return shared(rate, n_fft, n_mels, f_min, f_max)
    mel = 2595.0 * np.log10(1.0 + np.array([f_min, f_max]) / 700.0)
    f_pts = 700.0 * (10.0 ** (np.linspace(mel[0], mel[1], n_mels + 2) / 2595.0) - 1.0)
    slopes = f_pts[None, :] - np.linspace(0, rate // 2, n_fft // 2 + 1)[:, None]
    f_diff = np.diff(f_pts)
    return np.maximum(0.0, np.minimum(-slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]))


def log_mels(clips: np.ndarray) -> np.ndarray:
    """int16 clips ``[N, 16000]`` -> float32 ``[N, 1, 40, 101]``: the ``kws`` preset's log-mels (periodic
    Hann STFT, reflect padding, HTK mel filters, ``log(power + 1e-6)``), in torch for speed."""
    import torch

    x = torch.from_numpy(np.asarray(clips, np.float32) / 32768.0)
    window = torch.hann_window(KWS["n_fft"], periodic=True)
    spec = torch.stft(
        x, KWS["n_fft"], KWS["hop"], window=window, center=True, pad_mode="reflect", return_complex=True
    )
    fb = torch.from_numpy(mel_filters(RATE, KWS["n_fft"], KWS["n_mels"], KWS["f_min"], KWS["f_max"])).float()
    mel = torch.einsum("nft,fm->nmt", spec.abs() ** 2, fb)
    return torch.log(mel + KWS["eps"]).unsqueeze(1).numpy()
