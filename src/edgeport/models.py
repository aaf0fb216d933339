"""Model registry.

``mnist-mlp`` is the seed network of Arm's learning path "Create and train a
PyTorch model for digit classification", unchanged.  Other models register with
:func:`register`, and users bring their own with a ``package.module:factory``
string.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .errors import ConfigError


class NeuralNetwork(nn.Module):
    """The seed network: 102,762 trainable parameters, softmax probabilities out."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_stack = nn.Sequential(
            nn.Linear(28 * 28, 96),
            nn.Tanh(),
            nn.Dropout(0.2),
            nn.Linear(96, 256),
            nn.Sigmoid(),
            nn.Dropout(0.2),
            nn.Linear(256, 10),
            nn.Softmax(dim=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_stack(self.flatten(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores; training uses these with cross-entropy."""
        return self.linear_stack[:-1](self.flatten(x))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    num_classes: int
    description: str = ""


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ConfigError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


register(
    ModelSpec(
        name="mnist-mlp",
        factory=NeuralNetwork,
        input_shape=(1, 28, 28),
        num_classes=10,
        description="Arm learning-path MNIST MLP (784-96-256-10, tanh/sigmoid, dropout 0.2)",
    )
)


def available_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; choose one of {', '.join(available_models())} "
            "or pass your own as package.module:factory"
        ) from None


def load_factory(ref: str) -> Callable[[], nn.Module]:
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


TRUST_ENV = "EDGEPORT_TRUST_MODEL_CODE"


def code_is_trusted(explicit: bool = False) -> bool:
    """Whether a ``module:factory`` named by a bundle may be imported (it runs code)."""
    return explicit or os.environ.get(TRUST_ENV) == "1"


def build_model(name_or_ref: str, *, trust_code: bool = True) -> nn.Module:
    """A fresh model from a registered name or a ``module:factory`` reference.

    Importing ``module:factory`` runs that module's code.  Callers that take the
    name from a file (a bundle's manifest) pass ``trust_code=code_is_trusted()``.
    """
    if ":" in name_or_ref and not trust_code:
        raise ConfigError(
            f"the bundle names its model as code to import ({name_or_ref[:120]!r}), and importing it runs that "
            f"code; if you trust this bundle, set {TRUST_ENV}=1 and run again"
        )
    factory = get_spec(name_or_ref).factory if ":" not in name_or_ref else load_factory(name_or_ref)
    model = factory()
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{name_or_ref!r} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def forward_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits if the model exposes them (the seed network does), else log of its output."""
    if hasattr(model, "logits"):
        return model.logits(x)
    return model(x)


def summary_text(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> str:
    """The torchsummary table for one input of ``input_shape``, as text."""
    from torchsummary import summary

    buf = io.StringIO()
    was_training = model.training
    with contextlib.redirect_stdout(buf):
        summary(model, input_shape, device="cpu")
    model.train(was_training)
    return buf.getvalue()
