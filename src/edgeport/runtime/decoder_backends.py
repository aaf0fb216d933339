"""The decoder runner of each format: ONNX Runtime (explicit past/present tensors), OpenVINO
(paged attention over cache blocks the runner owns on CPU, else the stateful IR: the cache is the
model's state) and ExecuTorch (static cache in mutable buffers).

Each reuses its format's :class:`~edgeport.runtime.base.Runner` for loading
(verified bytes, external data, device checks, compile options) and adds
``_reset`` and ``_step`` for :class:`~.decoders.DecoderMixin`.  Only the
ExecuTorch one imports torch (its Python runtime needs it).
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendUnavailableError, BundleError, first_line
from . import openvino_paged as paged
from .base import backend_failure
from .decoders import DecoderMixin
from .executorch_backend import ExecuTorchRunner
from .onnxruntime_backend import OnnxRuntimeRunner
from .openvino_backend import OpenVinoRunner

_LM_INPUTS = ("input_ids", "position_ids", "logits_index")


def _fail(runner, exc: Exception, feeds: dict) -> BundleError:
    return backend_failure(runner.artifact.key, feeds, exc, where=f" at cache position {runner.position}")


class OrtDecoder(DecoderMixin, OnnxRuntimeRunner):
    """ONNX Runtime: every step binds the previous step's present tensors (OrtValues, no copy) as past."""

    def __init__(self, bundle, **kw) -> None:
        super().__init__(bundle, **kw)
        self._init_lm()
        cache = self.generation["cache"]
        self._past, self._present = list(cache["past_inputs"]), list(cache["present_outputs"])
        arch = self.generation["architecture"]
        self._empty = np.zeros((1, arch["kv_heads"], 0, arch["head_dim"]), np.float32)

    def _check_io(self, sess) -> None:
        ins = [i.name for i in sess.get_inputs()]
        outs = [o.name for o in sess.get_outputs()]
        if ins != [*_LM_INPUTS, *self._past] or outs != ["logits", *self._present]:
            raise BundleError(
                f"{self.artifact.key} has inputs {ins[:4]}... and outputs {outs[:3]}..., not the decoder I/O the "
                "manifest's generation.cache describes; re-export the bundle"
            )
        self._out_names = ["logits"]

    def _reset(self) -> None:
        self._kv = None

    def _step(self, feeds: dict) -> np.ndarray:
        b = self._sess.io_binding()
        try:
            for name in _LM_INPUTS:
                b.bind_cpu_input(name, feeds[name])
            for i, name in enumerate(self._past):
                if self._kv is None:
                    b.bind_cpu_input(name, self._empty)
                else:
                    b.bind_ortvalue_input(name, self._kv[i])
            for name in ["logits", *self._present]:
                b.bind_output(name, "cpu")
            self._sess.run_with_iobinding(b)
            outs = b.get_outputs()
        except Exception as exc:  # noqa: BLE001 - ORT's own error types
            raise _fail(self, exc, feeds) from None
        self._kv = list(outs[1:])
        return outs[0].numpy()


class OpenVinoDecoder(DecoderMixin, OpenVinoRunner):
    """OpenVINO: on CPU, paged attention over cache blocks this runner owns (see :mod:`.openvino_paged`);
    elsewhere, or with ``kv_cache="state"``, the stateful IR as exported (one infer request holds the
    cache, ``reset_state()`` empties it).  ``kv_cache="auto"`` pages where the IR and device allow it."""

    def __init__(self, bundle, *, kv_cache: str = "auto", **kw) -> None:
        self.kv_cache_mode = paged.check_mode(kv_cache)
        super().__init__(bundle, **kw)
        self._init_lm()
        self._paged: paged.PagedCache | None = None
        self._paging = False
        self._not_paged = ""  # why "auto" runs the state after all

    def _adapt(self, model):
        why = "" if self.kv_cache_mode == "state" else paged.why_not_paged(model, self.device)
        if self.kv_cache_mode == "paged" and why:
            raise BackendUnavailableError(f"{self.artifact.key}: no paged attention: {why}")
        self._paging = self.kv_cache_mode != "state" and not why and not self._not_paged
        self._not_paged = self._not_paged or why
        if not self._paging:
            return model
        try:
            return paged.to_paged(model)
        except Exception as exc:  # noqa: BLE001 - OpenVINO's pass raises its own types
            return self._refuse_paging(exc, model)

    def _refuse_paging(self, exc: Exception, model=None):
        if self.kv_cache_mode == "paged":
            raise paged.paged_failure(self.artifact.key, exc) from None
        self._paging, self._not_paged = False, first_line(exc)
        return model

    def _load(self) -> None:
        super()._load()
        self._req = self._compiled.create_infer_request()  # the one request that holds the cache
        if not self._paging:
            return
        try:
            self._paged = paged.PagedCache(self._compiled, self.max_context)
            self._paged.bind(self._req)
            self._paged.probe(self._req, self.vocab_size)
        except Exception as exc:  # noqa: BLE001
            self._paged = None
            self._refuse_paging(exc)
            super()._close()
            self._load()  # the stateful IR, as exported (_adapt no longer pages)

    def _config(self) -> dict:
        cfg = super()._config()
        if self.precision == "fp32" and self.device == "cpu":
            # the CPU plugin would otherwise keep the cache in u8/bf16 (stateful and paged have a key each)
            cfg |= {"KV_CACHE_PRECISION": "f32", "KEY_CACHE_PRECISION": "f32", "VALUE_CACHE_PRECISION": "f32"}
        return cfg

    def _reset(self) -> None:
        if self._paged is None:
            self._req.reset_state()
        # paged: the next step says past_lens 0, so the blocks are written afresh

    def _step(self, feeds: dict) -> np.ndarray:
        import openvino as ov

        try:
            if self._paged is not None:  # tokens as rows ([tokens]), past_lens and the block table
                self._paged.set_step(self._req, feeds, self.position)
            else:
                for name in _LM_INPUTS:
                    self._req.set_tensor(name, ov.Tensor(feeds[name], shared_memory=True))
            self._req.infer()
            return self._req.get_output_tensor(self._out_index["logits"]).data.copy()
        except RuntimeError as exc:
            raise _fail(self, exc, feeds) from None

    def describe(self) -> dict:
        d = super().describe()
        if getattr(self, "_compiled", None) is not None:
            state = (
                f"state ({self._not_paged})" if self._not_paged and self.kv_cache_mode == "auto" else "state"
            )
            d["kv_cache"] = self._paged.describe() if self._paged is not None else state
            d["kv_cache_bytes_per_token"] = self._kv_bytes_per_token()
        return d

    def _kv_bytes_per_token(self) -> float:
        """What the cache holds per position, in the element type the plugin keeps it in (the manifest's
        figure is float32): what one decode step reads per position of context."""
        if self._paged is not None:
            return self._paged.bytes_per_position
        f32 = float(self.generation["cache"]["bytes_per_token"])
        try:
            kind = self._compiled.get_property("KV_CACHE_PRECISION").get_type_name()
        except Exception:  # noqa: BLE001 - a plugin without the property keeps what the graph says
            return f32
        return f32 * {"u8": 1, "i8": 1, "u4": 0.5, "i4": 0.5, "f16": 2, "bf16": 2}.get(kind, 4) / 4

    def _close(self) -> None:
        self._req = None
        self._paged = None
        super()._close()


class ExecuTorchDecoder(DecoderMixin, ExecuTorchRunner):
    """ExecuTorch: the static cache lives in the program's mutable buffers; positions say where to write."""

    def __init__(self, bundle, **kw) -> None:
        super().__init__(bundle, **kw)
        self._init_lm()

    def _reset(self) -> None:  # the step at position 0 overwrites the cache; later slots are masked
        pass

    def _step(self, feeds: dict) -> np.ndarray:
        with self._pool.handle(wait=True) as inst:  # the cache lives in this one program
            try:
                outs = inst[1].execute(self._tensors(feeds))
            except Exception as exc:  # noqa: BLE001 - the runtime raises RuntimeError/ValueError
                raise _fail(self, exc, feeds) from None
        return np.array(outs[0].numpy(), copy=True)
