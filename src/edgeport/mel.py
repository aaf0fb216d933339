"""Log-mel spectrograms in numpy, as torchaudio's ``MelSpectrogram`` computes them by default.

STFT: a periodic Hann window of ``n_fft`` samples, ``hop`` apart, the signal
reflect-padded by ``n_fft // 2`` on each side (``center=True``), so ``T``
samples give ``1 + T // hop`` frames; power = ``|X|**2``.  Mel filters: the
HTK scale, triangular, unnormalised (torchaudio's ``melscale_fbanks`` with
``norm=None, mel_scale="htk"``).  Then ``log(mel + eps)``.
"""

from __future__ import annotations

import numpy as np


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def frames(samples: int, hop: int) -> int:
    return 1 + samples // hop


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular filters ``[n_fft // 2 + 1, n_mels]`` (column j: the weight of each FFT bin in band j)."""
    n_freqs = n_fft // 2 + 1
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    f_pts = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``[N, T]`` float waveforms -> ``[N, n_fft // 2 + 1, 1 + T // hop]`` power spectra."""
    x = np.asarray(x, np.float64)
    pad = n_fft // 2
    padded = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    n_frames = frames(x.shape[1], hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    spec = np.fft.rfft(padded[:, idx] * window, axis=-1)  # N, frames, bins
    return (spec.real**2 + spec.imag**2).transpose(0, 2, 1)


def log_mel(x: np.ndarray, sample_rate: int, step: dict) -> np.ndarray:
    """``[N, T]`` waveforms -> ``[N, n_mels, frames]`` log-mel features (float32), as the step says."""
    fb = mel_filters(sample_rate, step["n_fft"], step["n_mels"], step["f_min"], step["f_max"])
    power = power_spectrogram(x, step["n_fft"], step["hop"])
    mel = np.einsum("nft,fm->nmt", power, fb)
    return np.log(mel + step["eps"]).astype(np.float32)
