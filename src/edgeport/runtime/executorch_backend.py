"""ExecuTorch's runtime (``executorch.runtime``) on the CPU: ``.pte`` programs lowered to XNNPACK.

The Python runtime imports torch (``method.execute`` takes torch tensors of the
exact exported dtype, never numpy); on devices a ``.pte`` runs in ExecuTorch's
own C++ runtime.  The program is loaded from the verified bytes.  A program's
methods share memory-planned arenas, so each concurrent caller gets its own
program instance from a pool (like ORT's IO bindings); the thread pool size is
set before the first method loads; the runtime's cpuinfo chatter on stderr is
kept out of edgeport's output.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading

import numpy as np

from ..errors import BundleError, first_line
from .base import HandlePool, Prepared, Runner, backend_failure

# ExecuTorch ScalarType codes (runtime/core/portable_type/scalar_type.h)
_TYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 11: "bool"}
_STDERR_LOCK = threading.RLock()  # re-entrant: quiet blocks nest (export inside quantize)


@contextlib.contextmanager
def quiet_stderr():
    """fd 2 and ``sys.stderr`` to /dev/null while the runtime initialises (it prints cpuinfo lines)."""
    with _STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            with contextlib.redirect_stderr(io.StringIO()):  # the pybindings log through sys.stderr too
                yield
        finally:
            _flush_c_stdio()  # the runtime's log lines may sit in a C stdio buffer: flush them to /dev/null
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


class ExecuTorchRunner(Runner):
    backend = "executorch"
    format = "executorch"
    devices = ("cpu",)

    def _load(self) -> None:
        import logging

        import torch  # noqa: F401  (executorch's pybindings link against torch)

        logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # torchao's import-time notice

        with quiet_stderr():
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
            from executorch.runtime import Runtime, Verification

            self._rt = Runtime.get()
            self._verification = Verification.InternalConsistency
            _unsafe_reset_threadpool(self.threads)  # before any method loads
        self._data = self.bundle.read_verified(self.artifact)  # hash checked before parsing
        self._check_program()
        self._pool = HandlePool(self._instance)
        first = self._instance()
        self._check_io(first[1])
        self._pool.put(first)
        self._in_names = self.signature.input_names
        self._out_names = self.signature.output_names

    def _check_program(self) -> None:
        """The header in Python, then (for a bundle this process did not write) one load and run in a
        child process: ExecuTorch aborts the process on some malformed programs (:mod:`.pte_check`)."""
        from . import pte_check

        pte_check.check_header(self._data, self.artifact.key)
        if not self.bundle.trusted:
            values = self.signature.example_values(1)
            feeds = [(s.concrete_shape(values), s.dtype) for s in self.signature.inputs]
            pte_check.probe(self._data, self.artifact.sha256, self.artifact.key, feeds)

    def _instance(self):
        try:
            with quiet_stderr():
                program = self._rt.load_program(self._data, verification=self._verification)
                method = program.load_method("forward")
        except Exception as exc:  # noqa: BLE001 - the runtime raises RuntimeError/ValueError on a bad program
            raise BundleError(
                f"ExecuTorch cannot load {self.artifact.key} ({first_line(exc)}); re-export the bundle"
            ) from None
        if method is None:
            raise BundleError(f"{self.artifact.key} has no 'forward' method; re-export the bundle")
        return program, method

    def _check_io(self, method) -> None:
        meta = method.metadata
        ins, outs = meta.num_inputs(), meta.num_outputs()
        if ins != len(self.signature.inputs) or outs != len(self.signature.outputs):
            raise BundleError(
                f"{self.artifact.key} takes {ins} inputs and returns {outs} outputs, but the manifest lists "
                f"{len(self.signature.inputs)} and {len(self.signature.outputs)}; re-export the bundle"
            )
        for i, spec in enumerate(self.signature.inputs):
            info = meta.input_tensor_meta(i)
            dtype = _TYPES.get(int(info.dtype()), f"ScalarType {info.dtype()}")
            sizes = list(info.sizes())
            if (
                dtype != spec.dtype
                or len(sizes) != spec.rank
                or any(isinstance(w, int) and g != w for g, w in zip(sizes, spec.shape))
            ):
                raise BundleError(
                    f"{self.artifact.key}: input {i} is {dtype} {sizes}, the manifest says {spec.dtype} "
                    f"{spec.shape_text()}; re-export the bundle"
                )

    def _tensors(self, feeds: dict) -> list:
        import torch

        return [torch.from_numpy(feeds[n]) for n in self._in_names]

    def _run(self, feeds: dict) -> dict:
        with self._pool.handle() as inst:
            try:
                outs = inst[1].execute(self._tensors(feeds))
            except Exception as exc:  # noqa: BLE001 - the feeds already passed the manifest's checks
                raise backend_failure(self.artifact.key, feeds, exc) from None
        if len(outs) != len(self._out_names):
            raise BundleError(
                f"{self.artifact.key} returned {len(outs)} outputs, the manifest lists {len(self._out_names)}"
            )
        return {n: np.array(t.numpy(), copy=True) for n, t in zip(self._out_names, outs, strict=True)}

    def _prepare(self, feeds: dict) -> Prepared:
        program, method = self._instance()
        tensors = self._tensors(feeds)
        out: list = [method.execute(tensors)]
        keep = [program, method, feeds, tensors]

        def call():
            out[0] = method.execute(tensors)

        def fetch() -> dict:
            return {n: np.array(t.numpy(), copy=True) for n, t in zip(self._out_names, out[0], strict=True)}

        return Prepared(call=call, fetch=fetch, release=keep.clear)

    def _close(self) -> None:
        self._pool.clear()
        self._data = None

    def describe(self) -> dict:
        d = super().describe()
        d["delegate"] = "XNNPACK"
        return d
