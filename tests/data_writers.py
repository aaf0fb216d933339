"""Synthetic data sets written in the real on-disk formats the sources read (WAV folders, COCO JSON,
segmentation folders), for the data-source tests."""

from __future__ import annotations

import json
import struct
import wave
from pathlib import Path

import numpy as np
from PIL import Image


def write_wav(path: Path, x: np.ndarray, rate: int, *, channels: int = 1, width: int = 2) -> Path:
    """``x``: float samples in [-1, 1], ``[T]`` or ``[T, channels]``; ``width`` bytes per sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = np.repeat(x[:, None], channels, axis=1)
    if width == 1:
        pcm = np.round(x * 127 + 128).clip(0, 255).astype(np.uint8)
    else:
        pcm = np.round(x * 32767).clip(-32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def write_float_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    """A 32-bit IEEE-float WAV (format tag 3), which edgeport refuses."""
    data = np.asarray(x, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(rate * seconds))) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def write_wavfolder(root: Path, classes=("down", "go", "up"), per_class: int = 4) -> Path:
    """One subfolder per class; each class a tone, files at 16, 44.1 and 8 kHz, mono and stereo."""
    rates = (16000, 44100, 8000)
    for c, name in enumerate(classes):
        for k in range(per_class):
            rate = rates[k % 3]
            x = tone(400.0 * (c + 1), rate, 0.6 + 0.2 * k)
            write_wav(root / name / f"{k}.wav", x, rate, channels=1 + k % 2)
    return root


def write_coco(root: Path, n: int = 4, size=(48, 64), folder: str = "images") -> tuple[Path, dict]:
    """COCO detection annotations with one or two boxes per image, images in ``root/folder``."""
    h, w = size
    (root / folder).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    rng = np.random.default_rng(0)
    for i in range(n):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / folder / name)
        images.append({"id": 10 + i, "file_name": name, "width": w, "height": h})
        anns.append({"id": 2 * i, "image_id": 10 + i, "category_id": 7, "bbox": [4, 6, 20, 10], "iscrowd": 0})
        anns.append(
            {
                "id": 2 * i + 1,
                "image_id": 10 + i,
                "category_id": 3,
                "bbox": [30, 20, 30, 25],
                "iscrowd": i % 2,
            }
        )
    data = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path, data


def write_segfolder(root: Path, n: int = 4, size=(40, 56), classes=("bg", "road", "car")) -> Path:
    """images/<stem>.png with masks/<stem>.png: a rectangle of class 1 or 2 on class 0, a 255 border."""
    h, w = size
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mask = np.zeros((h, w), np.uint8)
        mask[8:24, 10 + i : 30 + i] = 1 + i % 2
        mask[0, :] = 255
        img = np.stack([mask * 60, mask * 30, np.full_like(mask, 90)], axis=-1).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"s{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def write_extensible_wav(path: Path, x: np.ndarray, rate: int, *, subformat: int = 1) -> Path:
    """A mono 16-bit WAVE_FORMAT_EXTENSIBLE file (tag 0xFFFE) whose subformat GUID says PCM (1)."""
    data = np.round(np.asarray(x) * 32767).astype("<i2").tobytes()
    guid = struct.pack("<H", subformat) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, rate, rate * 2, 2, 16) + struct.pack("<HHI", 22, 16, 4) + guid
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # an odd-sized chunk before the data: padded
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path
