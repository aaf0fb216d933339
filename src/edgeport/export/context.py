"""What every format exporter is given: one :class:`ExportContext` per export."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..bundle import Bundle, Manifest
from ..bundle.writer import make_artifact
from ..config import CalibrationConfig, ExportConfig
from ..errors import first_line
from ..specs import Signature


@dataclass
class ExportContext:
    staging: Path
    model: torch.nn.Module  # eval mode, the reference
    signature: Signature
    example: tuple[torch.Tensor, ...]  # batch 2, in input order
    config: ExportConfig
    calibration: CalibrationConfig | None = None
    labels: list[str] = field(default_factory=list)
    preprocessing: dict | None = None  # manifest form
    progress: bool = True
    metadata: dict[str, str] = field(default_factory=dict)  # ONNX metadata_props
    test_io: tuple[dict, dict] | None = None  # (inputs, reference outputs) for ONNX's test_data_set_0
    model_ref: str = ""
    model_args: dict = field(default_factory=dict)
    random_init: bool = False
    artifacts: list = field(default_factory=list)  # written so far
    scratch: dict = field(default_factory=dict)
    task: object = None  # the task object (edgeport.tasks): roles, metrics, gates
    gates: dict = field(default_factory=dict)  # gate overrides ([precision.]metric -> threshold)
    label_map: object = None  # data class index -> label index, when the data names classes differently  # per-format state between quantize and the layer report

    timings: dict = field(default_factory=dict)  # stage -> seconds (recorded in the manifest)
    _open: list = field(default_factory=list, repr=False)  # seconds spent in nested stages, per open stage

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time a stage of the export into ``timings`` (seconds, summed when a stage repeats).  Stages nest;
        each one's seconds exclude the stages inside it (hashing inside a format's export), so the
        timings add up to the export's time instead of counting anything twice."""
        t0 = time.perf_counter()
        self._open.append(0.0)
        try:
            yield
        finally:
            inner = self._open.pop()
            took = time.perf_counter() - t0
            if self._open:
                self._open[-1] += took
            self.timings[name] = round(self.timings.get(name, 0.0) + took - inner, 3)

    def say(self, msg: str) -> None:
        if self.progress:
            print(f"export: {msg}", file=sys.stderr, flush=True)

    def record_failure(
        self, failures: list, fmt: str, precision: str, stage: str, exc: BaseException, explicit: bool
    ) -> None:
        """Record a format that failed (or re-raise when the user asked for it by name)."""
        if explicit:
            raise exc
        reason = first_line(exc, 400)
        failures.append({"format": fmt, "precision": precision, "stage": stage, "reason": reason})
        self.say(f"{fmt}/{precision} FAILED at {stage}: {reason}; the bundle is written without it")

    def path(self, rel: str) -> Path:
        p = self.staging / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def artifact(self, fmt: str, precision: str, file: str, extra=(), details=None):
        with self.stage("hashing"):
            return make_artifact(self.staging, fmt, precision, file, extra, details)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Tensor name -> {axis: dim name} for every input and output (ONNX's dynamic_axes)."""
        sig = self.signature
        return {
            s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)}
            for s in sig.inputs + sig.outputs
        }

    def torch_dims(self, batch_max: int | None = None):
        """``dynamic_shapes`` for torch.export: one ``Dim`` per named input dim (shared by name, bounded);
        None when nothing varies.  ``batch_max`` caps the batch (a .pte plans memory for it)."""
        from ..specs import BATCH

        made = {}
        for name, d in self.signature.input_dims.items():
            hi = min(d.max, batch_max) if (name == BATCH and batch_max) else d.max
            if hi >= 2 and hi > d.min:
                made[name] = torch.export.Dim(name, min=d.min, max=hi)
        if not made:
            return None
        return tuple(
            {i: made[d] for i, d in enumerate(s.shape) if isinstance(d, str) and d in made}
            for s in self.signature.inputs
        )

    def fp32(self, fmt: str):
        return next((a for a in self.artifacts if a.format == fmt and a.precision == "fp32"), None)

    def staged_bundle(self, extra_artifacts=()) -> Bundle:
        """The staging folder as a (trusted) Bundle, so the runtime's runners can run what is there."""
        manifest = Manifest(
            schema_version=2,
            model=self.model_ref,
            signature=self.signature,
            preprocessing=self.preprocessing,
            labels=tuple(self.labels),
            artifacts=tuple(self.artifacts) + tuple(extra_artifacts),
            provenance={},
            environment={},
            parity={},
            model_args=self.model_args,
            random_init=self.random_init,
            task={"name": self.task.name, "params": dict(self.task.params)}
            if self.task is not None
            else None,
        )
        return Bundle(self.staging, manifest, trusted=True)
