"""Semantic segmentation: per-pixel class scores ``[batch, classes, H, W]``.

Against the reference: per-pixel argmax agreement and the mIoU of the
artifact's mask taking PyTorch's as ground truth.  Against label maps
``[batch, H, W]`` (``ignore_index`` pixels skipped): mIoU of both, and its drop.
Confusion matrices are the whole state, so memory is fixed.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import Accumulator, Gate, Param, Task, check_int_labels, safe_div

GATES = (
    Gate(
        "pixel_agreement", "min", {"fp32": 0.999, "fp16": 0.995, "int8": 0.98}, "pixels whose class matches"
    ),
    Gate("miou_ref", "min", {"fp32": 0.99, "fp16": 0.97, "int8": 0.90}, "mIoU against PyTorch's masks"),
    Gate("miou_drop", "max", {"fp16": 0.005, "int8": 0.01}, "mIoU points lost on labels (0.01 = 1 point)"),
)


def miou(conf: np.ndarray) -> float | None:
    """Mean IoU over the classes present in either the truth or the prediction."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if present.any() else None


def confusion(truth: np.ndarray, pred: np.ndarray, k: int, ignore: int | None = None) -> np.ndarray:
    t, p = truth.reshape(-1).astype(np.int64), pred.reshape(-1).astype(np.int64)
    if ignore is not None:
        keep = t != ignore
        t, p = t[keep], p[keep]
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


class SegmentAccumulator(Accumulator):
    def __init__(self, task: Segment) -> None:
        self.name, self.k, self.ignore = (
            task.output("mask_logits").name,
            task.num_classes,
            task.params["ignore_index"],
        )
        self.n = self.pixels = self.agree = 0
        self.ref_conf = np.zeros((self.k, self.k), np.int64)
        self.lab_conf = np.zeros((self.k, self.k), np.int64)
        self.lab_ref_conf = np.zeros((self.k, self.k), np.int64)

    def update(self, ref: dict, out: dict, labels=None) -> None:
        r, o = np.asarray(ref[self.name]).argmax(1), np.asarray(out[self.name]).argmax(1)
        self.n += len(r)
        self.pixels += r.size
        self.agree += int(np.count_nonzero(r == o))
        self.ref_conf += confusion(r, o, self.k)
        if labels is not None:
            lab = np.asarray(labels).reshape(r.shape)
            self.lab_conf += confusion(lab, o, self.k, self.ignore)
            self.lab_ref_conf += confusion(lab, r, self.k, self.ignore)

    def result(self) -> dict:
        res = {
            "n": self.n,
            "pixel_agreement": safe_div(self.agree, self.pixels),
            "miou_ref": miou(self.ref_conf),
        }
        if self.lab_conf.sum():
            m, mr = miou(self.lab_conf), miou(self.lab_ref_conf)
            res |= {
                "miou": m,
                "ref_miou": mr,
                "miou_drop": (mr - m) if m is not None and mr is not None else None,
            }
            res["pixel_accuracy"] = float(np.trace(self.lab_conf) / self.lab_conf.sum())
        return res


class Segment(Task):
    name = "segment"
    title = "Semantic segmentation"
    roles = ("mask_logits",)
    label_kind = "mask"
    GATES = GATES
    PARAMS = (Param("ignore_index", 255, lo=-1, hi=1 << 16, text="label value that is not scored"),)
    primary_metric = "pixel_agreement"
    primary_label_metric = "miou"
    SHOW = (
        ("pixel_agreement", "pix agree", True),
        ("miou_ref", "mIoU vs ref", True),
        ("miou", "mIoU", True),
        ("miou_drop", "drop", True),
    )
    LABEL_METRICS = ("miou",)

    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        roles = [o.get("role") for o in outputs]
        for i, o in enumerate(outputs):
            if not roles[i]:
                fits = "mask_logits" not in roles and len(o["shape"]) == 4 and o["dtype"].startswith("float")
                roles[i] = "mask_logits" if fits else "aux"
        if "mask_logits" not in roles:
            raise ConfigError(
                "task segment needs a per-pixel class-score output [batch, classes, H, W]; "
                "name it with --output NAME:mask_logits"
            )
        return roles

    def accumulator(self) -> Accumulator:
        return SegmentAccumulator(self)

    def predict_rows(self, outputs: dict, labels, *, top_k: int = 3) -> list[dict]:
        from .render import name

        masks = np.asarray(outputs[self.output("mask_logits").name]).argmax(1)
        rows = []
        for m in masks:
            counts = np.bincount(m.reshape(-1), minlength=self.num_classes) / m.size
            order = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0][: max(top_k, 1)]
            rows.append(
                {"classes": [{"label": name(labels, i), "share": round(float(counts[i]), 4)} for i in order]}
            )
        return rows

    def format_row(self, row: dict) -> str:
        from ..errors import safe_text

        return "pixels: " + ", ".join(
            f"{safe_text(c['label'], 40)} {c['share'] * 100:.1f}%" for c in row["classes"]
        )

    def picture(self, image, row: dict, outputs_i: dict, input_hw):
        from .render import overlay_mask

        return overlay_mask(image, np.asarray(outputs_i[self.output("mask_logits").name]).argmax(0))

    @property
    def num_classes(self) -> int:
        return int(self.output("mask_logits").shape[1])

    def check_labels(self, labels) -> None:
        if labels is not None:
            ig = self.params["ignore_index"]
            check_int_labels(
                labels, 0, self.num_classes - 1, "label map class ids", allowed=(ig,) if ig >= 0 else ()
            )
