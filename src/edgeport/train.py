"""Train the seed network fast: in-memory tensors, big batches, one-cycle Adam.

The network is unchanged.  The loss is cross-entropy on the pre-softmax
logits (equal to the NLL of the softmax output, and numerically sound).
Evaluation runs with dropout off.  Defaults were chosen on the validation
split; the test split is only reported.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import MnistData, load_mnist
from .models import build_model, count_parameters, forward_logits


def _to_tensor(images: np.ndarray, data: MnistData) -> torch.Tensor:
    return torch.from_numpy(data.preprocessing.apply(images))


def random_shift(x: torch.Tensor, k: int, fill: float, gen: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` [N,1,28,28] by its own random offset in [-k, k]."""
    if k == 0:
        return x
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (k, k, k, k), value=fill).reshape(n, -1)
    dy = torch.randint(0, 2 * k + 1, (n, 1, 1), generator=gen)
    dx = torch.randint(0, 2 * k + 1, (n, 1, 1), generator=gen)
    rows = dy + torch.arange(h).view(1, h, 1)
    cols = dx + torch.arange(w).view(1, 1, w)
    idx = (rows * (w + 2 * k) + cols).reshape(n, -1)
    return torch.gather(padded, 1, idx).reshape(n, 1, h, w)


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


def fit(config: TrainConfig, data: MnistData, *, progress: bool = True) -> tuple[nn.Module, dict]:
    """Train ``config.model`` on ``data``; returns the model (eval mode) and the train.json dict."""
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = build_model(config.model)
    x_tr, y_tr = _to_tensor(data.train_images, data), torch.from_numpy(data.train_labels)
    x_va, y_va = _to_tensor(data.val_images, data), torch.from_numpy(data.val_labels)
    x_te, y_te = _to_tensor(data.test_images, data), torch.from_numpy(data.test_labels)
    fill = float((0.0 - data.preprocessing.mean) / data.preprocessing.std)  # a black pixel
    n = len(x_tr)
    steps = (n + config.batch_size - 1) // config.batch_size
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.epochs * steps, pct_start=0.25
    )
    history = []
    bar = _progress(config.epochs, progress)
    t0 = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        loss_sum = torch.zeros(())
        for i in range(steps):
            idx = perm[i * config.batch_size : (i + 1) * config.batch_size]
            xb = random_shift(x_tr[idx], config.shift, fill, gen)
            loss = nn.functional.cross_entropy(forward_logits(model, xb), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
        val_loss, val_acc = evaluate(model, x_va, y_va)
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(loss_sum.item() / n, 6),
                "val_loss": round(val_loss, 6),
                "val_accuracy": round(val_acc, 6),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        if bar is not None:
            bar.set_postfix(loss=f"{loss_sum.item() / n:.4f}", val_acc=f"{val_acc * 100:.2f}%")
            bar.update(1)
    train_seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    model.eval()
    test_loss, test_acc = evaluate(model, x_te, y_te)
    info = {
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
        "preprocessing": data.preprocessing.to_dict(),
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
    return model, info


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="train", unit="epoch", leave=True)


def save_run(run_dir: str | os.PathLike, model: nn.Module, info: dict, *, force: bool = False) -> Path:
    """Write ``model.safetensors`` + ``train.json`` atomically; refuse to overwrite without force."""
    run_dir = Path(run_dir)
    ckpt.prepare_target(run_dir, force, what="run folder")
    tmp = ckpt.make_staging(run_dir)
    try:
        weights = tmp / ckpt.WEIGHTS_FILE
        ckpt.save_weights(
            weights, model.state_dict(), {"model": info["model"], "format": "edgeport-checkpoint/1"}
        )
        info = dict(info, checkpoint_sha256=ckpt.sha256_file(weights))
        (tmp / ckpt.TRAIN_FILE).write_text(json.dumps(info, indent=2) + "\n")
        ckpt.atomic_commit(tmp, run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run_dir


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
        ckpt.prepare_target(Path(out), force, what="run folder")
    data = data or load_mnist(data_dir)
    model, info = fit(config, data, progress=progress)
    if out is not None:
        save_run(out, model, info, force=force)
    return model, info
