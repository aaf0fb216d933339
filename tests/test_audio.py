"""Audio preprocessing, torch-free: WAV reading, resampling, pad/crop, log-mel features, the manifest's
audio block, and the steps fitted to a model input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_writers import tone, write_extensible_wav, write_float_wav, write_wav
from edgeport.audio import AudioPreprocessing, build, validate_manifest_audio
from edgeport.audio_steps import kws_steps
from edgeport.audioio import decode_wav, resample_window, wav_info
from edgeport.errors import BundleError, ConfigError, DataError, InputError
from edgeport.mel import hz_to_mel, mel_filters, mel_to_hz, power_spectrogram
from edgeport.specs import BATCH, Dim, Signature, TensorSpec


def kws() -> AudioPreprocessing:
    return AudioPreprocessing("audio", tuple(kws_steps()), "kws")


def audio_signature(*per, name="audio", dims=None) -> Signature:
    x = TensorSpec(name=name, dtype="float32", shape=(BATCH, *per))
    y = TensorSpec(name="logits", dtype="float32", shape=(BATCH, 3), kind="logits")
    return Signature((x,), (y,), {BATCH: Dim(BATCH, 1, 64), **(dims or {})})


# --------------------------------------------------------------------------- features


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3500.0])
def test_a_pure_tone_lands_in_its_mel_band(freq):
    pre = kws()
    x = pre.apply(tone(freq, 16000, 1.0)[None].astype(np.float32))
    assert x.shape == (1, 1, 40, 101) and x.dtype == np.float32
    centres = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(8000.0), 42))[1:-1]
    expected = int(np.argmin(np.abs(centres - freq)))
    bands = x[0, 0, :, 10:90].mean(axis=1)  # away from the reflect-padded edges
    assert abs(int(np.argmax(bands)) - expected) <= 1, (freq, int(np.argmax(bands)), expected)
    assert bands.max() - np.median(bands) > 5  # a peak, not noise (log scale)


def test_stft_power_matches_torch_stft():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 4000))
    ours = power_spectrogram(x, 480, 160)
    spec = torch.stft(
        torch.from_numpy(x), 480, 160, window=torch.hann_window(480, dtype=torch.float64), center=True,
        pad_mode="reflect", return_complex=True,
    )  # fmt: skip
    np.testing.assert_allclose(ours, spec.abs().numpy() ** 2, rtol=1e-9, atol=1e-9)


def test_mel_filters_are_triangles_peaking_at_their_centres():
    fb = mel_filters(16000, 480, 40, 20.0, 8000.0)
    freqs = np.linspace(0, 8000, 241)
    centres = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(8000.0), 42))[1:-1]
    assert fb.shape == (241, 40) and (fb >= 0).all() and fb.max() <= 1.0
    assert (fb.sum(axis=0) > 0).all()
    peaks = freqs[fb.argmax(axis=0)]
    assert np.all(np.abs(peaks - centres) <= 8000 / 240)  # within one FFT bin


def test_pad_crop_centre_and_start():
    pre = kws()
    short = np.arange(1, 11, dtype=np.float32)
    centre = pre.pad_crop(short)
    assert (
        centre.shape == (16000,) and centre[7995:8005].tolist() == short.tolist() and centre[:7995].sum() == 0
    )
    long_ = np.arange(20000, dtype=np.float32)
    assert pre.pad_crop(long_)[0] == 2000 and pre.pad_crop(long_)[-1] == 17999
    start = AudioPreprocessing(
        "audio", tuple(dict(s, mode="start") if s["op"] == "pad_crop" else s for s in kws_steps())
    )
    assert start.pad_crop(long_)[0] == 0 and start.pad_crop(short)[:10].tolist() == short.tolist()


def test_waveform_inputs_are_checked():
    pre = kws()
    ok = pre.apply([np.zeros(100, np.float32), (np.ones(20000) * 0.1).astype(np.int16)])
    assert ok.shape == (2, 1, 40, 101)
    with pytest.raises(InputError, match="NaN"):
        pre.apply([np.full(10, np.nan, np.float32)])
    with pytest.raises(InputError, match="mono 1-D"):
        pre.apply([np.zeros((2, 100), np.float32)])
    with pytest.raises(InputError, match="uint8"):
        pre.apply([np.zeros(100, np.uint8)])


# --------------------------------------------------------------------------- resampling and WAV files


@pytest.mark.parametrize("src", [44100, 8000, 22050])
def test_resampling_keeps_a_tone_and_removes_what_the_new_rate_cannot_hold(src):
    x = tone(1000.0, src, 0.5)
    got = resample_window(lambda a, k: _window(x, a, k), src, 16000, 0, 8000)
    want = tone(1000.0, 16000, 0.5)
    inner = slice(400, 7600)  # the ends meet zeros outside the signal
    assert np.max(np.abs(got[inner] - want[inner])) < 2e-3
    if src > 16000:  # a 10 kHz tone is above the new Nyquist (8 kHz): filtered out, not aliased to 6 kHz
        hi = resample_window(lambda a, k: _window(tone(10000.0, src, 0.5), a, k), src, 16000, 0, 8000)
        assert np.sqrt(np.mean(hi[inner] ** 2)) < 5e-3


def _window(x, a, k):
    out = np.zeros(k, np.float32)
    lo, hi = max(0, a), min(len(x), a + k)
    if hi > lo:
        out[lo - a : hi - a] = x[lo:hi]
    return out


def test_reading_the_kept_window_equals_decoding_everything(tmp_path):
    """A 3 s stereo 44.1 kHz file: decode_file reads only the centre second, and gets what decoding the
    whole file, resampling and cropping gets."""
    rng = np.random.default_rng(1)
    x = np.stack([tone(700.0, 44100, 3.0), 0.3 * rng.uniform(-1, 1, 132300)], axis=1)
    p = write_wav(tmp_path / "a.wav", x, 44100, channels=2)
    info = wav_info(p)
    assert (info.channels, info.rate, info.frames) == (2, 44100, 132300)
    pre = kws()
    full = decode_wav(p, 16000)
    assert len(full) == 48000
    np.testing.assert_allclose(pre.decode_file(p), pre.pad_crop(full), atol=1e-6)
    mono = np.round(x * 32767).clip(-32768, 32767).mean(axis=1) / 32768.0  # the mean of both channels
    same_rate = write_wav(tmp_path / "b.wav", x[:16000], 16000, channels=2)
    np.testing.assert_allclose(decode_wav(same_rate, 16000), mono[:16000], atol=1e-6)


def test_wav_extensible_pcm_is_read_and_other_subformats_are_not(tmp_path):
    x = tone(440.0, 16000, 0.1)
    p = write_extensible_wav(tmp_path / "ext.wav", x, 16000)
    assert p.read_bytes()[20:22] == b"\xfe\xff"
    np.testing.assert_allclose(decode_wav(p, 16000), x, atol=1e-4)
    with pytest.raises(DataError, match="not 16-bit PCM"):
        decode_wav(write_extensible_wav(tmp_path / "f.wav", x, 16000, subformat=3), 16000)


BAD_WAVS = {
    "3 channels": (lambda p: write_wav(p, np.zeros((100, 3)), 16000, channels=3), "3 channels"),
    "8-bit": (lambda p: write_wav(p, np.zeros(100), 16000, width=1), "8-bit"),
    "float": (lambda p: write_float_wav(p, np.zeros(100), 16000), "floating-point"),
    "not a wav": (lambda p: p.write_bytes(b"ID3\x03 an mp3, not a wav"), "not a WAV"),
    "truncated": (
        lambda p: p.write_bytes(write_wav(p, np.zeros(1000), 16000).read_bytes()[:600]),
        "truncated",
    ),
    "no data": (
        lambda p: p.write_bytes(write_wav(p, np.zeros(10), 16000).read_bytes()[:36]),
        "lacks a data chunk",
    ),
    "empty": (lambda p: write_wav(p, np.zeros(0), 16000), "no samples"),
}


@pytest.mark.parametrize("case", list(BAD_WAVS))
def test_bad_wav_files_are_one_data_error(tmp_path, case):
    make, match = BAD_WAVS[case]
    p = tmp_path / "x.wav"
    make(p)
    with pytest.raises(DataError) as exc:
        kws().decode_file(p)
    text = str(exc.value)
    assert match in text and str(p) in text and "\n" not in text


# --------------------------------------------------------------------------- manifest block and fitting


def _bad(where, what):
    return BundleError(f"manifest.json: {where} {what}")


def test_audio_block_round_trips_through_the_manifest():
    from edgeport.bundle.manifest import Manifest

    sig = audio_signature(1, 40, 101)
    pre = kws()
    d = {
        "schema_version": 3,
        "model": "m",
        **sig.to_dict(),
        "preprocessing": pre.to_manifest(),
        "labels": [],
        "artifacts": [],
        "provenance": {},
        "environment": {},
        "parity": {},
    }
    m = Manifest.from_dict(json.loads(json.dumps(d)))
    from edgeport.preprocessing import from_manifest

    again = from_manifest(m.preprocessing)
    assert (
        isinstance(again, AudioPreprocessing)
        and again == pre
        and m.to_dict()["preprocessing"]["kind"] == "audio"
    )


def _mutate(op, **change):
    steps = kws_steps()
    for s in steps:
        if s["op"] == op:
            s.update(change)
            for k, v in change.items():
                if v is None:
                    del s[k]
    return steps


BAD_BLOCKS = {
    "rate": (_mutate("decode_wav", sample_rate=10**7), "sample_rate"),
    "stereo": (_mutate("decode_wav", mono=False), "mono"),
    "samples": (_mutate("pad_crop", samples=0), "samples"),
    "mode": (_mutate("pad_crop", mode="end"), "center or start"),
    "hop": (_mutate("log_mel", hop=0), "hop"),
    "n_fft string": (_mutate("log_mel", n_fft="480"), "n_fft"),
    "f_max": (_mutate("log_mel", f_max=9000.0), "half the sample rate"),
    "eps": (_mutate("log_mel", eps=float("nan")), "eps"),
    "empty bands": (_mutate("log_mel", n_mels=200), "holding no FFT bin"),
    "unknown field": (_mutate("log_mel", power=1), "unknown field"),
    "layout": (_mutate("layout", shape=[1, 40, 100]), "does not hold the features"),
    "axes": (_mutate("layout", axes="sideways"), "axes"),
    "dtype": (_mutate("dtype", dtype="int8"), "dtype"),
    "order": (list(reversed(kws_steps())), "order"),
    "missing layout": ([s for s in kws_steps() if s["op"] != "layout"], "must hold"),
    "huge": (
        [
            {"op": "decode_wav", "sample_rate": 16000, "mono": True},
            {"op": "pad_crop", "samples": 1 << 24, "mode": "center"},
            {
                "op": "log_mel",
                "n_fft": 512,
                "hop": 2,
                "n_mels": 40,
                "f_min": 20.0,
                "f_max": 8000.0,
                "eps": 1e-6,
            },
            {"op": "layout", "shape": [40, (1 << 23) + 1]},
        ],
        "values per clip",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BLOCKS))
def test_bad_audio_blocks_are_refused_by_field(case):
    steps, match = BAD_BLOCKS[case]
    block = {"input": "audio", "kind": "audio", "preset": None, "steps": steps}
    with pytest.raises(BundleError, match=match):
        validate_manifest_audio(block, audio_signature(1, 40, 101), _bad)


def test_the_block_must_fit_the_input():
    block = kws().to_manifest()
    with pytest.raises(BundleError, match=r"takes \[1, 40, 98\]"):
        validate_manifest_audio(block, audio_signature(1, 40, 98), _bad)
    with pytest.raises(BundleError, match="input"):
        validate_manifest_audio(dict(block, input="nope"), audio_signature(1, 40, 101), _bad)


@pytest.mark.parametrize(
    "per, check",
    [
        ((1, 40, 101), lambda by: by["log_mel"]["hop"] == 160 and by["layout"]["axes"] == "mel_time"),
        ((1, 40, 49), lambda by: by["log_mel"]["hop"] == 333 and by["pad_crop"]["samples"] == 16000),
        ((1, 101, 40), lambda by: by["layout"]["axes"] == "time_mel"),
        ((1, 64, 101), lambda by: by["log_mel"]["n_mels"] == 64),
        ((16000,), lambda by: "log_mel" not in by and by["layout"]["shape"] == [16000]),
        ((1, 8000), lambda by: by["pad_crop"]["samples"] == 8000),
    ],
    ids=str,
)
def test_the_kws_preset_is_fitted_to_the_input(per, check):
    pre = build(audio_signature(*per), "kws")
    assert pre.shape == per and check(pre.by_op)
    assert pre.apply([np.zeros(100, np.float32)]).shape == (1, *per)


def test_inputs_audio_steps_cannot_fit_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="dynamic dims"):
        build(audio_signature(1, "t", dims={"t": Dim("t", 10, 100)}), "kws")
    with pytest.raises(ConfigError, match="spectrogram"):
        build(audio_signature(2, 3, 40, 101), "kws")
    with pytest.raises(ConfigError, match="unknown audio preset"):
        build(audio_signature(16000), "speech")
    p = tmp_path / "steps.json"
    p.write_text(json.dumps({"kind": "audio", "steps": kws_steps()}))
    assert build(audio_signature(1, 40, 101), str(p)).shape == (1, 40, 101)
    with pytest.raises(ConfigError, match="does not fit"):
        build(audio_signature(1, 40, 50), str(p))
