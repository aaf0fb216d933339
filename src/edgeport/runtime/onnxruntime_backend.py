"""ONNX Runtime: CPU and CUDA (onnxruntime-gpu) providers.

No OpenVINO execution provider: ``onnxruntime-openvino`` replaces the ``onnxruntime`` package with an
older build (1.24 against the pinned 1.32), so it can never be installed, or tested, beside the rest;
OpenVINO devices are served by the ``openvino`` backend, which runs the bundle's IR.

ORT gets verified bytes, never a path, and external data from memory; the
graph is scanned first for external-data escapes and unbounded control flow.
``run`` uses IO binding with one binding per concurrent caller (bindings are
not thread-safe; the session is).  ``prepare`` binds preallocated OrtValues for
every input and output, so a timed call is exactly one ``run_with_iobinding``.
Never imports torch.
"""

from __future__ import annotations

import functools
from pathlib import PurePosixPath

import numpy as np
import onnxruntime as ort

from ..bundle import check_relpath
from ..bundle.onnx_graph import check_bounded, external_data_locations
from ..errors import BackendUnavailableError, BundleError, first_line
from .base import HandlePool, Prepared, Runner, backend_failure

# ORT's own log (colour-coded kernel errors) stays off stderr: failures reach the caller as one-line errors.
ort.set_default_logger_severity(4)

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
}
_INSTALL_HINT = {
    "cuda": "onnxruntime CUDA provider not installed: pip install onnxruntime-gpu (and a CUDA GPU)",
}
_ORT_DEVICE = {"cpu": "cpu", "cuda": "cuda"}
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}


def session_options(threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 4  # fatal only: ORT's warnings and kernel errors stay off stderr (errors reach the caller as one line)
    return so


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"
    format = "onnx"
    devices = ("cpu", "cuda")

    @classmethod
    def device_status(cls, device: str) -> tuple[bool, str]:
        if PROVIDERS[device] in ort.get_available_providers():
            return True, ""
        return False, _INSTALL_HINT[device]

    def _load(self) -> None:
        so = session_options(self.threads)
        provider = PROVIDERS[self.device]
        model = self.bundle.read_verified(self.artifact)  # hash checked before parsing
        check_bounded(model, self.artifact.key)
        external = self._external_data(model)
        if external:
            names = list(external)
            arrays = [np.frombuffer(external[n], dtype=np.uint8) for n in names]
            so.add_external_initializers_from_files_in_memory(names, arrays, [len(a) for a in arrays])
        self._keep_external = external  # ORT may use these buffers in place: keep them alive
        if self.taps:
            model = _with_tap_outputs(model, list(self.taps.values()))
        try:
            sess = ort.InferenceSession(model, so, providers=[provider])
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/... types
            raise BundleError(
                f"onnxruntime cannot load {self.artifact.key} ({first_line(exc)}); re-export the bundle"
            ) from None
        if sess.get_providers()[0] != provider:
            raise BackendUnavailableError(
                f"onnxruntime did not enable {provider} (got {sess.get_providers()}); {_INSTALL_HINT.get(self.device, '')}"
            )
        self._check_io(sess)
        self._sess = sess
        self._ort_device = _ORT_DEVICE[self.device]
        self._bindings = HandlePool(sess.io_binding)

    def _external_data(self, model: bytes) -> dict[str, bytes]:
        """location -> verified bytes for every external-data file the model names.

        Each location must be a plain relative path naming one of the artifact's
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
                    f"{self.artifact.key}: the ONNX model points its external data at {loc[:100]!r}, which is "
                    "not a file of this artifact in the bundle (outside the bundle, or unlisted); refusing to "
                    "read it. Re-export the bundle or restore it from a trusted copy"
                )
            if loc not in out:
                out[loc] = self.bundle.read_verified(self.artifact, file=path)
        return out

    def _check_io(self, sess) -> None:
        """The model's inputs and outputs must be the ones the manifest describes."""
        key = self.artifact.key
        ins = {i.name: i for i in sess.get_inputs()}
        outs = {o.name: o for o in sess.get_outputs()}
        want_in, want_out = set(self.signature.input_names), set(self.signature.output_names)
        if set(ins) != want_in or not want_out <= set(outs):
            raise BundleError(
                f"{key} has inputs {sorted(ins)} and outputs {sorted(outs)}, but the manifest says inputs "
                f"{sorted(want_in)} and outputs {sorted(want_out)}; re-export the bundle"
            )
        for spec in self.signature.inputs + self.signature.outputs:
            node = ins.get(spec.name) or outs[spec.name]
            got_type = ORT_TYPES.get(node.type, node.type)
            if got_type != spec.dtype:
                raise BundleError(
                    f"{key}: {spec.name!r} is {node.type}, the manifest says {spec.dtype}; re-export"
                )
            shape = list(node.shape) if node.shape is not None else None
            if shape is not None and (
                len(shape) != spec.rank
                or any(
                    isinstance(g, int) and isinstance(w, int) and g != w for g, w in zip(shape, spec.shape)
                )
            ):
                raise BundleError(
                    f"{key}: {spec.name!r} has shape {shape}, the manifest says {spec.shape_text()}; re-export"
                )
        self._out_names = self.signature.output_names

    def _run(self, feeds: dict) -> dict:
        with self._bindings.handle() as binding:
            try:
                for name, x in feeds.items():
                    binding.bind_cpu_input(name, x)
                for name in self._out_names:
                    binding.bind_output(name, self._ort_device)
                self._sess.run_with_iobinding(binding)
                return dict(zip(self._out_names, binding.copy_outputs_to_cpu(), strict=True))
            except Exception as exc:  # ORT's own error types; the feeds already passed the manifest's checks
                raise backend_failure(self.artifact.key, feeds, exc) from None
            finally:
                binding.clear_binding_inputs()
                binding.clear_binding_outputs()

    def _run_taps(self, feeds: dict) -> tuple[dict, dict]:
        labels = list(self.taps)
        names = self._out_names + [self.taps[k] for k in labels]
        res = self._sess.run(names, feeds)
        n = len(self._out_names)
        return dict(zip(self._out_names, res[:n], strict=True)), dict(zip(labels, res[n:], strict=True))

    def _prepare(self, feeds: dict) -> Prepared:
        sess, dev = self._sess, self._ort_device
        shapes = {k: v.shape for k, v in self._run(feeds).items()}  # learn the output shapes once
        binding = sess.io_binding()
        keep: list = [feeds]
        for name, x in feeds.items():
            v = ort.OrtValue.ortvalue_from_numpy(x, dev, 0)
            binding.bind_ortvalue_input(name, v)
            keep.append(v)
        for spec in self.signature.outputs:
            v = ort.OrtValue.ortvalue_from_shape_and_type(list(shapes[spec.name]), spec.np_dtype, dev, 0)
            binding.bind_ortvalue_output(spec.name, v)
            keep.append(v)

        def fetch() -> dict:
            return {n: np.array(a, copy=True) for n, a in zip(self._out_names, binding.copy_outputs_to_cpu())}

        def release() -> None:
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
            keep.clear()

        return Prepared(
            call=functools.partial(sess.run_with_iobinding, binding), fetch=fetch, release=release
        )

    def _close(self) -> None:
        self._bindings.clear()
        self._sess = None
        self._keep_external = None

    def describe(self) -> dict:
        d = super().describe()
        d["providers"] = (
            self._sess.get_providers() if getattr(self, "_sess", None) else [PROVIDERS[self.device]]
        )
        return d


def _with_tap_outputs(model: bytes, tensors: list[str]) -> bytes:
    """The model with ``tensors`` added as graph outputs (needs the onnx package: export half only)."""
    import onnx

    proto = onnx.load_from_string(model)
    existing = {o.name for o in proto.graph.output}
    try:  # each tapped tensor's element type (QOperator graphs carry uint8/int8 activations)
        inferred = onnx.shape_inference.infer_shapes(proto).graph.value_info
        types = {v.name: v.type.tensor_type.elem_type for v in inferred}
    except Exception:  # noqa: BLE001 - inference is best effort; float is the common case
        types = {}
    for t in tensors:
        if t in existing:
            continue
        if types.get(t):
            proto.graph.output.append(onnx.helper.make_tensor_value_info(t, types[t], None))
        else:  # a contrib op's output (QGemm): no declared type, ONNX Runtime takes the node's own
            proto.graph.output.append(onnx.ValueInfoProto(name=t))
    return proto.SerializeToString()
