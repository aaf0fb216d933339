"""ONNX Runtime: CPU, CUDA (onnxruntime-gpu) and OpenVINO (onnxruntime-openvino) providers.

``run`` uses IO binding with one binding per concurrent caller (bindings are
not thread-safe; the session is).  ``prepare`` binds preallocated OrtValues for
input and output, so a timed call is exactly one ``run_with_iobinding``.
Never imports torch.
"""

from __future__ import annotations

import functools
import queue
from pathlib import PurePosixPath

import numpy as np
import onnxruntime as ort

from ..errors import BackendUnavailableError, BundleError
from ..export.manifest import check_relpath
from ..export.onnx_refs import external_data_locations
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


def _run_error(key: str, x: np.ndarray, exc: Exception) -> BundleError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return BundleError(
        f"{key} failed on an input of shape {list(x.shape)} that matches the manifest ({first}); "
        "the artifact does not fit its manifest: re-export the bundle"
    )


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
        # Hashes are checked before ORT parses anything, and ORT gets bytes, never a
        # path: it cannot read a file swapped after the check, or any file outside
        # the bundle (external data comes from memory too, see _external_data).
        model = self.bundle.read_verified(self.artifact)
        external = self._external_data(model)
        if external:
            names = list(external)
            arrays = [np.frombuffer(external[n], dtype=np.uint8) for n in names]
            so.add_external_initializers_from_files_in_memory(names, arrays, [len(a) for a in arrays])
        self._keep_external = external  # ORT may use these buffers in place: keep them alive
        try:
            sess = ort.InferenceSession(model, so, providers=[provider])
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise BundleError(
                f"onnxruntime cannot load {self.artifact.key} ({first}); re-export the bundle"
            ) from None
        if sess.get_providers()[0] != provider:
            raise BackendUnavailableError(
                f"onnxruntime did not enable {provider} (got {sess.get_providers()}); "
                f"{_INSTALL_HINT.get(self.device, '')}"
            )
        self._check_io(sess)
        self._sess = sess
        self._in = sess.get_inputs()[0].name
        self._out = sess.get_outputs()[0].name
        self._ort_device = _ORT_DEVICE[self.device]
        self._bindings: queue.SimpleQueue = queue.SimpleQueue()

    def _external_data(self, model: bytes) -> dict[str, bytes]:
        """location -> verified bytes for every external-data file the model names.

        Each location must be a plain relative path that names one of the artifact's
        listed (hash-checked) files beside the model; anything else is refused.
        """
        out: dict[str, bytes] = {}
        folder = PurePosixPath(self.artifact.file).parent
        listed = {e.path for e in self.artifact.extra_files}
        for loc in external_data_locations(model):
            try:
                rel = check_relpath("external data", loc)
            except BundleError:
                rel = None
            path = str(folder / rel) if rel is not None else None
            if path not in listed:
                raise BundleError(
                    f"{self.artifact.key}: the ONNX model points its external data at {loc[:100]!r}, "
                    "which is not a file of this artifact in the bundle (outside the bundle, or "
                    "unlisted); refusing to read it. Re-export the bundle or restore it from a trusted copy"
                )
            if loc not in out:
                out[loc] = self.bundle.read_verified(self.artifact, file=path)
        return out

    def _check_io(self, sess) -> None:
        """The model's input/output must be the ones the manifest describes."""
        ins, outs = sess.get_inputs(), sess.get_outputs()
        want = list(self.bundle.manifest.input["shape"][1:])
        if len(ins) != 1 or len(outs) != 1:
            raise BundleError(
                f"{self.artifact.key} has {len(ins)} inputs and {len(outs)} outputs, expected 1 and 1 "
                "as the manifest says; re-export the bundle"
            )
        got = list(ins[0].shape)
        fixed = [d if isinstance(d, int) else None for d in got[1:]]
        if len(got) != len(want) + 1 or any(f is not None and f != w for f, w in zip(fixed, want)):
            raise BundleError(
                f"{self.artifact.key} takes input shape {got}, but the manifest says "
                f"{self.bundle.manifest.input['shape']}; re-export the bundle"
            )
        if ins[0].type != "tensor(float)":
            raise BundleError(
                f"{self.artifact.key} takes {ins[0].type}, expected tensor(float); re-export the bundle"
            )

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
        except Exception as exc:  # ORT's own error types; x already passed the manifest's checks
            raise _run_error(self.artifact.key, x, exc) from None
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
        self._keep_external = None

    def describe(self) -> dict:
        d = super().describe()
        d["providers"] = (
            self._sess.get_providers() if getattr(self, "_sess", None) else [PROVIDERS[self.device]]
        )
        return d
