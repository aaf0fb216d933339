"""TorchScript export: trace in eval mode, freeze, refuse any dropout left in the graph.

Kept in its own module because TorchScript is deprecated upstream.  The saved
archive loads with plain ``torch.jit.load`` in a process without edgeport.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..errors import ExportError


def _kinds(module: torch.jit.ScriptModule) -> list[str]:
    return [n.kind() for n in module.graph.nodes()]


def export_torchscript(
    model: torch.nn.Module, path: Path, example: torch.Tensor, *, mobile_path: Path | None = None
) -> dict:
    """Write a frozen TorchScript archive to ``path``; return the manifest details."""
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices for jit.trace/freeze
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, example, check_trace=False)
            frozen = torch.jit.freeze(traced.eval())
        except Exception as exc:
            raise ExportError(f"TorchScript trace of the model failed: {str(exc).splitlines()[0]}") from None
        kinds = _kinds(frozen)
        dropout = sorted({k for k in kinds if "dropout" in k.lower()})
        if dropout:
            raise ExportError(
                f"TorchScript graph still holds {', '.join(dropout)} after freezing in eval mode"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(frozen, str(path))
        details = {
            "method": "trace",
            "frozen": True,
            "ops": sorted({k for k in kinds if k.startswith("aten::")}),
        }
        if mobile_path is not None:
            from torch.utils.mobile_optimizer import optimize_for_mobile

            try:
                optimize_for_mobile(frozen)._save_for_lite_interpreter(str(mobile_path))
                details["mobile_optimized"] = True
            except Exception:
                # torch builds without XNNPACK cannot run optimize_for_mobile: save the
                # frozen module for the lite interpreter as it is.
                try:
                    frozen._save_for_lite_interpreter(str(mobile_path))
                except Exception as exc:
                    raise ExportError(
                        f"TorchScript mobile (lite interpreter) export failed: {str(exc).splitlines()[0]}"
                    ) from None
                details["mobile_optimized"] = False
            details["mobile"] = mobile_path.parent.name + "/" + mobile_path.name
    return details
