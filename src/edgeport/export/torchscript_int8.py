"""TorchScript int8: eager-mode static PTQ with ``torch.ao.quantization`` on x86/fbgemm.

Kept in its own module because this API is deprecated upstream (in favour of
torchao / PT2E); when it goes, only this file changes.

Steps: deep-copy the fp32 model in eval mode (dropout off), move every
Softmax behind a DeQuantStub (uint8 probabilities would tie classes), wrap the
whole in QuantStub/DeQuantStub, attach the x86 qconfig (per-channel int8
weights, uint8 activations with reduce_range for non-VNNI CPUs), prepare,
run the calibration batches through the observers, convert, then trace and
freeze.  Freezing folds the packed weights into the graph and removes dropout.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, ExportError

ENGINE = "x86"
# Calibration method -> activation observer.  torch.ao has no percentile or
# entropy observer; HistogramObserver picks the clipping range that minimises
# the L2 quantization error, the nearest equivalent of both.
OBSERVERS = {"minmax": "MinMaxObserver", "percentile": "HistogramObserver", "entropy": "HistogramObserver"}


class _FloatSoftmax(nn.Module):
    """Dequantize, then Softmax in fp32."""

    def __init__(self, softmax: nn.Softmax) -> None:
        super().__init__()
        self.dequant = torch.ao.quantization.DeQuantStub()
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.softmax(self.dequant(x))


def _float_softmax(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Softmax):
            wrapped = _FloatSoftmax(child)
            wrapped.softmax.qconfig = None
            setattr(module, name, wrapped)
        else:
            _float_softmax(child)


def _qconfig(method: str):
    import torch.ao.quantization as tq

    if method not in OBSERVERS:
        raise ConfigError(
            f"TorchScript calibration method must be one of {', '.join(OBSERVERS)}, got {method!r}"
        )
    observer = getattr(tq, OBSERVERS[method])
    return tq.QConfig(
        activation=observer.with_args(reduce_range=True),
        weight=tq.default_per_channel_weight_observer,
    )


def quantize_eager(model: nn.Module, batches: Iterable[torch.Tensor], *, method: str = "minmax") -> nn.Module:
    """A converted (int8) eager copy of ``model``; ``model`` itself is left untouched.

    The result is a ``QuantWrapper``: its quantized layers keep their names
    under ``module.`` (``module.linear_stack.0``).
    """
    import torch.ao.quantization as tq

    if ENGINE not in torch.backends.quantized.supported_engines:
        raise ExportError(
            f"torch quantized engine {ENGINE!r} is not available here "
            f"(have {torch.backends.quantized.supported_engines}); skip TorchScript int8"
        )
    torch.backends.quantized.engine = ENGINE
    body = copy.deepcopy(model).eval()
    _float_softmax(body)
    wrapped = tq.QuantWrapper(body).eval()
    wrapped.qconfig = _qconfig(method)
    for m in wrapped.modules():
        if isinstance(m, _FloatSoftmax):
            m.softmax.qconfig = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = tq.prepare(wrapped, inplace=False)
        with torch.inference_mode():
            for batch in batches:
                prepared(batch)
        return tq.convert(prepared, inplace=False).eval()


def script_int8(quantized: nn.Module, example: torch.Tensor, path: Path) -> None:
    """Trace, freeze and save a converted model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(quantized, example)
            frozen = torch.jit.freeze(traced.eval())
            torch.jit.save(frozen, str(path))
    except Exception as exc:
        raise ExportError(f"TorchScript int8 trace/freeze failed: {str(exc).splitlines()[0]}") from None


def quantize_torchscript(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    example: torch.Tensor,
    path: Path,
    *,
    method: str = "minmax",
) -> tuple[nn.Module, dict]:
    """Quantize, trace, freeze and save; returns the eager int8 model and the settings used."""
    quantized = quantize_eager(model, batches, method=method)
    script_int8(quantized, example, path)
    return quantized, {
        "quantizer": "torch.ao.quantization (eager static PTQ)",
        "engine": ENGINE,
        "calibration_method": method,
        "activation_observer": OBSERVERS[method] + "(reduce_range=True)",
        "weight_observer": "PerChannelMinMaxObserver(int8, symmetric)",
    }
