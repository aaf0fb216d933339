"""TorchScript (frozen at export) on cpu or cuda, run under ``torch.inference_mode``.

TorchScript archives are code: they are loaded only after the manifest hash matches.
"""

from __future__ import annotations

import io

import torch

from ..errors import BundleError
from ._torch_common import TorchRunnerBase


def _set_quantized_engine() -> None:
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm"):
        if engine in engines:
            torch.backends.quantized.engine = engine
            return


class TorchScriptRunner(TorchRunnerBase):
    backend = "torchscript"
    format = "torchscript"

    def _build(self):
        if self.precision == "int8":
            _set_quantized_engine()
        data = self.bundle.read_verified(self.artifact)  # hash checked before parsing
        try:
            module = torch.jit.load(io.BytesIO(data), map_location=self._dev)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BundleError(
                f"torch.jit.load cannot read {self.artifact.key} ({first}); re-export"
            ) from None
        return module.eval()
