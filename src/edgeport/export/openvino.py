"""OpenVINO IR export through ``openvino.convert_model`` and ``save_model``."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import BackendUnavailableError, ExportError


def export_openvino(
    model: torch.nn.Module, xml_path: Path, example: torch.Tensor, *, onnx_path: Path | None, fp16: bool
) -> dict:
    """Write ``xml_path`` (+ ``.bin``), from the ONNX file when there is one, else from torch."""
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailableError(
            "OpenVINO export needs openvino: pip install 'edgeport[openvino]'"
        ) from None
    try:
        if onnx_path is not None:
            ov_model, source = ov.convert_model(str(onnx_path)), "onnx"
        else:
            with torch.no_grad():
                ov_model = ov.convert_model(
                    model.eval(), example_input=example, input=[ov.PartialShape([-1, *example.shape[1:]])]
                )
            source = "torch"
        ov_model.inputs[0].get_tensor().set_names({"input"})
        ov_model.outputs[0].get_tensor().set_names({"probs"})
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        # save_model compresses to fp16 by default: say what we mean every time.
        ov.save_model(ov_model, str(xml_path), compress_to_fp16=fp16)
    except Exception as exc:
        raise ExportError(
            f"OpenVINO conversion failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    return {"source": source, "compress_to_fp16": fp16, "openvino": ov.get_version()}
