"""PyTorch eager from the bundle's reference artifact: the reference backend.

The artifact is a safetensors checkpoint rebuilt through the model reference
(registry, ``torchvision:``/``timm:``, or ``pkg.mod:factory``, which needs
explicit trust), or a saved ExportedProgram (unpickled: needs explicit trust).
"""

from __future__ import annotations

from ..errors import BundleError, first_line
from ._torch_common import TorchRunnerBase


class TorchRunner(TorchRunnerBase):
    backend = "torch"
    format = "torch"

    def _build(self):
        from ..trust import code_is_trusted

        data = self.bundle.read_verified(self.artifact)  # hash checked before parsing
        m = self.bundle.manifest
        if self.artifact.details.get("format") == "pt2":
            from ..sources.models import ExportedModule, load_exported_program

            ep = load_exported_program(
                data,
                trust_code=code_is_trusted(self.bundle),
                name=f"{self.artifact.file} in bundle {self.bundle.path}",
            )
            return ExportedModule(ep.module()).to(self._dev)
        from safetensors.torch import load as load_safetensors

        from ..sources.models import build_model, load_into

        try:
            state = load_safetensors(data)
        except Exception as exc:
            raise BundleError(
                f"{self.artifact.key} is not a readable safetensors file ({first_line(exc)}); re-export"
            ) from None
        model = build_model(
            m.model,
            m.model_args,
            trust_code=code_is_trusted(self.bundle),
            origin=f"bundle {self.bundle.path} (manifest.json)",
        )
        load_into(model, state, what=self.artifact.key, model=m.model)
        model.eval().to(self._dev)
        if self.taps:
            self._hooks = _tap_modules(model, self.taps)
        return model

    def _run_taps(self, feeds: dict) -> tuple[dict, dict]:
        import torch

        store = self._hooks
        store.clear()
        with torch.inference_mode():
            out = self._call(self._tensors(feeds))
        return {k: v.cpu().numpy() for k, v in out.items()}, {k: v.copy() for k, v in store.items()}


def _tap_modules(model, taps: dict) -> dict:
    """Forward hooks on the named modules; their outputs land in the returned dict by tap label."""
    store: dict = {}
    mods = dict(model.named_modules())
    for label, name in taps.items():
        mod = mods.get(name)
        if mod is None:
            raise BundleError(f"torch: no module {name!r} to tap")
        mod.register_forward_hook(
            lambda _m, _i, o, k=label: store.__setitem__(k, o.detach().float().cpu().numpy())
        )
    return store
