"""Classification (images, vectors) and text classification (token ids in, one class per sequence).

Against the reference: top-1 agreement of every ``class_scores`` output.
Against labels: accuracy of the first one, and its drop from PyTorch's.
"""

from __future__ import annotations

import numpy as np

from .base import Accumulator, Gate, Task, check_int_labels, safe_div

# int8 with labelled data: accuracy decides (at most 0.5 points lost), agreement is a floor (98%); a
# quantized MobileNetV3 flips ~1% of its low-margin predictions both ways at no cost in accuracy.
# Without labels, agreement is the only evidence and keeps its 99.5%.
GATES = (
    Gate(
        "agreement",
        "min",
        {"fp32": 1.0, "fp16": 0.998, "int8": 0.995},
        "share of samples whose top-1 class matches PyTorch's",
        labelled={"int8": 0.98},
    ),
    Gate(
        "accuracy_drop",
        "max",
        {"fp16": 0.002, "int8": 0.005},
        "accuracy points lost against PyTorch on labelled data (0.005 = 0.5 points)",
    ),
)


class ClassifyAccumulator(Accumulator):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.n = 0
        self.agree = dict.fromkeys(names, 0)
        self.rows = dict.fromkeys(names, 0)
        self.correct = self.ref_correct = self.labelled = 0

    def update(self, ref: dict, out: dict, labels=None) -> None:
        for name in self.names:
            r, o = np.asarray(ref[name]), np.asarray(out[name])
            if r.shape != o.shape or r.ndim < 2:
                continue
            pr, po = r.argmax(-1), o.argmax(-1)
            self.agree[name] += int(np.count_nonzero(pr == po))
            self.rows[name] += int(pr.size)
            if name == self.names[0]:
                self.n += len(r)
                if labels is not None:
                    lab = np.asarray(labels).reshape(pr.shape)
                    self.labelled += int(lab.size)
                    self.correct += int(np.count_nonzero(po == lab))
                    self.ref_correct += int(np.count_nonzero(pr == lab))

    def result(self) -> dict:
        per = {n: safe_div(self.agree[n], self.rows[n]) for n in self.names}
        vals = [v for v in per.values() if v is not None]
        acc = safe_div(self.correct, self.labelled)
        ref_acc = safe_div(self.ref_correct, self.labelled)
        out = {
            "n": self.n,
            "agreement": min(vals) if vals else None,
            "accuracy": acc,
            "ref_accuracy": ref_acc,
            "accuracy_drop": (ref_acc - acc) if acc is not None else None,
            "labelled": self.labelled,
        }
        if len(per) > 1:
            out["agreement_by_output"] = per
        return out


class Classify(Task):
    name = "classify"
    title = "Classification"
    roles = ("class_scores",)
    label_kind = "class"
    GATES = GATES
    primary_metric = "agreement"
    primary_label_metric = "accuracy"
    SHOW = (("agreement", "agree", True), ("accuracy", "acc", True), ("accuracy_drop", "drop", True))
    LABEL_METRICS = ("accuracy",)

    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        """Declared roles kept; every probs/logits output is class scores, the first 2-D float one too."""
        roles, taken = [], any(o.get("role") == "class_scores" for o in outputs)
        for o in outputs:
            if o.get("role"):
                roles.append(o["role"])
            elif o.get("kind") in ("probs", "logits") or (
                not taken and len(o["shape"]) == 2 and o["shape"][1] > 1 and o["dtype"].startswith("float")
            ):
                taken = True
                roles.append("class_scores")
            else:
                roles.append("aux")
        if "class_scores" not in roles:
            from ..errors import ConfigError

            raise ConfigError(
                f"task {cls.name}: no output looks like class scores (a float [batch, classes] output); "
                "name it with --output NAME:class_scores"
            )
        return roles

    def accumulator(self) -> Accumulator:
        return ClassifyAccumulator([s.name for s in self.outputs("class_scores")])

    @property
    def num_classes(self) -> int:
        return int(self.outputs("class_scores")[0].shape[-1])

    def check_labels(self, labels) -> None:
        if labels is not None:
            check_int_labels(labels, 0, self.num_classes - 1, "class labels")

    def predict_rows(self, outputs: dict, labels, *, top_k: int = 3) -> list[dict]:
        from .render import top_k as rank

        spec = self.outputs("class_scores")[0]
        scores = np.asarray(outputs[spec.name])
        rows = []
        for row in scores:
            top = rank(row, labels, top_k, spec.kind == "logits")
            rows.append({"label": top[0]["label"], "top": top})
        return rows

    def format_row(self, row: dict) -> str:
        from ..errors import safe_text

        top = ", ".join(f"{safe_text(t['label'], 80)} {t['prob'] * 100:.1f}%" for t in row["top"])
        return f"{safe_text(row['label'], 80)}  ({top})"


class TextClassify(Classify):
    name = "text-classify"
    title = "Text classification"
