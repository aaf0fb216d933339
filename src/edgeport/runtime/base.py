"""The Runner template: one public lifecycle for every backend.

Public ``load / run / predict / prepare / close`` (and ``with`` use) check the
state and the inputs, then call the backend's ``_load / _run / _prepare /
_close``.  Backends never see an input that failed a check.  Timing lives in
:mod:`edgeport.runtime.benchmark`, which times the zero-argument callable that
:meth:`Runner.prepare` returns, so every backend is measured by the same loop.

numpy only; never imports torch.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError, InputError

# Larger batches are refused rather than risk exhausting memory on a small device;
# predict() splits any batch into chunks of at most this size.
DEFAULT_MAX_BATCH = 4096


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def default_threads(batch_size: int | None = None) -> int:
    """Intra-op threads for a batch size.

    A batch-1 inference of a small model takes a few microseconds of compute:
    handing it to a thread pool costs more than it saves, so small batches run
    on the calling thread.  Large batches are split over every core.
    """
    if batch_size is not None and batch_size <= 16:
        return 1
    return cpu_count()


@dataclass
class Prepared:
    """A fixed input bound to a runner: ``call()`` runs one inference, zero-copy.

    ``call`` is what the benchmark times; ``fetch()`` returns (a copy of) the
    latest output, for checking that the fast path computes the right thing.
    """

    call: Callable[[], object]
    fetch: Callable[[], np.ndarray]
    release: Callable[[], None] = lambda: None

    def __call__(self) -> object:
        return self.call()


class Runner:
    """Base class of every backend runner.

    Subclasses set ``backend`` and ``format`` and implement ``_load``, ``_run``,
    ``_prepare`` and ``_close``.  ``_run`` receives a checked, C-contiguous
    float32 array and returns ``[N, C]`` float32 probabilities; it must be safe
    to call from several threads at once.
    """

    backend: str = ""
    format: str = ""
    devices: tuple[str, ...] = ("cpu",)

    def __init__(
        self,
        bundle,
        *,
        precision: str = "fp32",
        device: str = "cpu",
        threads: int | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a whole number >= 1, got {threads!r}")
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"max_batch must be a whole number >= 1, got {max_batch!r}")
        self.bundle = bundle
        self.precision = precision
        self.device = device.lower()
        self.threads = threads if threads is not None else default_threads()
        self.max_batch = max_batch
        self.artifact = bundle.artifact(self.format, precision)
        self.input_shape = tuple(int(d) for d in bundle.input_shape)
        self._state = "new"
        self._lock = threading.Lock()

    @classmethod
    def default_threads_for(cls, batch_size: int | None) -> int:
        """The thread count bench uses at ``batch_size`` unless told otherwise."""
        return default_threads(batch_size)

    # -- devices ------------------------------------------------------------
    @classmethod
    def known_devices(cls) -> tuple[str, ...]:
        """Every device name this backend understands, usable here or not."""
        return cls.devices

    @classmethod
    def device_status(cls, device: str) -> tuple[bool, str]:
        """(usable, reason): why ``device`` cannot be used here, or ``""``."""
        return True, ""

    # -- naming -------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.backend}:{self.device} {self.format}/{self.precision}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} threads={self.threads} {self._state}>"

    @property
    def is_loaded(self) -> bool:
        return self._state == "loaded"

    # -- lifecycle ----------------------------------------------------------
    def load(self) -> Runner:
        with self._lock:
            if self._state == "closed":
                raise ConfigError(
                    f"{self.name} runner is closed; create a new runner with bundle.runner(...)"
                )
            if self._state == "new":
                self._load()
                self._state = "loaded"
        return self

    def close(self) -> None:
        with self._lock:
            if self._state == "loaded":
                self._close()
            self._state = "closed"

    def __enter__(self) -> Runner:
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()

    def _ensure_loaded(self) -> None:
        if self._state != "loaded":
            if self._state == "closed":
                raise ConfigError(
                    f"{self.name} runner is closed; create a new runner with bundle.runner(...)"
                )
            self.load()

    # -- inference ----------------------------------------------------------
    def check_input(self, x) -> np.ndarray:
        """``x`` as a C-contiguous float32 array, or :class:`InputError` saying what is wrong."""
        want = f"float32 [N,{','.join(map(str, self.input_shape))}]"
        if not isinstance(x, np.ndarray):
            raise InputError(f"{self.name}: input must be a numpy array {want}, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise InputError(
                f"{self.name}: input dtype is {x.dtype}, expected float32 {want}; "
                "convert with x.astype(numpy.float32) or use predict() for uint8 images"
            )
        if x.ndim != len(self.input_shape) + 1:
            raise InputError(
                f"{self.name}: input has rank {x.ndim} (shape {list(x.shape)}), expected rank "
                f"{len(self.input_shape) + 1} {want}; add the batch dimension with x[None]"
            )
        if tuple(x.shape[1:]) != self.input_shape:
            raise InputError(f"{self.name}: input shape {list(x.shape)} does not match {want}")
        n = x.shape[0]
        if n < 1:
            raise InputError(f"{self.name}: empty batch (shape {list(x.shape)}); pass at least one sample")
        if n > self.max_batch:
            raise InputError(
                f"{self.name}: batch of {n} exceeds max_batch {self.max_batch}; split it "
                "or create the runner with a larger max_batch"
            )
        # A float64 sum of float32 values cannot overflow, so it is finite iff every value is.
        if not math.isfinite(float(x.sum(dtype=np.float64))):
            bad = int(np.count_nonzero(~np.isfinite(x)))
            raise InputError(f"{self.name}: input holds {bad} NaN or infinite values; inputs must be finite")
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 ``[N, *input_shape]`` -> float32 ``[N, C]`` probabilities."""
        x = self.check_input(x)
        self._ensure_loaded()
        return self._run(x)

    def predict(self, images) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``[N,H,W]`` (any N >= 1) -> (class indices ``[N]``, probabilities ``[N, C]``).

        Applies the manifest's preprocessing; names of the classes are ``runner.labels``.
        """
        try:
            images = np.asarray(images)
        except (ValueError, TypeError) as exc:  # ragged nested lists, objects numpy cannot stack
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise InputError(
                f"{self.name}: images must be a uint8 array [N,H,W], got something numpy cannot "
                f"convert ({first})"
            ) from None
        x = self.bundle.preprocessing.apply(images)
        if len(x) < 1:
            raise InputError(f"{self.name}: no images given; pass at least one image")
        per_sample = int(np.prod(self.input_shape))
        if int(np.prod(x.shape[1:])) != per_sample:
            raise InputError(
                f"{self.name}: images of shape {list(np.shape(images))} do not fit the model input "
                f"{list(self.input_shape)}"
            )
        x = x.reshape((len(x), *self.input_shape))
        probs = np.concatenate(
            [self.run(x[i : i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        )
        return probs.argmax(1), probs

    @property
    def labels(self) -> list[str]:
        return list(self.bundle.labels)

    def prepare(self, x: np.ndarray) -> Prepared:
        """Bind a fixed input once (checked and copied); the returned ``call()`` does no checks."""
        x = np.array(self.check_input(x), dtype=np.float32, order="C", copy=True)
        self._ensure_loaded()
        return self._prepare(x)

    # -- backend hooks --------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def _run(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _prepare(self, x: np.ndarray) -> Prepared:
        """Default: time the ordinary run path.  Backends override with their zero-copy path."""
        out: list[np.ndarray] = []

        def call():
            out[:] = [self._run(x)]

        return Prepared(call=call, fetch=lambda: out[0].copy())

    def _close(self) -> None:
        raise NotImplementedError

    def describe(self) -> dict:
        """Facts recorded with every verify/bench row."""
        return {
            "backend": self.backend,
            "device": self.device,
            "format": self.format,
            "precision": self.precision,
            "threads": self.threads,
        }
