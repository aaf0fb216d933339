"""PyTorch eager from the bundle's safetensors checkpoint: the reference backend."""

from __future__ import annotations

from ..errors import BundleError
from ._torch_common import TorchRunnerBase


class TorchRunner(TorchRunnerBase):
    backend = "torch"
    format = "torch"

    def _build(self):
        from safetensors.torch import load as load_safetensors

        from ..models import build_model, code_is_trusted

        data = self.bundle.read_verified(self.artifact)  # hash checked before parsing
        try:
            state = load_safetensors(data)
        except Exception as exc:
            raise BundleError(
                f"{self.artifact.key} is not a readable safetensors file ({exc}); re-export"
            ) from None
        model = build_model(self.bundle.manifest.model, trust_code=code_is_trusted())
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise BundleError(
                f"{self.artifact.key} does not fit model {self.bundle.manifest.model!r}: {first}"
            ) from None
        return model.eval().to(self._dev)
