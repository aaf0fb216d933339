"""Where a model comes from: the registry, ``pkg.mod:factory``, ``torchvision:NAME``,
``timm:NAME``, a saved ExportedProgram (``.pt2``), or a run folder from ``edgeport train``.

:func:`resolve` returns a :class:`ModelSource`: the module in eval mode, the
reference that rebuilds it (recorded in the manifest), its factory arguments,
whether its weights are random, and what is known about its inputs.

Weights are required.  ``random_init=True`` is for speed work only: the
bundle then says "random weights: not for accuracy" everywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import trust
from ..errors import BundleError, ConfigError, first_line

PREFIXES = ("torchvision:", "timm:")
TRUST_ENV = trust.TRUST_ENV


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: a factory plus what its inputs, outputs and task look like.

    A one-input image or vector model gives ``input_shape``; any other gives ``inputs`` as
    ``--input`` strings (``ids:batch,seq:int64``) with ``dims`` (``seq=4..512``), and may name its
    ``outputs`` (``--output`` strings), ``task`` and ``task_params``.  ``train`` holds its training
    defaults (epochs, batch size, learning rate) for the models edgeport can train.
    """

    name: str
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...] = ()  # one sample, without the batch dimension
    num_classes: int = 0
    output_kind: str = "probs"
    preset: str | None = None  # preprocessing preset
    description: str = ""
    task: str | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    dims: tuple[str, ...] = ()
    task_params: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


RANDOM_INIT_SEED = 0  # --random-init draws its weights from torch's generator seeded with this


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ConfigError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


ENTRY_POINT_GROUP = "edgeport.models"
_loaded_plugins = False


def _builtins() -> None:
    """Load the model plugins once: every ``edgeport.models`` entry point registers its models.

    edgeport's own (the seed's ``mnist-mlp``/``mnist-cnn`` and the task zoo) are entry points in its
    ``pyproject.toml`` like any third-party package's, so this generic registry imports none of them.
    A third-party plugin that fails to import is skipped with a warning; edgeport's own fail loudly.
    """
    global _loaded_plugins
    if _loaded_plugins:
        return
    from importlib.metadata import entry_points

    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if not any(ep.value.startswith("edgeport.") for ep in found):
        raise ConfigError(
            "edgeport's model registry found none of its own models (no 'edgeport.models' entry points); "
            "reinstall edgeport (pip install -e . or make venv)"
        )
    for ep in found:
        try:
            ep.load()
        except Exception as exc:
            if ep.value.startswith("edgeport."):
                raise
            import warnings

            warnings.warn(
                f"model plugin {ep.name} ({ep.value}) failed to load: {str(exc)[:200]}", stacklevel=2
            )
    _loaded_plugins = True  # only once edgeport's own loaded: a failure says so again on the next call


def available_models() -> list[str]:
    _builtins()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; choose one of {', '.join(available_models())}, "
            "or pass package.module:factory, torchvision:NAME, timm:NAME or a .pt2 file"
        ) from None


def kind_of(ref: str) -> str:
    """registry, torchvision, timm, factory or exported_program."""
    if ref.endswith(".pt2") or ref == "exported_program":
        return "exported_program"
    if ref.startswith("torchvision:"):
        return "torchvision"
    if ref.startswith("timm:"):
        return "timm"
    if ":" in ref:
        return "factory"
    return "registry"


def needs_trust(ref: str) -> bool:
    """Rebuilding ``ref`` runs code the user did not install as a library (a factory or a pickle)."""
    return trust.runs_code(ref)


def load_factory(ref: str) -> Callable[..., nn.Module]:
    """Resolve ``package.module:factory`` to a callable returning an ``nn.Module``."""
    mod_name, sep, attr = ref.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"--model {ref!r} is neither a registered model nor package.module:factory")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {mod_name!r} for --model {ref!r}: {exc}; is it on PYTHONPATH?"
        ) from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{mod_name!r} has no attribute {attr!r} (from --model {ref!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"--model {ref!r} is not callable")
    return obj


def _library_factory(ref: str) -> Callable[..., nn.Module]:
    lib, _, name = ref.partition(":")
    if not name:
        raise ConfigError(f"--model {ref}: give a model name after '{lib}:', e.g. {lib}:resnet18")
    if lib == "torchvision":
        import torchvision

        if name not in torchvision.models.list_models():
            raise ConfigError(f"torchvision has no model {name!r}; see torchvision.models.list_models()")
        return lambda **kw: torchvision.models.get_model(name, weights=None, **kw)
    try:
        import timm
    except ImportError:
        raise ConfigError("timm models need the timm package: pip install timm") from None
    if not timm.is_model(name):
        raise ConfigError(f"timm has no model {name!r}; see timm.list_models()")
    return lambda **kw: timm.create_model(name, pretrained=False, **kw)


def build_model(
    ref: str, args: dict | None = None, *, trust_code: bool | None = None, origin: str | None = None
) -> nn.Module:
    """A fresh (randomly initialised) model from a reference.

    ``origin`` None: the reference and ``args`` come from the command line (``--model``,
    ``--model-arg``).  Otherwise they were read from a file (``origin`` names it: a bundle's
    manifest, a run folder's train.json): its arguments may not name files, and a failing
    factory is that file's fault.  ``trust_code`` says whether code may run (:mod:`edgeport.trust`);
    by default a reference the caller names runs (like ``--model``) and one read from a file does not.
    """
    if trust_code is None:
        trust_code = origin is None
    where = origin or "--model"
    args = trust.check_model_args(args or {}, where=where, from_file=origin is not None)
    kind = kind_of(ref)
    trust.require(ref, trusted=trust_code, where=where)
    if kind == "exported_program":
        raise ConfigError(
            "an ExportedProgram (.pt2) carries its own weights: load it with load_exported_program"
        )
    if kind == "registry":
        factory = get_spec(ref).factory
    elif kind == "factory":
        factory = load_factory(ref)
    else:
        factory = _library_factory(ref)
    try:
        model = factory(**args)
    except Exception as exc:  # noqa: BLE001 - a factory raises anything on arguments it cannot take
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        shown = ", ".join(f"{k}={v!r}" for k, v in args.items())[:160] or "no arguments"
        if origin is not None:
            raise BundleError(
                f"{origin}: the model {ref[:80]!r} cannot be built with its recorded arguments ({shown}): "
                f"{type(exc).__name__}: {first}; re-export or retrain it"
            ) from None
        raise ConfigError(
            f"--model {ref[:80]} cannot be built with {shown} ({type(exc).__name__}: {first}); "
            "fix --model-arg"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{ref!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary_text(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> str:
    """The torchsummary table for one input of ``input_shape``, as text."""
    from torchsummary import summary

    buf = io.StringIO()
    was_training = model.training
    with contextlib.redirect_stdout(buf):
        summary(model, input_shape, device="cpu")
    model.train(was_training)
    return buf.getvalue()


# --------------------------------------------------------------------------- weights


def load_state_dict(weights: Path) -> dict:
    """A state_dict from safetensors or a plain ``torch.save``d dict (loaded weights-only: no code runs)."""
    from .. import checkpoint as ckpt

    if not weights.is_file():
        raise ConfigError(f"--weights {weights} not found; pass a .safetensors or state_dict .pt file")
    if weights.suffix == ".safetensors":
        return ckpt.load_weights(weights)[0]
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(
            f"--weights {weights} cannot be loaded safely ({str(exc).splitlines()[0][:160]}); "
            "pass a safetensors file or a plain state_dict saved with torch.save"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(f"--weights {weights} does not hold a state_dict of tensors")
    return state


def load_into(module: nn.Module, state: dict, *, what: str, model: str, error=BundleError) -> nn.Module:
    """``module`` with ``state`` loaded strictly; a mismatch is one ``error`` line naming ``what``."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise error(f"{what} does not fit model {model!r}: {first_line(exc)}") from None
    return module


def load_exported_program(data, *, trust_code: bool, name: str):
    """``torch.export.load`` of ``data`` (a path or bytes) named ``name`` in messages.

    It unpickles, so it needs the opt-in wherever the ``.pt2`` comes from (:mod:`edgeport.trust`).
    A damaged archive is one :class:`ConfigError` line; torch's own logged traceback is kept quiet.
    """
    import logging

    trust.require("exported_program", trusted=trust_code, where=name)
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data)
    log = logging.getLogger("torch.export")
    level = log.level
    log.setLevel(logging.CRITICAL)  # torch logs a traceback at WARNING before it raises its own error
    try:
        return torch.export.load(src)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on a bad archive
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(
            f"cannot load the ExportedProgram {name}: {first}; it is damaged or not from torch.export.save"
        ) from None
    finally:
        log.setLevel(level)


class ExportedModule(nn.Module):
    """An ExportedProgram's module as a plain ``nn.Module``.

    ``ep.module()`` refuses ``.eval()``/``.train()`` (its mode was fixed when it
    was exported), which every exporter calls; this wrapper makes them no-ops.
    """

    def __init__(self, gm) -> None:
        super().__init__()
        for p in gm.parameters():
            p.requires_grad_(False)  # inference only; tracers take its weights as constants
        object.__setattr__(self, "gm", gm)  # not a submodule: train()/eval() must not reach it

    def forward(self, *args):
        return self.gm(*args)

    def train(self, mode: bool = True):
        return self

    def to(self, *args, **kwargs):
        self.gm.to(*args, **kwargs)
        return self


# --------------------------------------------------------------------------- resolving


@dataclass
class ModelSource:
    module: nn.Module
    ref: str  # what the manifest records (registry name, pkg.mod:factory, torchvision:NAME, ...)
    args: dict = field(default_factory=dict)
    random_init: bool = False
    provenance: dict = field(default_factory=dict)
    checkpoint: Path | None = None  # a safetensors file to copy as the bundle's checkpoint
    exported_program: Path | None = None  # a .pt2 source
    exported_program_data: bytes | None = None  # its bytes as loaded (the bundle's reference artifact)
    example_shapes: list | None = None  # [(shape, dtype)] per input, when the source knows them
    max_batch: int | None = None  # a bound the source itself sets (a .pt2 saved with a fixed batch of 1)
    spec: ModelSpec | None = None  # registry models
    preprocessing: dict | None = None  # from a run folder
    labels: list | None = None
    train_info: dict | None = None


def parse_model_args(items) -> dict:
    """``["num_classes=10", "pretrained=false"]`` -> ``{"num_classes": 10, "pretrained": False}``."""
    import json

    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"--model-arg {item!r}: expected NAME=VALUE, e.g. num_classes=10")
        try:
            out[key] = json.loads(value)
        except ValueError:
            low = value.lower()
            out[key] = {"true": True, "false": False, "none": None}.get(low, value)
        if not isinstance(out[key], (int, float, str, bool, type(None), list)):
            raise ConfigError(f"--model-arg {item!r}: value must be a number, string, bool or list")
    return out


def resolve(
    *,
    run=None,
    model_ref: str | None = None,
    weights=None,
    random_init: bool = False,
    model_args: dict | None = None,
    trust_code: bool = False,
) -> ModelSource:
    """The model to export, from a run folder or a reference plus weights.

    ``trust_code``: the user's opt-in (:mod:`edgeport.trust`).  A ``pkg.mod:factory`` typed as
    ``model_ref`` runs without it (the user named that code); a ``.pt2`` and a run folder that names
    code need it.
    """
    if run is not None and (model_ref or weights or random_init):
        raise ConfigError("pass either --run or --model (with --weights or --random-init), not both")
    if run is not None:
        return _from_run(Path(run), trust_code)
    if not model_ref:
        raise ConfigError("nothing to export: pass --run RUN, or --model MODEL with --weights FILE")
    args = dict(model_args or {})
    if kind_of(model_ref) == "exported_program":
        if weights or random_init or args:
            raise ConfigError(
                "a .pt2 ExportedProgram carries its weights: drop --weights/--random-init/--model-arg"
            )
        return _from_pt2(Path(model_ref), trust_code)
    if weights is None and not random_init:
        raise ConfigError(
            f"--model {model_ref} needs --weights FILE (.safetensors or a state_dict .pt); "
            "--random-init exports random weights, for speed work only"
        )
    if weights is not None and random_init:
        raise ConfigError("pass --weights or --random-init, not both")
    if weights is not None and not Path(weights).is_file():
        raise ConfigError(f"--weights {weights} not found; pass a .safetensors or state_dict .pt file")
    if random_init:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)  # the same random weights on every run
            module = build_model(model_ref, args, trust_code=True)  # the user typed it
    else:
        module = build_model(model_ref, args, trust_code=True)
    spec = get_spec(model_ref) if kind_of(model_ref) == "registry" else None
    prov: dict = {"source": kind_of(model_ref), "model": model_ref}
    src = None
    if weights is not None:
        from .. import checkpoint as ckpt

        weights = Path(weights)
        load_into(
            module, load_state_dict(weights), what=f"--weights {weights}", model=model_ref, error=ConfigError
        )
        prov |= {"weights_file": weights.name, "weights_sha256": ckpt.sha256_file(weights)}
        src = weights if weights.suffix == ".safetensors" else None
    else:
        prov["weights"] = f"random (--random-init, torch seed {RANDOM_INIT_SEED})"
    return ModelSource(module.eval(), model_ref, args, random_init, prov, checkpoint=src, spec=spec)


def load_run(run_dir, *, trust_code: bool = False) -> tuple[nn.Module, dict]:
    """``(model in eval mode, train.json dict)`` from a run folder written by ``edgeport train``.

    A ``train.json`` that names model code runs it only with ``trust_code`` or the environment's
    opt-in (:mod:`edgeport.trust`).
    """
    src = _from_run(Path(run_dir), trust_code)
    return src.module, src.train_info


def _from_run(run: Path, trust_code: bool) -> ModelSource:
    from .. import checkpoint as ckpt

    info = ckpt.read_train_json(run)
    ref = info["model"]
    module = build_model(
        ref,
        info.get("model_args") or {},
        trust_code=trust_code or trust.code_is_trusted(),
        origin=f"run folder {run} (train.json)",
    )
    load_into(
        module, ckpt.load_weights(run / ckpt.WEIGHTS_FILE)[0], what=str(run / ckpt.WEIGHTS_FILE), model=ref
    )
    prov = {
        "source": "run",
        "run": run.name,
        "checkpoint_sha256": ckpt.sha256_file(run / ckpt.WEIGHTS_FILE),
        "train": {k: info[k] for k in ckpt.TRAIN_SUMMARY_KEYS if k in info},
    }
    return ModelSource(
        module.eval(),
        ref,
        dict(info.get("model_args") or {}),
        False,
        prov,
        checkpoint=run / ckpt.WEIGHTS_FILE,
        spec=get_spec(ref) if kind_of(ref) == "registry" else None,
        preprocessing=info.get("preprocessing"),
        labels=info.get("labels"),
        train_info=info,
    )


def _from_pt2(path: Path, trust_code: bool) -> ModelSource:
    if not path.is_file():
        raise ConfigError(
            f"ExportedProgram {path} not found; save one with torch.export.save(ep, '{path.name}')"
        )
    trusted = trust_code or trust.code_is_trusted()
    trust.require(str(path), trusted=trusted, where=f"--model {path}")  # before a byte is read
    data = path.read_bytes()  # read once: what is loaded is what the bundle keeps
    ep = load_exported_program(data, trust_code=trusted, name=str(path))
    prov = {"source": "exported_program", "file": path.name, "sha256": hashlib.sha256(data).hexdigest()}
    return _from_exported(ep, data, f"--model {path}", prov, path)


def from_memory(model, example=None, *, dynamic: tuple[dict, ...] = ()) -> ModelSource:
    """An in-memory ``nn.Module`` (traced with ``torch.export`` on ``example``) or ``ExportedProgram``.

    The bundle keeps it as an ExportedProgram (``checkpoint/model.pt2``): the reference every artifact
    is checked against, and what the torch backend runs.  ``example``: a tuple of input tensors with a
    batch of 2 or more; ``dynamic``: per input, ``{axis: name}`` of the axes that vary (batch first).
    """
    if isinstance(model, torch.export.ExportedProgram):
        ep = model
    elif isinstance(model, nn.Module):
        if not example:
            raise ConfigError("exporting an nn.Module needs its inputs: pass inputs=[...] or input_shape=...")
        shapes = tuple(
            {axis: torch.export.Dim.AUTO for axis in axes} if axes else None
            for axes in (dynamic or [{0: "batch"}] * len(example))
        )
        try:
            ep = torch.export.export(model.eval(), tuple(example), dynamic_shapes=shapes)
        except Exception as exc:  # noqa: BLE001 - torch.export raises many types on untraceable code
            raise ConfigError(
                f"torch.export cannot trace this module ({first_line(exc, 200)}); make its forward traceable, "
                "or export it by reference (pkg.mod:factory with weights)"
            ) from None
    else:
        raise ConfigError(
            f"model: expected an nn.Module, an ExportedProgram or a reference, got {type(model).__name__}"
        )
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    data = buf.getvalue()
    prov = {"source": "python", "class": type(model).__name__, "sha256": hashlib.sha256(data).hexdigest()}
    # an nn.Module stays the export's reference itself: its module names serve the layer report and
    # the int8 fallback (an ExportedProgram's graph has none); the bundle keeps the traced program
    eager = model.eval() if isinstance(model, nn.Module) else None
    return _from_exported(ep, data, f"model {type(model).__name__}", prov, None, eager)


def _from_exported(ep, data: bytes, where: str, prov: dict, path, module=None) -> ModelSource:
    module = module if module is not None else ExportedModule(ep.module())
    shapes = None
    try:
        args, kwargs = ep.example_inputs or ((), {})
        if not kwargs and all(isinstance(a, torch.Tensor) for a in args):
            shapes = [(tuple(int(s) for s in a.shape), str(a.dtype).removeprefix("torch.")) for a in args]
    except Exception:  # noqa: BLE001,S110 - older archives carry no example inputs
        pass
    fixed = _fixed_batch(ep)
    if fixed is not None and fixed != 1:
        raise ConfigError(
            f"{where}: the ExportedProgram was saved with a fixed batch of {fixed}, and edgeport exports "
            "a batch from 1 up; save it with a dynamic batch (torch.export.export(..., dynamic_shapes=...)) "
            "or with batch 1"
        )
    return ModelSource(
        module,
        "exported_program",
        {},
        False,
        prov,
        exported_program=path,
        exported_program_data=data,
        example_shapes=shapes,
        max_batch=fixed,
    )


def _fixed_batch(ep) -> int | None:
    """The batch size every user input of ``ep`` was traced with, when it is a constant (no dynamic
    batch dim); None when it is dynamic or unknown."""
    try:
        names = set(ep.graph_signature.user_inputs)
        sizes = {
            n.meta["val"].shape[0]
            for n in ep.graph.nodes
            if n.op == "placeholder" and n.name in names and len(n.meta["val"].shape)
        }
    except Exception:  # noqa: BLE001 - an archive without shape metadata: let the export find out
        return None
    if len(sizes) == 1 and all(isinstance(s, int) for s in sizes):
        return int(next(iter(sizes)))
    return None
