"""Training recipes: for each trainable task model, how its labelled set is made and written, what it
trains on, its loss and its validation metrics (the task's own, from :mod:`edgeport.tasks`).

A recipe's :meth:`~Recipe.make` writes the train and validation sets into the run folder in the
on-disk layout their ``--data`` source reads, and returns them as tensors for the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F


@dataclass
class Split:
    x: torch.Tensor  # model inputs, preprocessed
    y: object  # labels: a tensor, or a list of per-sample dicts (detection)
    raw: object = None  # what the task's metrics take as labels (numpy)

    def __len__(self) -> int:
        return len(self.x)


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] in [-1, 1]: the same as the recorded preprocessing steps."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.mul_(2.0 / 255.0).sub_(1.0)


def task_of(name: str, model: torch.nn.Module):
    """The task object edgeport's export would give ``name`` (its metrics judge validation too)."""
    from ..export.signature import build_signature
    from ..sources.models import ModelSource, get_spec
    from ..tasks import registry

    spec = get_spec(name)
    sig, _, task = build_signature(model, ModelSource(model.eval(), name, spec=spec))
    return registry.make(sig, task, spec.task_params)


@torch.inference_mode()
def outputs(model, x: torch.Tensor, names: list[str], batch: int = 256) -> dict:
    model.eval()
    parts = []
    for i in range(0, len(x), batch):
        y = model(x[i : i + batch])
        parts.append(y if isinstance(y, tuple) else (y,))
    return {n: torch.cat([p[k] for p in parts]).numpy() for k, n in enumerate(names)}


def task_metrics(name: str, model, split: Split) -> dict:
    task = task_of(name, model)
    out = outputs(model, split.x, task.signature.output_names)
    acc = task.accumulator()
    acc.update(out, out, split.raw)
    return acc.result()


class Recipe:
    """Base class: ``make`` the data, a ``loss`` per batch, an ``augment`` hook, the ``meta`` of the run."""

    task = ""
    metric = ""  # the validation metric the progress bar shows (from the task's ref_ metrics)

    def make(self, folder: Path, n_train: int, n_val: int, seed: int) -> tuple[Split, Split]:
        raise NotImplementedError

    def batch(self, split: Split, idx: torch.Tensor, gen: torch.Generator):
        return split.x[idx], split.y[idx]

    def loss(self, model, xb, yb) -> torch.Tensor:
        raise NotImplementedError

    def meta(self) -> dict:
        raise NotImplementedError

    def extra(self, model, split: Split) -> dict:
        """Validation metrics beyond the task's (which compare a model with itself here)."""
        return {}


class ShapesDetect(Recipe):
    """Shape scenes as COCO; random horizontal flips.  Cell targets are assigned once per image and
    flip, so a training step is one forward and backward pass."""

    task, metric = "detect", "map50"

    def make(self, folder, n_train, n_val, seed):
        from .losses import detection_targets
        from .shapes import make_scenes, write_coco
        from .tiny import SIZE, STRIDE, grid_centres

        centres = grid_centres(SIZE, STRIDE)
        splits = []
        for sub, n, s in (("train", n_train, seed), ("val", n_val, seed + 1_000_003)):
            scenes = make_scenes(n, s)
            write_coco(scenes, folder / sub)
            flipped = [np.stack([SIZE - b[:, 2], b[:, 1], SIZE - b[:, 0], b[:, 3]], 1) for b in scenes.boxes]
            targets = [
                detection_targets(centres, STRIDE, bs, scenes.classes) for bs in (scenes.boxes, flipped)
            ]
            splits.append(Split(image_tensor(scenes.images), targets, scenes.detection_labels()))
        return tuple(splits)

    def batch(self, split, idx, gen):
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], split.x[idx].flip(-1), split.x[idx])
        (c0, b0), (c1, b1) = split.y
        t_cls = torch.where(flip[:, None], c1[idx], c0[idx])
        t_box = torch.where(flip[:, None, None], b1[idx], b0[idx])
        return x, (t_cls, t_box)

    def loss(self, model, xb, yb):
        from .losses import detection_loss

        return detection_loss(model, xb, *yb)

    def meta(self):
        from .shapes import CLASSES
        from .tiny import IMAGE_STEPS

        return {
            "labels": list(CLASSES),
            "preprocessing": {"input": "image", "steps": [dict(s) for s in IMAGE_STEPS], "preset": None},
            "data": {"train": "coco:data/train/annotations.json", "val": "coco:data/val/annotations.json"},
        }


class ShapesSegment(Recipe):
    """Shape scenes as image + label-map folders; random horizontal flips."""

    task, metric = "segment", "miou"

    def make(self, folder, n_train, n_val, seed):
        from .shapes import make_scenes, write_segfolder

        splits = []
        for sub, n, s in (("train", n_train, seed), ("val", n_val, seed + 1_000_003)):
            scenes = make_scenes(n, s)
            write_segfolder(scenes, folder / sub)
            masks = scenes.masks.astype(np.int64)
            splits.append(Split(image_tensor(scenes.images), torch.from_numpy(masks), masks))
        return tuple(splits)

    def batch(self, split, idx, gen):
        x, y = split.x[idx], split.y[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x), torch.where(
            flip[:, None, None], y.flip(-1), y
        )

    def loss(self, model, xb, yb):
        return F.cross_entropy(model(xb), yb, ignore_index=255)

    def meta(self):
        from .shapes import CLASSES
        from .tiny import IMAGE_STEPS

        return {
            "labels": ["background", *CLASSES],
            "preprocessing": {"input": "image", "steps": [dict(s) for s in IMAGE_STEPS], "preset": None},
            "data": {"train": "segfolder:data/train", "val": "segfolder:data/val"},
        }


class TopicTagging(Recipe):
    """Topic-tagged sequences (:mod:`.tokens`) as npz; each batch is cropped to a random length
    between 4 and 128 around every row's marker, so the tagger sees every length ``seq`` allows."""

    task, metric = "token", "accuracy"
    TRAIN_LEN, VAL_LEN = 128, 48

    def make(self, folder, n_train, n_val, seed):
        from .tokens import make_sequences, write_npz

        ids, tags, where = make_sequences(n_train, self.TRAIN_LEN, seed)
        write_npz(folder / "train.npz", ids, tags)
        v_ids, v_tags, _ = make_sequences(n_val, self.VAL_LEN, seed + 1_000_003)
        write_npz(folder / "val.npz", v_ids, v_tags)
        self.rng = np.random.default_rng(seed)
        return (
            Split(torch.from_numpy(ids), torch.from_numpy(where), tags),
            Split(torch.from_numpy(v_ids), torch.from_numpy(v_tags), v_tags),
        )

    def batch(self, split, idx, gen):
        from .tokens import crop, tag

        length = int(torch.randint(4, self.TRAIN_LEN + 1, (1,), generator=gen))
        ids = crop(split.x[idx].numpy(), split.y[idx].numpy(), length, self.rng)
        return torch.from_numpy(ids), torch.from_numpy(tag(ids))

    def loss(self, model, xb, yb):
        from .text import tagger_loss

        return tagger_loss(model, xb, yb)

    def meta(self):
        from .tokens import TAGS

        return {
            "labels": list(TAGS),
            "preprocessing": None,
            "data": {"train": "npz:data/train.npz", "val": "npz:data/val.npz"},
        }


class ToneKeywords(Recipe):
    """Tone keywords (:mod:`.tones`) as a WAV folder; trained on their ``kws`` log-mels, each batch
    shifted in time by up to 100 ms (a roll of up to 10 frames)."""

    task, metric = "classify", "accuracy"

    def make(self, folder, n_train, n_val, seed):
        from .tones import log_mels, make_clips, write_wavfolder

        splits = []
        for sub, n, s in (("train", n_train, seed), ("val", n_val, seed + 1_000_003)):
            clips, labels = make_clips(n, s)
            write_wavfolder(clips, labels, folder / sub)
            splits.append(Split(torch.from_numpy(log_mels(clips)), torch.from_numpy(labels), labels))
        return tuple(splits)

    def batch(self, split, idx, gen):
        shift = int(torch.randint(-10, 11, (1,), generator=gen))
        return split.x[idx].roll(shift, -1), split.y[idx]

    def loss(self, model, xb, yb):
        return F.cross_entropy(model(xb), yb)

    def meta(self):
        from .tones import CLASSES

        return {
            "labels": list(CLASSES),
            "data": {"train": "wavfolder:data/train", "val": "wavfolder:data/val"},
        }


class ToneEmbedding(ToneKeywords):
    """The tone keywords again, for an embedding head: cross-entropy of its cosine classifier."""

    task, metric = "embed", "cosine_mean"

    def loss(self, model, xb, yb):
        return F.cross_entropy(model.class_logits(xb), yb)

    def extra(self, model, split: Split) -> dict:
        """Leave-one-out nearest-neighbour accuracy on the validation clips: do clips of one keyword
        cluster?"""
        emb = outputs(model, split.x, ["embedding"])["embedding"].astype(np.float64)
        sim = emb @ emb.T
        np.fill_diagonal(sim, -np.inf)
        return {"knn1_accuracy": float(np.mean(split.raw[sim.argmax(1)] == split.raw))}


RECIPES: dict[str, type[Recipe]] = {
    "kws-embed": ToneEmbedding,
    "detect": ShapesDetect,
    "segment": ShapesSegment,
    "token": TopicTagging,
    "kws": ToneKeywords,
}
