"""Where an export's model comes from: a run folder, or a user factory plus weights;
and the inputs parity runs on."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..errors import BundleError, ConfigError
from ..preprocessing import MNIST_PREPROCESSING, Preprocessing

CHECKPOINT_FILE = "checkpoint/model.safetensors"
MNIST_SAMPLE = (1, 28, 28)
TRAIN_SUMMARY_KEYS = (
    "model",
    "params",
    "epochs",
    "seed",
    "config",
    "train_seconds",
    "val_accuracy",
    "test_accuracy",
    "test_loss",
    "split",
    "environment",
)


def _load_state_dict(weights: Path) -> dict:
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


def resolve_model(run, model_ref, weights, input_shape):
    """(model, model_ref, sample_shape, preprocessing, labels|None, provenance, checkpoint source)."""
    if run is not None and (model_ref or weights):
        raise ConfigError("pass either --run or --model/--weights, not both")
    if run is not None:
        run = Path(run)
        model, info = ckpt.load_run(run)
        src = run / ckpt.WEIGHTS_FILE
        shape = tuple(info.get("input_shape", [1, *MNIST_SAMPLE]))[1:]
        pre = (
            Preprocessing.from_dict(info["preprocessing"]) if "preprocessing" in info else MNIST_PREPROCESSING
        )
        prov = {
            "source": "run",
            "run": run.name,
            "checkpoint_sha256": ckpt.sha256_file(src),
            "train": {k: info[k] for k in TRAIN_SUMMARY_KEYS if k in info},
        }
        return model, info["model"], shape, pre, info.get("labels"), prov, src
    if not model_ref:
        raise ConfigError(
            "nothing to export: pass --run RUN, or --model package.module:factory --weights FILE"
        )
    from ..models import build_model, get_spec

    model = build_model(model_ref)
    if input_shape is None:
        if ":" in model_ref:
            raise ConfigError(
                "--input-shape is required with --model package.module:factory (e.g. 1,1,28,28)"
            )
        input_shape = (1, *get_spec(model_ref).input_shape)
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) < 2 or any(s < 1 for s in input_shape):
        raise ConfigError(f"--input-shape must be batch,dims... with positive sizes, got {input_shape}")
    src = None
    prov = {"source": "weights" if weights else "untrained"}
    if weights is not None:
        weights = Path(weights)
        state = _load_state_dict(weights)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ConfigError(
                f"--weights {weights} does not fit {model_ref}: {str(exc).splitlines()[0]}"
            ) from None
        prov |= {"weights_file": weights.name, "weights_sha256": ckpt.sha256_file(weights)}
        src = weights if weights.suffix == ".safetensors" else None
    return model.eval(), model_ref, input_shape[1:], MNIST_PREPROCESSING, None, prov, src


def write_checkpoint(staging: Path, model, model_ref: str, src: Path | None) -> str:
    dst = staging / CHECKPOINT_FILE
    dst.parent.mkdir(parents=True)
    if src is not None:
        shutil.copyfile(src, dst)
    else:
        ckpt.save_weights(dst, model.state_dict(), {"model": model_ref, "format": "edgeport-checkpoint/1"})
    return CHECKPOINT_FILE


def parity_inputs(model, shape, pre: Preprocessing, data, n_images: int):
    if shape == MNIST_SAMPLE and data is not None:
        real = pre.apply(data.test_images[:n_images]).reshape(-1, *shape)
        note = {
            "real": f"{len(real)} MNIST test images",
            "edge": "zeros, ones, pixel min/max, 60 uniform noise",
        }
        value_range = pre.value_range()
    else:
        rng = np.random.default_rng(0)
        real = rng.standard_normal((256, *shape)).astype(np.float32)
        note = {
            "real": "none: input shape is not MNIST's, 256 standard-normal random inputs instead",
            "edge": "zeros, ones, -3/+3, 60 uniform noise",
        }
        value_range = (-3.0, 3.0) if not (shape == MNIST_SAMPLE) else pre.value_range()
    from .parity import edge_inputs

    x = np.ascontiguousarray(np.concatenate([real, edge_inputs(shape, value_range)]), np.float32)
    return x, len(real), note, value_range
