"""``edgeport.export``: the Python API, model object first.

``model`` is an ``nn.Module`` or ``torch.export.ExportedProgram`` in memory, or a reference string (a
registry name, ``pkg.mod:factory``, ``torchvision:NAME``, a ``.pt2`` file, a run folder).  ``data``,
``calibration_data`` and ``eval_data`` are each a :class:`~edgeport.sources.base.DataSource`, an
iterable of samples (a list of feeds, a :class:`~edgeport.sources.feeds.Dataset`), or a spec string
(``imagefolder:DIR``, ``npz:FILE``, ...).  Everything else the CLI can say is in ``config``
(:class:`~edgeport.config.ExportConfig`) and ``calibration`` (:class:`~edgeport.config.CalibrationConfig`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..checkpoint import TRAIN_FILE
from ..config import CalibrationConfig, ExportConfig
from ..errors import ConfigError


def export(
    model=None,
    out=None,
    *,
    inputs=None,
    input_shape=None,
    data=None,
    calibration_data=None,
    eval_data=None,
    config: ExportConfig | None = None,
    calibration: CalibrationConfig | None = None,
    labels: list[str] | None = None,
    preprocessing=None,
    force: bool = False,
    progress: bool = True,
    trust_model_code: bool = False,
    **options,
):
    """Export ``model`` to a verified bundle at ``out`` (every format, parity, golden I/O, int8 when
    ``config.int8``); returns the loaded :class:`~edgeport.bundle.Bundle`.

    ``inputs``: ``["name:batch,3,224,224[:dtype]", ...]`` (named dims bounded by ``config.dims``) or
    ``input_shape`` ``(1, 3, 224, 224)``: needed for an ``nn.Module``.  ``options``: the rest of
    :func:`edgeport.export.api.export` (``weights``, ``model_args``, ``outputs``, ``tokenizer``...).
    """
    from . import api

    if out is None:
        raise ConfigError("out is required: the folder to write the bundle to")
    config = config or api.DEFAULT_EXPORT
    kw = dict(options, config=config, calibration=calibration, data=data, calibration_data=calibration_data,
              eval_data=eval_data, labels=labels, preprocessing=preprocessing, inputs=inputs,
              input_shape=input_shape, force=force, progress=progress, trust_model_code=trust_model_code)  # fmt: skip
    if model is None:  # the keyword form: model_ref=..., run=... in options
        return api.export(kw.pop("run", None), out, **kw)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir() and (path / TRAIN_FILE).is_file():
            return api.export(path, out, **kw)
        return api.export(None, out, model_ref=str(model), **kw)
    return api.export(None, out, source=_in_memory(model, inputs, input_shape, config), **kw)


def _in_memory(model, inputs, input_shape, config: ExportConfig):
    """An nn.Module traced at a batch of 2 (and every named dim at its example), or an ExportedProgram."""
    import torch

    from ..sources.models import ModelSource, from_memory
    from ..specs import BATCH
    from .signature import declared_inputs, example_inputs, resolve_dims

    if isinstance(model, torch.export.ExportedProgram):
        return from_memory(model)
    if not isinstance(model, torch.nn.Module):
        return from_memory(model)  # says what it takes
    if not inputs and input_shape is None:
        raise ConfigError(
            "exporting an nn.Module needs its inputs: pass input_shape=(1, 3, 224, 224) for one float32 "
            'input, or inputs=["ids:batch,seq:int64", ...] with config=ExportConfig(dims=("seq=1..512",))'
        )
    placeholder = ModelSource(model, "python")
    decls, inline = declared_inputs(placeholder, inputs, input_shape)
    dims = resolve_dims(decls, inline, config.dims, config.max_batch)
    values = {n: (2 if n == BATCH else d.example) for n, d in dims.items()}
    dynamic = tuple({i: s for i, s in enumerate(shape) if isinstance(s, str)} for _, shape, _, _ in decls)
    return from_memory(model, example_inputs(decls, values), dynamic=dynamic)


__all__ = ["export"]
