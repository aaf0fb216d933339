"""TorchScript (frozen at export) on cpu or cuda, run under ``torch.inference_mode``.

TorchScript archives are code (aten ops can read and write files): they load
only from a bundle this process wrote or with explicit trust (see
:func:`edgeport.runtime.registry.trust_reason`), and only after the manifest
hash matches.  Torch parses the verified bytes, never the path.
"""

from __future__ import annotations

import io
import warnings
import zipfile

import torch

from ..errors import BundleError, first_line
from ._torch_common import TorchRunnerBase


def _set_quantized_engine() -> None:
    engines = torch.backends.quantized.supported_engines
    for engine in ("x86", "fbgemm"):
        if engine in engines:
            torch.backends.quantized.engine = engine
            return


def _check_zip(data: bytes, key: str) -> None:
    """Check the archive's zip structure and every member's CRC in Python first, so torch's
    C++ reader only ever sees a well-formed archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            bad = archive.testzip()
    except Exception as exc:  # noqa: BLE001 - zipfile raises many types on a damaged archive
        raise BundleError(
            f"{key} is not a readable TorchScript archive ({type(exc).__name__}: {first_line(exc)}); re-export"
        ) from None
    if bad is not None:
        raise BundleError(f"{key}: member {bad[:100]!r} of the TorchScript archive is corrupt; re-export")


class TorchScriptRunner(TorchRunnerBase):
    backend = "torchscript"
    format = "torchscript"

    @classmethod
    def unsupported(cls, precision: str, device: str) -> str:
        if precision == "int8" and device != "cpu":
            # Seen on an H200 with torch 2.11: torch.jit.load(..., map_location="cuda") of the int8
            # archive ends the process with a segmentation fault.
            return (
                "TorchScript int8 runs on cpu only: its weights are packed for the x86/fbgemm quantized "
                "engine, which has no CUDA kernels; run the fp32 artifact on cuda"
            )
        return ""

    def _build(self):
        if self.precision == "int8":
            _set_quantized_engine()
        data = self.bundle.read_verified(self.artifact)
        _check_zip(data, self.artifact.key)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # deprecated upstream; used on purpose
                module = torch.jit.load(io.BytesIO(data), map_location=self._dev)
        except Exception as exc:
            raise BundleError(
                f"torch.jit.load cannot read {self.artifact.key} ({first_line(exc)}); re-export"
            ) from None
        return module.eval()
