"""Shared by the torch and TorchScript runners: devices, threads, the run path.

Imported only by those two backends, so the light runtime never imports torch.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import BackendUnavailableError, BundleError
from .base import Prepared, Runner, cpu_count


class TorchRunnerBase(Runner):
    devices = ("cpu", "cuda")

    @classmethod
    def default_threads_for(cls, batch_size: int | None) -> int:
        # torch's thread pool is process-wide, and resizing it back and forth
        # (1 -> 2 -> 1 -> 2) left later large batches ~100x slower here.  Small
        # batches stay on one thread anyway (ops below torch's grain size do
        # not fan out), so every batch size uses every core.
        return cpu_count()

    @classmethod
    def device_status(cls, device: str) -> tuple[bool, str]:
        if device == "cuda" and not torch.cuda.is_available():
            return False, "cuda: torch.cuda.is_available() is False (no CUDA GPU or a CPU-only torch build)"
        return True, ""

    def _torch_device(self) -> torch.device:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("cuda: torch.cuda.is_available() is False")
        return torch.device(self.device)

    def _apply_threads(self) -> None:
        # torch's intra-op pool is process-wide: the latest runner's setting wins.
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _load(self) -> None:
        self._apply_threads()
        self._dev = self._torch_device()
        self._module = self._build()

    def _build(self):
        raise NotImplementedError

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            with torch.inference_mode():
                y = self._module(torch.from_numpy(x).to(self._dev))
                return y.float().cpu().numpy()
        except (RuntimeError, TypeError, ValueError, IndexError, AttributeError) as exc:
            # x passed the manifest's input checks, so the model does not fit its manifest.
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise BundleError(
                f"{self.artifact.key} failed on an input of shape {list(x.shape)} that matches the "
                f"manifest ({type(exc).__name__}: {first}); re-export the bundle"
            ) from None

    def _prepare(self, x: np.ndarray) -> Prepared:
        self._apply_threads()
        t = torch.from_numpy(x).to(self._dev)
        module = self._module
        out: list = [None]
        sync = torch.cuda.synchronize if self._dev.type == "cuda" else None

        def call():
            with torch.inference_mode():
                out[0] = module(t)
            if sync is not None:
                sync()

        call()
        return Prepared(call=call, fetch=lambda: out[0].float().cpu().numpy().copy(), release=out.clear)

    def _close(self) -> None:
        self._module = None
        if getattr(self, "_dev", None) is not None and self._dev.type == "cuda":
            torch.cuda.empty_cache()
