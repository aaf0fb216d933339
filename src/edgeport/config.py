"""Frozen configuration dataclasses, one per stage, with documented ranges.

torch-free, so the CLI can build its parser (and show defaults) without
importing torch.  Every numeric option has a range; ``validate()`` raises a
one-line :class:`ConfigError` outside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .errors import ConfigError
from .format_registry import DEFAULT_EXPORT_FORMATS, EXPORTABLE

MAX_SEED = 2**32 - 1
CALIBRATION_METHODS = ("auto", "minmax", "percentile", "entropy")
# Re-exported for the CLI: every format export can write, and what it writes by default.
FORMATS = EXPORTABLE
DEFAULT_FORMATS = DEFAULT_EXPORT_FORMATS


def _int_range(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be a whole number between {lo} and {hi:,}, got {value!r}")


def _float_range(name: str, value, lo: float, hi: float, *, lo_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        raise ConfigError(
            f"{name} must be a number {'>' if lo_open else '>='} {lo:g} and <= {hi:g}, got {value!r}"
        )


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    model: str = "mnist-mlp"
    # None: the model's own training defaults (its ModelSpec.train, chosen on the validation split;
    # for mnist-mlp 20 epochs of batch 1024 at a peak lr of 1e-2: large batches keep both cores busy
    # in a few big GEMMs, and one-cycle Adam converges as well as the tutorial's batch 32).
    epochs: int | None = None  # 1..1000
    batch_size: int | None = None  # 1..65536
    lr: float | None = None  # (0, 10]
    # Random translation by up to `shift` pixels per image: the cheap
    # augmentation that lifts this small MLP past 98%.
    shift: int = 1  # 0..8
    weight_decay: float = 0.0
    seed: int = 0  # 0..2**32-1
    threads: int | None = None  # None: torch's default (one per core); else 1..256

    def validate(self) -> None:
        if self.epochs is not None:
            _int_range("--epochs", self.epochs, 1, 1000)
        if self.batch_size is not None:
            _int_range("--batch-size", self.batch_size, 1, 65536)
        if self.lr is not None:
            _float_range("--lr", self.lr, 0.0, 10.0, lo_open=True)
        _int_range("--shift", self.shift, 0, 8)
        _float_range("weight decay", self.weight_decay, 0.0, 1.0)
        _int_range("--seed", self.seed, 0, MAX_SEED)
        if self.threads is not None:
            _int_range("--threads", self.threads, 1, 256)

    def with_defaults(self, defaults: dict) -> TrainConfig:
        """This config with every unset field (None) taken from ``defaults`` (a ModelSpec's ``train``)."""
        fill = {
            k: defaults[k]
            for k in ("epochs", "batch_size", "lr")
            if getattr(self, k) is None and k in defaults
        }
        return replace(self, **fill)


@dataclass(frozen=True, kw_only=True)
class CalibrationConfig:
    # 300 class-balanced samples of the calibration split: enough for stable
    # activation ranges on every model tried here; more barely moves int8 accuracy.
    size: int = 300  # 10..100,000
    method: str = "auto"
    seed: int = 0
    batch_size: int = 32  # 1..4096
    # int8 candidates are scored on up to this many samples of the selection split...
    selection_size: int = 5000  # 10..100,000
    # ... and timed at this batch size for this long: the fastest within the gate ships.
    speed_batch: int = 32  # 1..4096
    speed_seconds: float = 0.3  # 0..60
    # Overrides of the task's int8 gates (None: the task's documented default: for classify a
    # drop of at most 0.5 accuracy points, and top-1 agreement >= 98% with labels, 99.5% without).
    max_accuracy_drop: float | None = None  # accuracy fraction (0.005 = 0.5 points)
    min_agreement: float | None = None
    # When no candidate of a format is within the gate, keep its most sensitive layers float
    # (edgeport.export.fallback) until it is, or ship no int8 for that format.
    fallback: bool = True

    def validate(self) -> None:
        _int_range("--calibration-size", self.size, 10, 100_000)
        if self.method not in CALIBRATION_METHODS:
            raise ConfigError(
                f"--calibration-method must be one of {', '.join(CALIBRATION_METHODS)}, got {str(self.method)[:40]!r}"
            )
        _int_range("calibration seed", self.seed, 0, MAX_SEED)
        _int_range("calibration batch size", self.batch_size, 1, 4096)
        _int_range("selection size", self.selection_size, 10, 100_000)
        _int_range("int8 speed batch", self.speed_batch, 1, 4096)
        _float_range("int8 speed seconds", self.speed_seconds, 0.0, 60.0)
        if self.max_accuracy_drop is not None:
            _float_range("max accuracy drop", self.max_accuracy_drop, 0.0, 1.0)
        if self.min_agreement is not None:
            _float_range("min agreement", self.min_agreement, 0.0, 1.0)

    def gate_overrides(self) -> dict:
        """These options as int8 gate overrides (see edgeport.tasks)."""
        out = {}
        if self.max_accuracy_drop is not None:
            out["int8.accuracy_drop"] = self.max_accuracy_drop
        if self.min_agreement is not None:
            out["int8.agreement"] = self.min_agreement
        return out


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    formats: tuple[str, ...] = DEFAULT_EXPORT_FORMATS
    # Opset 17 is the oldest with LayerNormalization and the one every current runtime supports.
    opset: int = 17  # 17..23
    fp16: bool = False
    int8: bool = False
    mobile: bool = False
    # Parity at export: this many eval samples plus edge inputs, each run once, in
    # batches whose sizes cycle through parity_batch_sizes.
    parity_samples: int = 256  # 1..100,000
    parity_batch_sizes: tuple[int, ...] = (1, 2, 7, 64)
    atol: float = 1e-5
    rtol: float = 1e-5
    max_batch: int = 4096  # the batch bound recorded in the manifest, 1..65536
    executorch_max_batch: int = 64  # the .pte plans memory for this many, 1..4096
    # golden I/O stored for selfcheck, 1..4096; None: 64, fewer for large inputs (export.golden.default_count)
    golden_samples: int | None = None
    task: str | None = None  # None: inferred (the classifier rule), else one of edgeport.tasks.names()
    task_params: tuple[tuple[str, object], ...] = ()  # (name, value): the task's parameters
    dims: tuple[str, ...] = ()  # NAME=MIN..MAX[@EXAMPLE] bounds of named dynamic dims
    gates: tuple[tuple[str, float | None], ...] = ()  # ([precision.]metric, threshold) gate overrides

    def validate(self) -> None:
        bad = [f for f in self.formats if f not in EXPORTABLE]
        if bad or not self.formats:
            shown = ", ".join(str(b)[:30] for b in bad) or "(empty)"
            raise ConfigError(f"--formats: unknown {shown}; choose from {', '.join(EXPORTABLE)}")
        _int_range("--opset", self.opset, 17, 23)
        _int_range("parity samples", self.parity_samples, 1, 100_000)
        if not self.parity_batch_sizes or any(
            isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 4096
            for b in self.parity_batch_sizes
        ):
            raise ConfigError(f"parity batch sizes must be 1..4096, got {list(self.parity_batch_sizes)}")
        _float_range("--atol", self.atol, 0.0, 1.0, lo_open=True)
        _float_range("rtol", self.rtol, 0.0, 1.0)
        _int_range("--max-batch", self.max_batch, 1, 65536)
        _int_range("--executorch-max-batch", self.executorch_max_batch, 1, 4096)
        if self.golden_samples is not None:
            _int_range("--golden-samples", self.golden_samples, 1, 4096)
        if self.task is not None:
            from .tasks.registry import task_class

            task_class(self.task)


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    batch_sizes: tuple[int, ...] = (1, 32, 256)  # each 1..65536
    threads: int | None = None  # None: a per-backend default, recorded in every row; else 1..256
    warmup_seconds: float = 0.5  # 0..3600
    min_iters: int = 30  # 1..10,000,000 (with min_seconds: whichever takes longer)
    min_seconds: float = 2.0  # 0..3600
