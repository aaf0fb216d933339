"""OpenVINO: every device in ``Core().available_devices`` plus AUTO.

fp32 artifacts compile with ``INFERENCE_PRECISION_HINT=f32`` so no device
silently drops to bf16/fp16.  ``run`` takes an infer request from a pool (one
per concurrent caller; requests are not thread-safe, the compiled model is).
``prepare`` gives a dedicated request with its input tensor preset over the
caller's memory, so a timed call is one synchronous ``infer``.
Never imports torch.
"""

from __future__ import annotations

import queue
import threading

import numpy as np
import openvino as ov

from ..errors import BackendUnavailableError, BundleError
from .base import Prepared, Runner

_CORE: ov.Core | None = None
_CORE_LOCK = threading.Lock()
_COMMON_DEVICES = ("cpu", "gpu", "npu")


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
        cfg = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": self.threads,
        }
        if self.precision == "fp32":
            cfg["INFERENCE_PRECISION_HINT"] = "f32"
        if self.device == "auto":
            # AUTO forwards device properties to the device it picks.
            return {"PERFORMANCE_HINT": "LATENCY", "DEVICE_PROPERTIES": {"CPU": cfg}}
        if self.device != "cpu":
            cfg.pop("INFERENCE_NUM_THREADS")
        return cfg

    def _load(self) -> None:
        bin_entry = next((e for e in self.artifact.extra_files if str(e.path).endswith(".bin")), None)
        if bin_entry is None:
            raise BundleError(f"{self.artifact.key} lists no .bin weights file; re-export the bundle")
        # Hashes are checked before OpenVINO parses anything.
        xml = self.bundle.read_verified(self.artifact)
        weights = self.bundle.read_verified(self.artifact, file=bin_entry.path)
        head = xml[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
        if not (head.startswith(b"<?xml") or head.startswith(b"<net")):
            # read_model also accepts ONNX, TF, Paddle... bytes; only IR XML is allowed here.
            raise BundleError(
                f"{self.artifact.key}: {self.artifact.file} is not OpenVINO IR XML; "
                "re-export the bundle or restore it from a trusted copy"
            )
        c = core()
        try:
            model = c.read_model(xml, ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise BundleError(
                f"OpenVINO cannot read {self.artifact.key} ({first}); re-export the bundle"
            ) from None
        self._check_io(model)
        try:
            self._compiled = c.compile_model(model, self.device.upper(), self._config())
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BackendUnavailableError(
                f"OpenVINO cannot compile {self.artifact.key} for {self.device.upper()}: {first}"
            ) from None
        self._requests: queue.SimpleQueue = queue.SimpleQueue()

    def _check_io(self, model) -> None:
        """The model's input/output must be the ones the manifest describes."""
        try:
            ins, outs = model.inputs, model.outputs
            shape = ins[0].get_partial_shape() if len(ins) == 1 else None
            got = [d.get_length() if d.is_static else None for d in shape] if shape is not None else []
            rank_ok = shape is not None and shape.rank.is_static
            etype = ins[0].get_element_type().get_type_name() if ins else ""
        except Exception as exc:  # noqa: BLE001 - a malformed model can fail anywhere here
            raise BundleError(f"OpenVINO cannot inspect {self.artifact.key} ({exc}); re-export") from None
        want = list(self.bundle.manifest.input["shape"][1:])
        if len(ins) != 1 or len(outs) != 1 or not rank_ok:
            raise BundleError(
                f"{self.artifact.key} has {len(ins)} inputs and {len(outs)} outputs (expected 1 and 1 "
                "with a known rank, as the manifest says); re-export the bundle"
            )
        if len(got) != len(want) + 1 or any(g is not None and g != w for g, w in zip(got[1:], want)):
            raise BundleError(
                f"{self.artifact.key} takes input shape {got}, but the manifest says "
                f"{self.bundle.manifest.input['shape']}; re-export the bundle"
            )
        if etype != "f32":
            raise BundleError(f"{self.artifact.key} takes {etype} input, expected f32; re-export the bundle")

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            req = self._requests.get_nowait()
        except queue.Empty:
            req = self._compiled.create_infer_request()
        try:
            # A tensor over the caller's memory: no input copy, one output copy.
            req.set_input_tensor(ov.Tensor(x, shared_memory=True))
            req.infer()
            return req.get_output_tensor(0).data.copy()
        except RuntimeError as exc:  # x already passed the manifest's checks
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise BundleError(
                f"{self.artifact.key} failed on an input of shape {list(x.shape)} that matches the "
                f"manifest ({first}); the artifact does not fit its manifest: re-export the bundle"
            ) from None
        finally:
            self._requests.put(req)

    def _prepare(self, x: np.ndarray) -> Prepared:
        req = self._compiled.create_infer_request()
        req.set_input_tensor(ov.Tensor(x, shared_memory=True))
        keep = [x, req]
        req.infer()  # allocates the output for this shape

        def release() -> None:
            keep.clear()

        return Prepared(call=req.infer, fetch=lambda: req.get_output_tensor(0).data.copy(), release=release)

    def _close(self) -> None:
        while True:
            try:
                self._requests.get_nowait()
            except queue.Empty:
                break
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
