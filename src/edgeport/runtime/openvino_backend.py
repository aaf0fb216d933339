"""OpenVINO: every device in ``Core().available_devices`` plus AUTO.

fp32 artifacts compile with ``INFERENCE_PRECISION_HINT=f32`` so no device
silently drops to bf16/fp16 (this project's CPU would, through AVX512-BF16).
``run`` takes an infer request from a pool (one per concurrent caller;
requests are not thread-safe, the compiled model is).  ``prepare`` gives a
dedicated request with its input tensors preset over the caller's memory, so
a timed call is one synchronous ``infer``.  Never imports torch.
"""

from __future__ import annotations

import threading

import numpy as np
import openvino as ov

from ..errors import BackendUnavailableError, BundleError, first_line
from .base import HandlePool, Prepared, Runner, backend_failure

_CORE: ov.Core | None = None
_CORE_LOCK = threading.Lock()
_COMMON_DEVICES = ("cpu", "gpu", "npu")
OV_TYPES = {
    "f32": "float32",
    "f16": "float16",
    "i64": "int64",
    "i32": "int32",
    "u8": "uint8",
    "i8": "int8",
    "boolean": "bool",
}


def core() -> ov.Core:
    """One process-wide Core (creating one loads every plugin's metadata)."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            _CORE = ov.Core()
        return _CORE


def _available() -> list[str]:
    return [d.lower() for d in core().available_devices]


class OpenVinoRunner(Runner):
    backend = "openvino"
    format = "openvino"

    @classmethod
    def known_devices(cls) -> tuple[str, ...]:
        found = _available()
        extra = [d for d in found if d not in _COMMON_DEVICES]
        return (*_COMMON_DEVICES, *extra, "auto")

    @classmethod
    def device_status(cls, device: str) -> tuple[bool, str]:
        found = _available()
        if device == "auto":
            return (bool(found), "" if found else "OpenVINO found no device")
        if device in found or any(d.split(".")[0] == device for d in found):
            return True, ""
        return False, f"OpenVINO does not see a {device.upper()} here (Core().available_devices = {found})"

    def _config(self) -> dict:
        cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads}
        if self.precision == "fp32":
            cfg["INFERENCE_PRECISION_HINT"] = "f32"
        if self.device == "auto":
            return {"PERFORMANCE_HINT": "LATENCY", "DEVICE_PROPERTIES": {"CPU": cfg}}
        if self.device != "cpu":
            cfg.pop("INFERENCE_NUM_THREADS")
        return cfg

    def _load(self) -> None:
        bin_entry = next((e for e in self.artifact.extra_files if str(e.path).endswith(".bin")), None)
        if bin_entry is None:
            raise BundleError(f"{self.artifact.key} lists no .bin weights file; re-export the bundle")
        xml = self.bundle.read_verified(self.artifact)  # hashes checked before OpenVINO parses anything
        weights = self.bundle.read_verified(self.artifact, file=bin_entry.path)
        head = xml[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
        if not (head.startswith(b"<?xml") or head.startswith(b"<net")):
            raise BundleError(  # read_model also accepts ONNX, TF, Paddle... bytes; only IR XML is allowed
                f"{self.artifact.key}: {self.artifact.file} is not OpenVINO IR XML; re-export the bundle"
            )
        c = core()
        try:
            model = c.read_model(xml, ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()))
        except Exception as exc:
            raise BundleError(
                f"OpenVINO cannot read {self.artifact.key} ({first_line(exc)}); re-export the bundle"
            ) from None
        self._check_io(model)
        if self.taps:
            try:
                model.add_outputs([_port_ref(t) for t in self.taps.values()])
            except Exception as exc:  # noqa: BLE001
                raise BundleError(
                    f"{self.artifact.key}: cannot tap {list(self.taps)[:3]} ({first_line(exc)})"
                ) from None
        model = self._adapt(model)
        try:
            self._compiled = c.compile_model(model, self.device.upper(), self._config())
        except Exception as exc:
            raise BackendUnavailableError(
                f"OpenVINO cannot compile {self.artifact.key} for {self.device.upper()}: {first_line(exc)}"
            ) from None
        outs = self._compiled.outputs
        by_name = {}
        for i, o in enumerate(outs):
            for n in o.get_names():
                by_name.setdefault(n, i)
        self._out_index = {n: by_name[n] for n in self.signature.output_names}
        self._n_model_outputs = len(model.outputs) - len(self.taps)
        self._requests = HandlePool(self._compiled.create_infer_request)

    def _adapt(self, model):
        """The model to compile, from the checked one read from the bundle (subclasses transform it)."""
        return model

    def _check_io(self, model) -> None:
        """The model's inputs and outputs must be the ones the manifest describes."""
        key = self.artifact.key
        try:
            ins = {n: p for p in model.inputs for n in p.get_names()}
            outs = {n: p for p in model.outputs for n in p.get_names()}
            n_in = len(model.inputs)
        except Exception as exc:  # noqa: BLE001 - a malformed model can fail anywhere here
            raise BundleError(f"OpenVINO cannot inspect {key} ({exc}); re-export") from None
        want_in, want_out = self.signature.input_names, self.signature.output_names
        if n_in != len(want_in) or not set(want_in) <= set(ins) or not set(want_out) <= set(outs):
            raise BundleError(
                f"{key} has inputs {sorted(ins)} and outputs {sorted(outs)}, but the manifest says inputs "
                f"{want_in} and outputs {want_out}; re-export the bundle"
            )
        for spec in self.signature.inputs + self.signature.outputs:
            port = ins.get(spec.name) if spec.name in want_in else outs[spec.name]
            etype = OV_TYPES.get(port.get_element_type().get_type_name(), "?")
            if etype != spec.dtype:
                raise BundleError(
                    f"{key}: {spec.name!r} is {etype}, the manifest says {spec.dtype}; re-export"
                )
            shape = port.get_partial_shape()
            if not shape.rank.is_static or len(shape) != spec.rank:
                raise BundleError(
                    f"{key}: {spec.name!r} has rank {shape.rank}, expected {spec.rank}; re-export"
                )
            for d, w in zip(shape, spec.shape):
                if d.is_static and isinstance(w, int) and d.get_length() != w:
                    raise BundleError(
                        f"{key}: {spec.name!r} has shape {shape}, the manifest says {spec.shape_text()}; re-export"
                    )

    def _set_inputs(self, req, feeds: dict) -> None:
        for name, x in feeds.items():
            # A tensor over the caller's (checked, writeable) memory: no input copy.
            req.set_tensor(name, ov.Tensor(x, shared_memory=True))

    def _outputs(self, req) -> dict:
        return {n: req.get_output_tensor(i).data.copy() for n, i in self._out_index.items()}

    def _run(self, feeds: dict) -> dict:
        with self._requests.handle() as req:
            try:
                self._set_inputs(req, feeds)
                req.infer()
                return self._outputs(req)
            except RuntimeError as exc:  # the feeds already passed the manifest's checks
                raise backend_failure(self.artifact.key, feeds, exc) from None

    def _run_taps(self, feeds: dict) -> tuple[dict, dict]:
        req = self._compiled.create_infer_request()
        self._set_inputs(req, feeds)
        req.infer()
        n = self._n_model_outputs
        taps = {label: req.get_output_tensor(n + k).data.copy() for k, label in enumerate(self.taps)}
        return self._outputs(req), taps

    def _prepare(self, feeds: dict) -> Prepared:
        req = self._compiled.create_infer_request()
        self._set_inputs(req, feeds)
        keep = [feeds, req]
        req.infer()  # allocates the outputs for these shapes

        def release() -> None:
            keep.clear()

        return Prepared(call=req.infer, fetch=lambda: self._outputs(req), release=release)

    def _close(self) -> None:
        self._requests.clear()
        self._compiled = None

    def describe(self) -> dict:
        d = super().describe()
        compiled = getattr(self, "_compiled", None)
        if compiled is not None and self.device == "cpu":
            try:
                hint = compiled.get_property("INFERENCE_PRECISION_HINT")
                d["inference_precision"] = (
                    hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
                )
                d["num_streams"] = int(compiled.get_property("NUM_STREAMS"))
            except Exception:  # noqa: S110 - informational only
                pass
        return d


def _port_ref(tap: str):
    """``"op_name:port"`` -> (op_name, port) for Model.add_outputs; a plain name is a tensor name."""
    name, sep, port = tap.rpartition(":")
    if sep and port.isdigit():
        return (name, int(port))
    return tap
