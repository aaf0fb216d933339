"""``edgeport train --model NAME`` for the task models: make the labelled set, train, write a run folder.

The run folder is what ``edgeport export --run RUN`` reads (``model.safetensors``, ``train.json``
with the model, its arguments, preprocessing, labels and validation metrics), plus ``data/``: the
train and validation sets in their on-disk layouts (``train.json["data"]`` gives their ``--data``
strings, relative to the run folder).  Everything is seeded: the same seed gives the same data,
the same weights and the same metrics on the same machine.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from .. import fsutil
from ..config import MAX_SEED
from ..errors import ConfigError
from ..sources.models import build_model, count_parameters, get_spec
from .recipes import RECIPES, task_metrics


@dataclass(frozen=True, kw_only=True)
class ZooTrainConfig:
    model: str
    epochs: int  # 1..1000
    batch_size: int  # 1..65536
    lr: float  # peak of the one-cycle schedule, (0, 10]
    samples: int  # training samples generated, 10..1,000,000 (validation: a quarter, at least 10)
    seed: int = 0
    threads: int | None = None
    weight_decay: float = 1e-4

    def validate(self) -> None:
        from ..config import _float_range, _int_range

        _int_range("--epochs", self.epochs, 1, 1000)
        _int_range("--batch-size", self.batch_size, 1, 65536)
        _float_range("--lr", self.lr, 0.0, 10.0, lo_open=True)
        _int_range("--samples", self.samples, 10, 1_000_000)
        _int_range("--seed", self.seed, 0, MAX_SEED)
        if self.threads is not None:
            _int_range("--threads", self.threads, 1, 256)


def trainable() -> list[str]:
    """Registry models with a training recipe (``edgeport train --model NAME`` makes their data)."""
    from ..sources.models import available_models

    return [n for n in available_models() if get_spec(n).train.get("recipe")]


def config_for(model: str, **given) -> ZooTrainConfig:
    """The model's training defaults from its registry entry, overridden by the non-None ``given``."""
    spec = get_spec(model)
    if not spec.train.get("recipe"):
        raise ConfigError(
            f"model {model!r} has no training recipe; edgeport trains {', '.join(trainable())} "
            "(and mnist-mlp, mnist-cnn on MNIST)"
        )
    base = {k: v for k, v in spec.train.items() if k in ("epochs", "batch_size", "lr", "samples")}
    return ZooTrainConfig(model=model, **(base | {k: v for k, v in given.items() if v is not None}))


def fit(config: ZooTrainConfig, folder: Path, *, progress: bool = True) -> tuple[torch.nn.Module, dict]:
    """Make the data under ``folder`` (the run's ``data/``), train, validate; (model, train.json dict)."""
    config.validate()
    spec = get_spec(config.model)
    recipe = RECIPES[spec.train["recipe"]]()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    train, val = recipe.make(folder, config.samples, max(10, config.samples // 4), config.seed)
    data_seconds = time.perf_counter() - t0
    model = build_model(config.model)
    history, train_seconds = _loop(model, recipe, train, config, gen, progress)
    metrics = task_metrics(config.model, model, val) | recipe.extra(model, val)
    meta = recipe.meta()
    info = {
        "model": config.model,
        "model_args": {},
        "task": spec.task,
        "params": count_parameters(model),
        "epochs": config.epochs,
        "seed": config.seed,
        "config": asdict(config),
        "data_seconds": round(data_seconds, 3),
        "train_seconds": round(train_seconds, 3),
        "val_metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        "history": history,
        "labels": meta["labels"],
        "data": meta["data"],
        "split": {"train": len(train), "val": len(val)},
        "environment": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        },
    }
    if meta.get("preprocessing"):
        info["preprocessing"] = meta["preprocessing"]
    return model.eval(), info


def _loop(model, recipe, train, config: ZooTrainConfig, gen, progress: bool) -> tuple[list, float]:
    n = len(train)
    steps = max(1, n // config.batch_size)  # whole batches only (BatchNorm on a batch of one fails)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=config.epochs * steps, pct_start=0.2
    )
    bar = _progress(config.epochs, progress, config.model)
    history, t0 = [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(steps):
            xb, yb = recipe.batch(train, perm[i * config.batch_size : (i + 1) * config.batch_size], gen)
            loss = recipe.loss(model, xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(total / steps, 6),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        if bar is not None:
            bar.set_postfix(loss=f"{total / steps:.4f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return history, time.perf_counter() - t0


def _progress(total: int, enabled: bool, name: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"train {name}", unit="epoch", leave=True)


def train(
    config: ZooTrainConfig, out, *, force: bool = False, progress: bool = True
) -> tuple[torch.nn.Module, dict]:
    """Public API: make the data, fit and write the run folder ``out`` atomically."""
    config.validate()
    out = Path(out)
    fsutil.prepare_target(out, force, "run")
    with fsutil.staging_dir(out, "run") as tmp:
        model, info = fit(config, tmp / "data", progress=progress)
        info = ckpt.write_run_files(tmp, model.state_dict(), {**info, "model": config.model})
    return model, info
