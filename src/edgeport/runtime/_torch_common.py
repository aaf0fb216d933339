"""Shared by the torch and TorchScript runners: devices, threads, the run path, output mapping.

Imported only by those two backends, so the light runtime never imports torch.
"""

from __future__ import annotations

import torch

from ..errors import BackendUnavailableError, BundleError
from .base import Prepared, Runner, cpu_count


def outputs_to_dict(y, names: list[str], key: str) -> dict:
    """A model's return value (tensor, tuple/list, or dict) -> tensors by output name, in manifest order."""
    if isinstance(y, torch.Tensor):
        seq = [y]
    elif isinstance(y, dict):
        seq = [y[n] for n in names] if all(n in y for n in names) else list(y.values())
    elif isinstance(y, (tuple, list)):
        seq = list(y)
    else:
        raise BundleError(f"{key} returned a {type(y).__name__}, expected tensors; re-export the bundle")
    if len(seq) != len(names):
        raise BundleError(
            f"{key} returned {len(seq)} outputs, the manifest lists {len(names)}; re-export the bundle"
        )
    return dict(zip(names, seq, strict=True))


def ieee_fp32_on_cuda() -> None:
    """fp32 means IEEE fp32 on CUDA too: cuDNN runs fp32 convolutions in TF32 by default (10-bit
    mantissa, ~1e-3 relative error), which no fp32 tolerance against PyTorch on CPU would pass.
    Process-wide, like every torch backend flag."""
    # The legacy flags, not torch >= 2.9's fp32_precision: setting the new ones makes the legacy getters
    # (still read by user code and libraries) raise, and these two work on every supported torch.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


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
        if self.device == "cuda":
            if not torch.cuda.is_available():
                raise BackendUnavailableError("cuda: torch.cuda.is_available() is False")
            ieee_fp32_on_cuda()
        return torch.device(self.device)

    def _apply_threads(self) -> None:
        # torch's intra-op pool is process-wide: the latest runner's setting wins.
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _load(self) -> None:
        # nn.MultiheadAttention's fused eval fast path zeroes padded positions and no exporter writes it:
        # the reference runs the same (reference-path) math every exported artifact runs.
        torch.backends.mha.set_fastpath_enabled(False)
        self._apply_threads()
        self._dev = self._torch_device()
        self._module = self._build()
        self._in_names = self.signature.input_names
        self._out_names = self.signature.output_names

    def _build(self):
        raise NotImplementedError

    def _tensors(self, feeds: dict) -> list:
        return [torch.from_numpy(feeds[n]).to(self._dev) for n in self._in_names]

    def _call(self, tensors: list) -> dict:
        y = self._module(*tensors)
        return outputs_to_dict(y, self._out_names, self.artifact.key)

    def _run(self, feeds: dict) -> dict:
        try:
            with torch.inference_mode():
                out = self._call(self._tensors(feeds))
                return {k: v.detach().cpu().numpy() for k, v in out.items()}
        except BundleError:
            raise
        except (RuntimeError, TypeError, ValueError, IndexError, AttributeError) as exc:
            # The feeds passed the manifest's input checks, so the model does not fit its manifest.
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            raise BundleError(
                f"{self.artifact.key} failed on inputs {shapes} that match the manifest "
                f"({type(exc).__name__}: {first}); re-export the bundle"
            ) from None

    def _prepare(self, feeds: dict) -> Prepared:
        self._apply_threads()
        tensors = self._tensors(feeds)
        out: list = [None]
        sync = torch.cuda.synchronize if self._dev.type == "cuda" else None
        module = self._module

        def call():
            with torch.inference_mode():
                out[0] = module(*tensors)
            if sync is not None:
                sync()

        call()

        def fetch() -> dict:
            d = outputs_to_dict(out[0], self._out_names, self.artifact.key)
            return {k: v.detach().cpu().numpy().copy() for k, v in d.items()}

        return Prepared(call=call, fetch=fetch, release=out.clear)

    def _close(self) -> None:
        self._module = None
        if getattr(self, "_dev", None) is not None and self._dev.type == "cuda":
            torch.cuda.empty_cache()


__all__ = ["TorchRunnerBase", "outputs_to_dict"]
