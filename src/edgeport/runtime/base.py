"""The Runner template: one public lifecycle and one tensor contract for every backend.

Public ``load / run / predict / prepare / close`` (and ``with`` use) check the
state and every input against the bundle's tensor specs, call the backend's
``_load / _run / _prepare / _close``, then check every output: shape, dtype,
batch equal to the input's, finite values.  Backends never see an input that
failed a check, and nothing a backend returns reaches the caller unchecked.
Timing lives in :mod:`edgeport.runtime.benchmark`, which times the
zero-argument callable that :meth:`Runner.prepare` returns, so every backend
is measured by the same loop.

numpy only; never imports torch.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import BundleError, ConfigError, first_line
from ..host import cpu_count
from ..specs import DEFAULT_MAX_BATCH

MAX_THREADS = 256


def default_threads(batch_size: int | None = None) -> int:
    """Intra-op threads for a batch size: small batches on the calling thread, large ones on every core."""
    if batch_size is not None and batch_size <= 16:
        return 1
    return cpu_count()


def check_threads(threads) -> int:
    """Threads must be 1..max(256, 4 x cores): more only thrashes (or hangs) the machine."""
    limit = max(MAX_THREADS, 4 * cpu_count())
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= limit:
        raise ConfigError(f"threads must be a whole number between 1 and {limit}, got {threads!r}")
    return threads


class HandlePool:
    """Reusable per-call handles of one loaded artifact (ORT io-bindings, OpenVINO infer requests,
    ExecuTorch methods): a call takes a free one, or makes one, and puts it back, so concurrent calls
    never share a handle and sequential calls never pay to make one again."""

    def __init__(self, make: Callable[[], object]) -> None:
        self._make = make
        self._free: queue.SimpleQueue = queue.SimpleQueue()

    def put(self, handle) -> None:
        self._free.put(handle)

    @contextlib.contextmanager
    def handle(self, *, wait: bool = False):
        """A free handle for one call; ``wait``: block for one instead of making another (a handle that
        holds state between calls, such as a decoder's cache, must stay the only one)."""
        if wait:
            h = self._free.get()
        else:
            try:
                h = self._free.get_nowait()
            except queue.Empty:
                h = self._make()
        try:
            yield h
        finally:
            self._free.put(h)

    def clear(self) -> None:
        while True:
            try:
                self._free.get_nowait()
            except queue.Empty:
                return


def backend_failure(key: str, feeds: dict, exc: BaseException, where: str = "") -> BundleError:
    """The one error of a run that fails on inputs the manifest accepted: the artifact is at fault."""
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    return BundleError(
        f"{key} failed{where} on inputs {shapes} that match the manifest ({first_line(exc)}); "
        "the artifact does not fit its manifest: re-export the bundle"
    )


@dataclass
class Prepared:
    """Fixed inputs bound to a runner: ``call()`` runs one inference, zero-copy.

    ``call`` is what the benchmark times; ``fetch()`` returns (copies of) the
    latest outputs by name, for checking that the fast path computes the right thing.
    """

    call: Callable[[], object]
    fetch: Callable[[], dict]
    release: Callable[[], None] = lambda: None

    def __call__(self) -> object:
        return self.call()


def softmax(x: np.ndarray) -> np.ndarray:
    z = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class Runner:
    """Base class of every backend runner.

    Subclasses set ``backend`` and ``format`` and implement ``_load``, ``_run``,
    ``_prepare`` and ``_close``.  ``_run`` receives checked, C-contiguous arrays
    by input name and returns arrays by output name; it must be safe to call
    from several threads at once.
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
        artifact=None,
        taps: Mapping[str, str] | None = None,
    ) -> None:
        if threads is not None:
            check_threads(threads)
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ConfigError(f"max_batch must be a whole number >= 1, got {max_batch!r}")
        self.bundle = bundle
        self.signature = bundle.signature
        self.precision = precision
        self.device = device.lower()
        self.threads = threads if threads is not None else default_threads()
        self.artifact = artifact if artifact is not None else bundle.artifact(self.format, precision)
        artifact_max = (
            self.artifact.details.get("max_batch") if isinstance(self.artifact.details, dict) else None
        )
        bounds = [max_batch, self.signature.max_batch]
        if isinstance(artifact_max, int) and not isinstance(artifact_max, bool) and artifact_max >= 1:
            bounds.append(artifact_max)
        self.max_batch = min(bounds)
        # taps: label -> graph tensor (or module) name, read beside the outputs (per-layer reports)
        self.taps = dict(taps or {})
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

    @classmethod
    def unsupported(cls, precision: str, device: str) -> str:
        """Why this backend cannot run ``precision`` artifacts on ``device`` at all, or ``""``."""
        return ""

    # -- naming -------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"{self.backend}:{self.device} {self.format}/{self.precision}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} threads={self.threads} {self._state}>"

    @property
    def is_loaded(self) -> bool:
        return self._state == "loaded"

    @property
    def input_names(self) -> list[str]:
        return self.signature.input_names

    @property
    def output_names(self) -> list[str]:
        return self.signature.output_names

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
    def check_feeds(self, feeds) -> tuple[dict, dict]:
        """(checked arrays by input name, bound dim values); :class:`InputError` naming the tensor."""
        return self.signature.check_feeds(feeds, self.name, self.max_batch)

    def run(self, feeds):
        """Inputs by name (or one array for a one-input model) -> outputs by name.

        A one-input, one-output model called with one array returns one array.
        """
        checked, bound = self.check_feeds(feeds)
        self._ensure_loaded()
        outs = self.signature.check_outputs(self._run(checked), bound, self.name)
        if not isinstance(feeds, Mapping) and len(outs) == 1:
            return next(iter(outs.values()))
        return outs

    def run_all(self, feeds: Mapping, batch: int | None = None) -> dict:
        """Inputs of any number of samples, run in chunks of at most ``max_batch`` (or ``batch``)."""
        n = len(next(iter(feeds.values())))
        size = min(batch or self.max_batch, self.max_batch)
        parts = [self.run({k: v[a : a + size] for k, v in feeds.items()}) for a in range(0, n, size)]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def run_taps(self, feeds) -> tuple[dict, dict]:
        """(outputs, tapped tensors by label): for per-layer error reports."""
        if not self.taps:
            raise ConfigError(
                f"{self.name}: created without taps; pass taps={{label: tensor}} to bundle.runner"
            )
        checked, bound = self.check_feeds(feeds)
        self._ensure_loaded()
        outs, tapped = self._run_taps(checked)
        return self.signature.check_outputs(outs, bound, self.name), tapped

    def predict(self, images, **other_feeds) -> tuple[np.ndarray, np.ndarray]:
        """Raw samples -> (class indices ``[N]``, probabilities ``[N, C]``).

        ``images`` are what the manifest's preprocessing takes: decoded uint8
        images for image steps, waveforms for audio steps, strings for a bundle
        that keeps a tokenizer (:meth:`Bundle.text_encoder`).  A multi-input
        model takes its other inputs as keyword arguments.  A logits output is
        turned into probabilities with a softmax.
        """
        pre = self.bundle.preprocessing
        if pre is not None:
            feeds = {pre.input: pre.apply(images)}
        else:
            encoder = self.bundle.text_encoder() if hasattr(self.bundle, "text_encoder") else None
            if encoder is None:
                raise ConfigError(
                    f"{self.name}: this model has no preprocessing steps or tokenizer; call run() instead"
                )
            feeds = encoder.encode(images)
        feeds.update({k: np.asarray(v) for k, v in other_feeds.items()})
        out = self.signature.primary_output
        n = len(next(iter(feeds.values())))
        chunks = []
        for i in range(0, n, self.max_batch):
            chunks.append(self.run({k: v[i : i + self.max_batch] for k, v in feeds.items()})[out.name])
        scores = np.concatenate(chunks)
        probs = softmax(scores) if out.kind == "logits" else scores
        return probs.argmax(-1), probs

    @property
    def labels(self) -> list[str]:
        return list(self.bundle.labels)

    def prepare(self, feeds) -> Prepared:
        """Bind fixed inputs once (checked and copied); the returned ``call()`` does no checks."""
        checked, _ = self.check_feeds(feeds)
        checked = {k: np.array(v, order="C", copy=True) for k, v in checked.items()}
        self._ensure_loaded()
        return self._prepare(checked)

    # -- backend hooks --------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def _run(self, feeds: dict) -> dict:
        raise NotImplementedError

    def _run_taps(self, feeds: dict) -> tuple[dict, dict]:
        raise ConfigError(f"{self.name}: this backend cannot tap intermediate tensors")

    def _prepare(self, feeds: dict) -> Prepared:
        """Default: time the ordinary run path.  Backends override with their zero-copy path."""
        out: list[dict] = [{}]

        def call():
            out[0] = self._run(feeds)

        return Prepared(call=call, fetch=lambda: {k: v.copy() for k, v in out[0].items()})

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
