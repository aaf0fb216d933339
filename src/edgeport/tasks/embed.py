"""Embeddings: one vector per sample.  No labels: the reference is the truth.

Cosine similarity of each artifact vector with PyTorch's (min and mean), and
the agreement of each sample's ``knn_k`` nearest neighbours among the first
``knn_rows`` samples (what a retrieval app would return).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import Accumulator, Gate, Param, Task

GATES = (
    Gate("cosine_min", "min", {"fp32": 0.9999, "fp16": 0.999, "int8": 0.95}, "worst cosine with PyTorch"),
    Gate("cosine_mean", "min", {"fp32": 0.99999, "fp16": 0.9995, "int8": 0.99}, "mean cosine with PyTorch"),
    Gate("knn_agreement", "min", {"fp32": 0.99, "fp16": 0.97, "int8": 0.90}, "nearest neighbours kept"),
)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(x: np.ndarray, k: int) -> np.ndarray:
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return np.argsort(-sim, axis=1, kind="stable")[:, :k]


class EmbedAccumulator(Accumulator):
    def __init__(self, task: Embed) -> None:
        self.name, self.k, self.rows = (
            task.output("embedding").name,
            task.params["knn_k"],
            task.params["knn_rows"],
        )
        self.n, self.cos_sum, self.cos_min = 0, 0.0, np.inf
        self.ref_keep, self.out_keep = [], []
        self.kept = 0

    def update(self, ref: dict, out: dict, labels=None) -> None:
        r, o = _unit(np.asarray(ref[self.name])), _unit(np.asarray(out[self.name]))
        cos = np.sum(r * o, axis=1)
        self.n += len(cos)
        self.cos_sum += float(cos.sum())
        self.cos_min = min(self.cos_min, float(cos.min())) if len(cos) else self.cos_min
        take = max(0, min(len(r), self.rows - self.kept))
        if take:
            self.ref_keep.append(r[:take])
            self.out_keep.append(o[:take])
            self.kept += take

    def result(self) -> dict:
        res = {
            "n": self.n,
            "cosine_min": float(self.cos_min) if self.n else None,
            "cosine_mean": self.cos_sum / self.n if self.n else None,
            "knn_agreement": None,
        }
        if self.kept > self.k + 1:
            r, o = np.concatenate(self.ref_keep), np.concatenate(self.out_keep)
            a, b = knn(r, self.k), knn(o, self.k)
            res["knn_agreement"] = float(np.mean([len(set(x) & set(y)) / self.k for x, y in zip(a, b)]))
            res["knn_rows"] = self.kept
        return res


class Embed(Task):
    name = "embed"
    title = "Embeddings"
    roles = ("embedding",)
    GATES = GATES
    PARAMS = (
        Param("knn_k", 5, lo=1, hi=100, text="neighbours compared per sample"),
        Param("knn_rows", 2000, lo=10, hi=20_000, text="samples the neighbour check uses"),
    )
    primary_metric = "cosine_mean"
    SHOW = (
        ("cosine_min", "cos min", False),
        ("cosine_mean", "cos mean", False),
        ("knn_agreement", "kNN", True),
    )

    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        roles = [o.get("role") for o in outputs]
        for i, o in enumerate(outputs):
            if not roles[i]:
                fits = "embedding" not in roles and o["dtype"].startswith("float")
                roles[i] = "embedding" if fits else "aux"
        if "embedding" not in roles:
            raise ConfigError("task embed needs a float output; name it with --output NAME:embedding")
        return roles

    def accumulator(self) -> Accumulator:
        return EmbedAccumulator(self)

    def predict_rows(self, outputs: dict, labels, *, top_k: int = 3) -> list[dict]:
        e = np.asarray(outputs[self.output("embedding").name], np.float64).reshape(
            len(next(iter(outputs.values()))), -1
        )
        return [
            {"norm": round(float(np.linalg.norm(v)), 6), "dim": int(v.size), "embedding": v.round(6).tolist()}
            for v in e
        ]

    def format_row(self, row: dict) -> str:
        head = ", ".join(f"{v:.3f}" for v in row["embedding"][:4])
        return f"embedding of {row['dim']} values, norm {row['norm']:.4g}: [{head}, ...]"
