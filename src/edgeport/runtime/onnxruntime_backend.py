"""ONNX Runtime: CPU, CUDA (onnxruntime-gpu) and OpenVINO (onnxruntime-openvino) providers.

``run`` uses IO binding with one binding per concurrent caller (bindings are
not thread-safe; the session is).  ``prepare`` binds preallocated OrtValues for
input and output, so a timed call is exactly one ``run_with_iobinding``.
Never imports torch.
"""

from __future__ import annotations

import functools
import queue

import numpy as np
import onnxruntime as ort

from ..errors import BackendUnavailableError, BundleError
from .base import Prepared, Runner

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
_INSTALL_HINT = {
    "cuda": "onnxruntime CUDA provider not installed: pip install onnxruntime-gpu (and a CUDA GPU)",
    "openvino": "onnxruntime OpenVINO provider not installed: pip install onnxruntime-openvino",
}
# Where OrtValues live for each device (ORT's device names).
_ORT_DEVICE = {"cpu": "cpu", "cuda": "cuda", "openvino": "cpu"}


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"
    format = "onnx"
    devices = ("cpu", "cuda", "openvino")

    @classmethod
    def device_status(cls, device: str) -> tuple[bool, str]:
        if PROVIDERS[device] in ort.get_available_providers():
            return True, ""
        return False, _INSTALL_HINT[device]

    def _load(self) -> None:
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        provider = PROVIDERS[self.device]
        # Hashes are checked before ORT parses anything.
        model = self.bundle.read_verified(self.artifact)
        if self.artifact.extra_files:  # external data: verified here, read by ORT from the folder
            for entry in self.artifact.extra_files:
                self.bundle.read_verified(self.artifact, file=entry.path)
            model = str(self.bundle.path_of(self.artifact))
        try:
            sess = ort.InferenceSession(model, so, providers=[provider])
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise BundleError(
                f"onnxruntime cannot load {self.artifact.key} ({first}); re-export the bundle"
            ) from None
        if sess.get_providers()[0] != provider:
            raise BackendUnavailableError(
                f"onnxruntime did not enable {provider} (got {sess.get_providers()}); "
                f"{_INSTALL_HINT.get(self.device, '')}"
            )
        self._sess = sess
        self._in = sess.get_inputs()[0].name
        self._out = sess.get_outputs()[0].name
        self._ort_device = _ORT_DEVICE[self.device]
        self._bindings: queue.SimpleQueue = queue.SimpleQueue()

    def _run(self, x: np.ndarray) -> np.ndarray:
        try:
            binding = self._bindings.get_nowait()
        except queue.Empty:
            binding = self._sess.io_binding()
        try:
            binding.bind_cpu_input(self._in, x)
            binding.bind_output(self._out, self._ort_device)
            self._sess.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0]
        finally:
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
            self._bindings.put(binding)

    def _prepare(self, x: np.ndarray) -> Prepared:
        sess, dev = self._sess, self._ort_device
        n_out = self._run(x).shape  # learn the output shape once
        x_val = ort.OrtValue.ortvalue_from_numpy(x, dev, 0)
        y_val = ort.OrtValue.ortvalue_from_shape_and_type(list(n_out), np.float32, dev, 0)
        binding = sess.io_binding()
        binding.bind_ortvalue_input(self._in, x_val)
        binding.bind_ortvalue_output(self._out, y_val)
        keep = [x, x_val, y_val]  # the OrtValues wrap x's memory; keep all alive with the callable

        def fetch() -> np.ndarray:
            return np.array(binding.copy_outputs_to_cpu()[0], copy=True)

        def release() -> None:
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
            keep.clear()

        return Prepared(
            call=functools.partial(sess.run_with_iobinding, binding), fetch=fetch, release=release
        )

    def _close(self) -> None:
        while True:
            try:
                self._bindings.get_nowait()
            except queue.Empty:
                break
        self._sess = None

    def describe(self) -> dict:
        d = super().describe()
        d["providers"] = (
            self._sess.get_providers() if getattr(self, "_sess", None) else [PROVIDERS[self.device]]
        )
        return d
