"""Object detection: boxes, scores (and optionally class ids) per anchor, decoded and NMS'd in numpy.

Against the reference: the artifact's boxes after the recorded score threshold
and NMS are matched to PyTorch's at IoU >= ``match_iou`` (same class):
matched recall and precision, mean IoU of the matches, mean score error.
Against labels (boxes in model-input pixels): mAP@0.5 and mAP@0.5:0.95 by
faster-coco-eval (a maintained COCO evaluator), for PyTorch and the artifact,
and their drop.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from . import boxes as bx
from .base import Accumulator, Gate, Param, Task, safe_div

GATES = (
    Gate(
        "matched_recall",
        "min",
        {"fp32": 0.99, "fp16": 0.98, "int8": 0.95},
        "reference boxes the artifact finds",
    ),
    Gate(
        "matched_precision",
        "min",
        {"fp32": 0.99, "fp16": 0.98, "int8": 0.90},
        "artifact boxes that match a reference box",
    ),
    Gate("mean_iou", "min", {"fp32": 0.99, "fp16": 0.95, "int8": 0.85}, "mean IoU of matched boxes"),
    Gate("map50_drop", "max", {"fp16": 0.005, "int8": 0.01}, "mAP@0.5 points lost (0.01 = 1 point)"),
)
PARAMS = (
    Param("box_format", "xyxy", choices=bx.BOX_FORMATS, text="how the boxes output encodes a box"),
    Param("box_units", "pixels", choices=("pixels", "normalized"), text="pixels of the model input, or 0..1"),
    Param(
        "score_activation",
        "none",
        choices=("none", "sigmoid", "softmax"),
        text="applied to the scores output first",
    ),
    Param("background_class", -1, lo=-1, hi=1 << 20, text="class index that is background (-1: none)"),
    Param("score_threshold", 0.3, lo=0.0, hi=1.0, text="boxes below this score are dropped"),
    Param("nms_iou", 0.5, lo=0.0, hi=1.0, text="NMS suppresses same-class boxes above this IoU"),
    Param("max_detections", 100, lo=1, hi=10_000, text="boxes kept per image after NMS"),
    Param("match_iou", 0.5, lo=0.05, hi=1.0, text="IoU at which an artifact box matches a reference box"),
    Param("map_score_threshold", 0.01, lo=0.0, hi=1.0, text="score threshold for the mAP evaluation"),
)


class DetectAccumulator(Accumulator):
    def __init__(self, task: Detect) -> None:
        self.task, self.p = task, task.params
        self.n = self.ref_total = self.out_total = 0
        self.ious: list[float] = []
        self.score_err: list[float] = []
        self.gt: list = []  # per labelled image: (boxes, classes)
        self.ref_dets: list = []  # per labelled image, at the mAP threshold
        self.out_dets: list = []

    def _images(self, outputs: dict, threshold=None) -> list[bx.Detections]:
        return self.task.decode_batch(outputs, threshold=threshold)

    def update(self, ref: dict, out: dict, labels=None) -> None:
        r_imgs, o_imgs = self._images(ref), self._images(out)
        for r, o in zip(r_imgs, o_imgs):
            self.n += 1
            self.ref_total += len(r)
            self.out_total += len(o)
            for ri, oj, iou in bx.match(r, o, self.p["match_iou"]):
                self.ious.append(iou)
                self.score_err.append(abs(float(r.scores[ri]) - float(o.scores[oj])))
        if labels is not None:
            thr = self.p["map_score_threshold"]
            self.ref_dets += self._images(ref, thr)
            self.out_dets += self._images(out, thr)
            for lab in labels:
                self.gt.append(
                    (np.asarray(lab["boxes"], np.float64).reshape(-1, 4), np.asarray(lab["classes"]))
                )

    def result(self) -> dict:
        matched = len(self.ious)
        res = {
            "n": self.n,
            "ref_boxes": self.ref_total,
            "boxes": self.out_total,
            "matched_recall": safe_div(matched, self.ref_total),
            "matched_precision": safe_div(matched, self.out_total),
            "mean_iou": float(np.mean(self.ious)) if self.ious else None,
            "score_error": float(np.mean(self.score_err)) if self.score_err else None,
        }
        if self.ref_total == 0 and self.out_total > 0:
            res["matched_precision"] = 0.0
        if self.gt:
            res |= coco_map(self.gt, self.ref_dets, self.out_dets, self.task.input_size())
        return res


_MAP_MEMO: dict = {}


def _digest(arrays) -> str:
    """One hash of many arrays (shape, dtype and bytes of each)."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(repr((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _evaluate(images: list, anns: list, cats: list, dets: list) -> tuple[float, float]:
    """(mAP@0.5:0.95, mAP@0.5) of ``dets`` against the ground truth, by faster-coco-eval."""
    from faster_coco_eval import COCO, COCOeval_faster

    coco = COCO({"images": images, "annotations": anns, "categories": cats})
    found = [
        {
            "image_id": i + 1,
            "category_id": int(c) + 1,
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            "score": float(s),
        }
        for i, d in enumerate(dets)
        for b, s, c in zip(d.boxes, d.scores, d.classes)
    ]
    if not found:
        return 0.0, 0.0
    ev = COCOeval_faster(coco, coco.loadRes(found), "bbox", print_function=lambda *a, **k: None)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(max(ev.stats[0], 0)), float(max(ev.stats[1], 0))


def coco_map(gt: list, ref: list, out: list, size) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 of the reference and the artifact with faster-coco-eval."""
    import importlib.util

    if importlib.util.find_spec("faster_coco_eval") is None:
        return {"map_note": "faster-coco-eval is not installed: pip install faster-coco-eval"}
    if not sum(len(c) for _, c in gt):
        return {"map_note": "the labels hold no boxes"}
    classes = sorted({int(c) for _, cs in gt for c in cs})
    h, w = size or (1, 1)
    images = [{"id": i + 1, "width": int(w), "height": int(h)} for i in range(len(gt))]
    anns = []
    for i, (bxs, cs) in enumerate(gt):
        for b, c in zip(bxs, cs):
            wh = [float(b[2] - b[0]), float(b[3] - b[1])]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(c) + 1,
                    "bbox": [float(b[0]), float(b[1]), *wh],
                    "area": wh[0] * wh[1],
                    "iscrowd": 0,
                }
            )
    cats = [{"id": c + 1, "name": str(c)} for c in classes]
    stats = {}
    gt_key = _digest([np.asarray(size or (1, 1)), *(np.asarray(x) for b, c in gt for x in (b, c))])
    for key, dets in (("ref_", ref), ("", out)):
        memo = (
            gt_key,
            _digest(np.asarray(x) for d in dets for x in (d.boxes, d.scores, d.classes)),
        )
        if memo not in _MAP_MEMO:  # the reference's figures repeat for every int8 candidate: once is enough
            if len(_MAP_MEMO) >= 16:
                _MAP_MEMO.pop(next(iter(_MAP_MEMO)))
            _MAP_MEMO[memo] = _evaluate(images, anns, cats, dets)
        stats[key + "map"], stats[key + "map50"] = _MAP_MEMO[memo]
    stats["map50_drop"] = stats["ref_map50"] - stats["map50"]
    stats["map_drop"] = stats["ref_map"] - stats["map"]
    return stats


class Detect(Task):
    name = "detect"
    title = "Object detection"
    roles = ("boxes", "scores", "labels")
    label_kind = "boxes"
    GATES = GATES
    PARAMS = PARAMS
    primary_metric = "matched_recall"
    primary_label_metric = "map50"
    SHOW = (
        ("matched_recall", "recall", True),
        ("matched_precision", "prec", True),
        ("mean_iou", "IoU", True),
        ("map50", "mAP50", True),
        ("map", "mAP", True),
        ("map50_drop", "mAP50 drop", True),
    )
    LABEL_METRICS = ("map50", "map")

    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        roles = [o.get("role") for o in outputs]
        for i, o in enumerate(outputs):
            if roles[i]:
                continue
            shape, name = o["shape"], o["name"].lower()
            if "boxes" not in roles and len(shape) == 3 and shape[-1] == 4 and o["dtype"].startswith("float"):
                roles[i] = "boxes"
            elif "scores" not in roles and o["dtype"].startswith("float") and len(shape) in (2, 3):
                roles[i] = "scores"
            elif "labels" not in roles and "label" in name and len(shape) == 2:
                roles[i] = "labels"
            else:
                roles[i] = "aux"
        if "boxes" not in roles or "scores" not in roles:
            raise ConfigError(
                "task detect needs a boxes output [batch, anchors, 4] and a scores output [batch, anchors, "
                "classes] (or [batch, anchors]); name them with --output NAME:boxes --output NAME:scores"
            )
        return roles

    def accumulator(self) -> Accumulator:
        return DetectAccumulator(self)

    def input_size(self):
        """(height, width) of the image input when fixed, else None."""
        for s in self.signature.inputs:
            if s.layout:
                hw = s.shape[2:4] if s.layout == "NCHW" else s.shape[1:3]
                if all(isinstance(v, int) for v in hw):
                    return tuple(hw)
        return None

    def decode_batch(self, outputs: dict, threshold=None) -> list[bx.Detections]:
        b = np.asarray(outputs[self.output("boxes").name], np.float64)
        s = np.asarray(outputs[self.output("scores").name], np.float64)
        lab_spec = self.output("labels")
        lab = None if lab_spec is None else np.asarray(outputs[lab_spec.name])
        if self.params["box_units"] == "normalized" and self.input_size():
            h, w = self.input_size()
            b = b * np.array([w, h, w, h], np.float64)
        return [
            bx.decode(b[i], s[i], None if lab is None else lab[i], self.params, threshold=threshold)
            for i in range(len(b))
        ]

    def predict_rows(self, outputs: dict, labels, *, top_k: int = 3) -> list[dict]:
        return [{"detections": d.to_list(labels)} for d in self.decode_batch(outputs)]

    def format_row(self, row: dict) -> str:
        from ..errors import safe_text

        dets = row["detections"]
        if not dets:
            return f"no detections above score {self.params['score_threshold']:g}"
        shown = ", ".join(
            f"{safe_text(d['label'], 40)} {d['score']:.2f} at [{', '.join(f'{v:.0f}' for v in d['box'])}]"
            for d in dets[:10]
        )
        return f"{len(dets)} detection(s): {shown}" + (" ..." if len(dets) > 10 else "")

    def picture(self, image, row: dict, outputs_i: dict, input_hw):
        from .render import draw_boxes

        h, w = image.shape[:2]
        ih, iw = input_hw
        return draw_boxes(image, row["detections"], (w / iw, h / ih))

    @property
    def num_classes(self) -> int:
        s = self.output("scores")
        return int(s.shape[-1]) if s is not None and s.rank == 3 and isinstance(s.shape[-1], int) else 1 << 20

    def check_labels(self, labels) -> None:
        if labels is None:
            return
        for i, lab in enumerate(labels):
            if not isinstance(lab, dict) or "boxes" not in lab or "classes" not in lab:
                raise DataError(f"detection label {i} must hold boxes and classes")
            b = np.asarray(lab["boxes"], np.float64).reshape(-1, 4)
            c = np.asarray(lab["classes"])
            if len(b) != len(c) or not np.isfinite(b).all():
                raise DataError(
                    f"detection label {i}: {len(b)} boxes but {len(c)} classes, or non-finite boxes"
                )
            if len(c) and (c.min() < 0 or c.max() >= self.num_classes):
                raise DataError(
                    f"detection label {i}: class {int(c.max() if c.max() >= self.num_classes else c.min())} "
                    f"is outside 0..{self.num_classes - 1}; the labels do not fit the model's classes"
                )
