"""Train the seed network fast: in-memory tensors, big batches, one-cycle Adam.

The network is unchanged.  The loss is cross-entropy on the pre-softmax
logits (equal to the NLL of the softmax output, and numerically sound).
Evaluation runs with dropout off.  Defaults were chosen on the validation
split; the test split is only reported.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import checkpoint as ckpt
from .. import fsutil
from ..config import TrainConfig
from ..errors import ConfigError
from ..sources.mnist import MnistData, load_mnist
from ..sources.models import build_model, count_parameters, get_spec, kind_of
from .models import forward_logits


def _to_tensor(images: np.ndarray, data: MnistData) -> torch.Tensor:
    return torch.from_numpy(data.preprocessing.apply(images))


def shifted_epoch(
    padded: np.ndarray, labels: torch.Tensor, perm: torch.Tensor, k: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of data in ``perm`` order, each image translated by its own offset in [-k, k].

    ``padded`` holds the uint8 images ``[N, H+2k, W+2k]`` padded once with black.  The
    epoch is assembled with one strided copy per offset ((2k+1)^2 in all), so
    batches are plain slices: far cheaper than gathering every batch.
    """
    n = len(perm)
    h, w = padded.shape[1] - 2 * k, padded.shape[2] - 2 * k
    out = np.empty((n, 1, h, w), dtype=padded.dtype)
    order = perm.numpy()
    side = 2 * k + 1
    offsets = torch.randint(0, side * side, (n,), generator=gen).numpy()
    for o in range(side * side):
        pos = np.flatnonzero(offsets == o)
        dy, dx = divmod(o, side)
        out[pos, 0] = padded[order[pos], dy : dy + h, dx : dx + w]
    return torch.from_numpy(out), labels[perm]


class fast_dropout:
    """Context manager: ``nn.Dropout`` modules draw their masks from numpy's PCG64.

    torch's CPU ``bernoulli_`` costs about 3 ms per 360k-element mask on this
    class of machine, a third of a training step; random bytes from numpy cost
    a tenth of that.  Same semantics (drop with probability p, scale kept
    units by 1/(1-p)), p quantized to 1/65536.  The modules are restored on exit,
    so exported models are plain ``nn.Dropout``.
    """

    def __init__(self, model: nn.Module, seed: int):
        self.modules = [m for m in model.modules() if isinstance(m, nn.Dropout) and 0 < m.p < 1]
        self.rng = np.random.default_rng(seed)

    def _forward(self, module: nn.Dropout):
        threshold = int(round(module.p * 65536))
        scale = 65536.0 / (65536 - threshold)

        def forward(x: torch.Tensor) -> torch.Tensor:
            if not module.training:
                return x
            bits = np.frombuffer(self.rng.bytes(2 * x.numel()), np.uint16).reshape(x.shape)
            mask = (bits >= threshold).astype(np.float32)
            mask *= np.float32(scale)
            return x * torch.from_numpy(mask)

        return forward

    def __enter__(self):
        for m in self.modules:
            m.forward = self._forward(m)
        return self

    def __exit__(self, *exc):
        for m in self.modules:
            del m.forward
        return False


@torch.inference_mode()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` with dropout off."""
    was = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = forward_logits(model, x[i : i + batch_size])
        loss_sum += nn.functional.cross_entropy(logits, y[i : i + batch_size], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + batch_size]).sum().item()
    model.train(was)
    return loss_sum / len(x), correct / len(x)


def resolve(config: TrainConfig) -> TrainConfig:
    """``config`` with its unset epochs, batch size and lr taken from the model's registry entry."""
    spec = get_spec(config.model)
    if not spec.train or spec.train.get("recipe"):
        raise ConfigError(
            f"model {config.model!r} is not trained on MNIST here; edgeport train --model {config.model} "
            "runs its own recipe, or export it with --weights"
        )
    return config.with_defaults(spec.train)


def fit(config: TrainConfig, data: MnistData, *, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train ``config.model`` on ``data``; returns the model (eval mode) and the train.json dict."""
    config.validate()
    if kind_of(config.model) != "registry":
        raise ConfigError(
            f"edgeport train trains registry models ({', '.join(_registry())}); export your own trained model "
            "with edgeport export --model ... --weights ..."
        )
    config = resolve(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = build_model(config.model, trust_code=False)  # training takes registry models only
    y_tr = torch.from_numpy(data.train_labels)
    x_va, y_va = _to_tensor(data.val_images, data), torch.from_numpy(data.val_labels)
    # Shifting happens on uint8 pixels (a quarter of the memory traffic); each
    # batch is then normalized exactly as Preprocessing.apply does.
    padded = np.pad(data.train_images, ((0, 0), (config.shift,) * 2, (config.shift,) * 2))
    norm = data.preprocessing.step("normalize")
    mean, std = float(norm["mean"][0]), float(norm["std"][0])
    scale = (data.preprocessing.factor / std, mean / std)
    steps = (len(y_tr) + config.batch_size - 1) // config.batch_size
    opt, sched = _optimizer(model, config, steps)
    history, bar, t0 = [], _progress(config.epochs, progress), time.perf_counter()
    dropout = fast_dropout(model, config.seed)
    for epoch in range(1, config.epochs + 1):
        x_ep, y_ep = shifted_epoch(padded, y_tr, torch.randperm(len(y_tr), generator=gen), config.shift, gen)
        with dropout:
            train_loss = _epoch(model, opt, sched, x_ep, y_ep, config.batch_size, scale)
        val_loss, val_acc = evaluate(model, x_va, y_va)
        history.append({"epoch": epoch, "train_loss": round(train_loss, 6), "val_loss": round(val_loss, 6),
                        "val_accuracy": round(val_acc, 6), "seconds": round(time.perf_counter() - t0, 3)})  # fmt: skip
        if bar is not None:
            bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc * 100:.2f}%")
            bar.update(1)
    train_seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    model.eval()
    return model, _train_info(model, config, data, history, train_seconds)


def _optimizer(model: nn.Module, config: TrainConfig, steps: int):
    """Adam (fused where torch has it: one kernel per step) with a one-cycle schedule to ``config.lr``."""
    try:
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.epochs * steps, pct_start=0.25
    )
    return opt, sched


def _epoch(model: nn.Module, opt, sched, x_ep, y_ep, batch_size: int, scale: tuple[float, float]) -> float:
    """One pass over the shuffled, shifted uint8 epoch; the mean training loss."""
    gain, bias = scale
    model.train()
    loss_sum = torch.zeros(())
    for i in range(0, len(y_ep), batch_size):
        xb = x_ep[i : i + batch_size].float().mul_(gain).sub_(bias)
        yb = y_ep[i : i + batch_size]
        loss = nn.functional.cross_entropy(forward_logits(model, xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.detach() * len(yb)
    return loss_sum.item() / len(y_ep)


def _train_info(
    model: nn.Module, config: TrainConfig, data: MnistData, history: list, train_seconds: float
) -> dict:
    """The train.json dict: config, timing, accuracy on val and test, the preprocessing and labels."""
    test_loss, test_acc = evaluate(
        model, _to_tensor(data.test_images, data), torch.from_numpy(data.test_labels)
    )
    return {
        "model": config.model,
        "params": count_parameters(model),
        "epochs": config.epochs,
        "seed": config.seed,
        "config": asdict(config),
        "train_seconds": round(train_seconds, 3),
        "seconds_per_epoch": round(train_seconds / config.epochs, 4),
        "val_accuracy": round(history[-1]["val_accuracy"], 6),
        "test_accuracy": round(test_acc, 6),
        "test_loss": round(test_loss, 6),
        "history": history,
        "preprocessing": data.preprocessing.to_manifest(),
        "labels": list(data.labels),
        "input_shape": [1, 1, 28, 28],
        "split": {
            "train": len(data.train_labels),
            "val": len(data.val_labels),
            "test": len(data.test_labels),
        },
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        },
    }


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", unit="epoch", leave=True)


def save_run(run_dir: str | os.PathLike, model: nn.Module, info: dict, *, force: bool = False) -> Path:
    """Write ``model.safetensors`` + ``train.json`` atomically; refuse to overwrite without force."""
    run_dir = Path(run_dir)
    fsutil.prepare_target(run_dir, force, "run")
    with fsutil.staging_dir(run_dir, "run") as tmp:
        ckpt.write_run_files(tmp, model.state_dict(), info)
    return run_dir


def _registry() -> list[str]:
    from ..sources.models import available_models

    return available_models()


def train(
    config: TrainConfig | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    force: bool = False,
    progress: bool = True,
    data: MnistData | None = None,
) -> tuple[nn.Module, dict]:
    """Public API: load MNIST, fit, and (if ``out``) save the run folder."""
    config = config or TrainConfig()
    config.validate()
    if out is not None:
        fsutil.prepare_target(Path(out), force, "run")
    data = data or load_mnist(data_dir)
    model, info = fit(config, data, progress=progress)
    if out is not None:
        save_run(out, model, info, force=force)
    return model, info
