"""The format registry: every artifact format, the module that exports it and the runner that runs it.

Adding a format is one module under ``edgeport/formats/`` (export, int8
quantization, int8 proof), one runner module under ``edgeport/runtime/``, and
one line here.  Nothing else branches on a format's name.  stdlib only: both
halves of edgeport read this table without importing either.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .errors import BackendUnavailableError, ConfigError


@dataclass(frozen=True)
class FormatInfo:
    name: str
    module: str  # the export-half module: export(), quantize(), prove_int8(), ...
    backend: str  # the runtime backend that runs it
    runner: str  # "module:Class" of that backend's runner
    package: str  # the Python package the runner needs
    install: str  # how to get it
    title: str
    runs_code: bool = False  # loading an artifact can run arbitrary code: needs explicit trust
    int8: bool = True  # the format module can quantize


# Export order: openvino converts from the ONNX file when there is one, so onnx comes first.
FORMATS: dict[str, FormatInfo] = {
    "torch": FormatInfo(
        "torch",
        "edgeport.formats.checkpoint",
        "torch",
        "edgeport.runtime.torch_backend:TorchRunner",
        "torch",
        "pip install 'edgeport[export]' (installs torch)",
        "PyTorch eager (reference)",
        int8=False,
    ),
    "torchscript": FormatInfo(
        "torchscript",
        "edgeport.formats.torchscript",
        "torchscript",
        "edgeport.runtime.torchscript_backend:TorchScriptRunner",
        "torch",
        "pip install 'edgeport[export]' (installs torch)",
        "TorchScript",
        runs_code=True,
    ),
    "onnx": FormatInfo(
        "onnx",
        "edgeport.formats.onnx",
        "onnxruntime",
        "edgeport.runtime.onnxruntime_backend:OnnxRuntimeRunner",
        "onnxruntime",
        "pip install edgeport (installs onnxruntime)",
        "ONNX",
    ),
    "openvino": FormatInfo(
        "openvino",
        "edgeport.formats.openvino",
        "openvino",
        "edgeport.runtime.openvino_backend:OpenVinoRunner",
        "openvino",
        "pip install 'edgeport[openvino]'",
        "OpenVINO IR",
    ),
    "executorch": FormatInfo(
        "executorch",
        "edgeport.formats.executorch",
        "executorch",
        "edgeport.runtime.executorch_backend:ExecuTorchRunner",
        "executorch",
        "pip install 'edgeport[executorch]'",
        "ExecuTorch (.pte, XNNPACK)",
    ),
}
# What `edgeport export` writes when --formats is not given.
DEFAULT_EXPORT_FORMATS = ("torchscript", "onnx", "openvino", "executorch")
EXPORTABLE = tuple(f for f in FORMATS if f != "torch")


def info(name: str) -> FormatInfo:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown format {name!r}; choose from {', '.join(EXPORTABLE)}") from None


def by_backend(backend: str) -> FormatInfo:
    for f in FORMATS.values():
        if f.backend == backend:
            return f
    raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(backends())}")


def backends() -> list[str]:
    return [f.backend for f in FORMATS.values()]


def module(name: str):
    """The export-half module of a format (imports torch and the format's tools)."""
    fi = info(name)
    try:
        return importlib.import_module(fi.module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the {fi.title} exporter cannot be imported ({exc}): {fi.install}"
        ) from None
