"""Input preprocessing shared by training, export and the light runtime.

numpy only: the runtime half of edgeport uses this without torch installed.
A model sees ``(pixel * scale - mean) / std`` where pixels are uint8 0..255.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import InputError

# Mean and std of the MNIST training pixels after scaling to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


@dataclass(frozen=True)
class Preprocessing:
    """How raw uint8 pixels become model input."""

    scale: float = 1.0 / 255.0
    mean: float = MNIST_MEAN
    std: float = MNIST_STD

    def apply(self, images: np.ndarray) -> np.ndarray:
        """uint8 (or 0..255 float) images ``[N,H,W]`` / ``[N,1,H,W]`` -> float32 ``[N,1,H,W]``."""
        arr = np.asarray(images)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4:
            raise InputError(
                f"images must have shape [N,H,W] or [N,1,H,W], got {list(np.shape(images))}; "
                "pass a batch of grayscale images"
            )
        if arr.dtype.kind not in "uif":
            raise InputError(f"images must be numeric (uint8 0..255), got dtype {arr.dtype}")
        out = arr.astype(np.float32) * np.float32(self.scale)
        out -= np.float32(self.mean)
        out /= np.float32(self.std)
        return out

    def value_range(self) -> tuple[float, float]:
        """The range of model inputs that 0..255 pixels map to."""
        lo = (0.0 - self.mean) / self.std
        hi = (255.0 * self.scale - self.mean) / self.std
        return (float(lo), float(hi))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(scale=float(d["scale"]), mean=float(d["mean"]), std=float(d["std"]))


MNIST_PREPROCESSING = Preprocessing()
MNIST_LABELS = [str(i) for i in range(10)]
