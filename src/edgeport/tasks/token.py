"""Per-token outputs ``[batch, seq, vocab]`` (taggers, masked or causal LM heads over token ids).

Against the reference: argmax agreement per token.  Against labels
``[batch, seq]`` (``ignore_index`` positions skipped): token accuracy, and
perplexity on the label tokens with its relative change.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from .base import Accumulator, Gate, Param, Task, check_int_labels, safe_div

GATES = (
    Gate(
        "token_agreement", "min", {"fp32": 0.999, "fp16": 0.995, "int8": 0.99}, "tokens whose argmax matches"
    ),
    Gate("accuracy_drop", "max", {"fp16": 0.005, "int8": 0.01}, "token accuracy points lost on labels"),
    Gate("perplexity_change", "max", {"fp16": 0.005, "int8": 0.02}, "relative perplexity increase on labels"),
)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


class TokenAccumulator(Accumulator):
    def __init__(self, task: Token) -> None:
        self.name, self.ignore = task.output("token_logits").name, task.params["ignore_index"]
        self.n = self.tokens = self.agree = 0
        self.labelled = self.correct = self.ref_correct = 0
        self.nll = self.ref_nll = 0.0

    def update(self, ref: dict, out: dict, labels=None) -> None:
        r, o = np.asarray(ref[self.name]), np.asarray(out[self.name])
        pr, po = r.argmax(-1), o.argmax(-1)
        self.n += len(r)
        if labels is None:
            self.tokens += pr.size
            self.agree += int(np.count_nonzero(pr == po))
            return
        lab = np.asarray(labels).reshape(pr.shape).astype(np.int64)
        keep = lab != self.ignore
        self.tokens += int(keep.sum())
        self.agree += int(np.count_nonzero((pr == po) & keep))
        self.labelled += int(keep.sum())
        self.correct += int(np.count_nonzero((po == lab) & keep))
        self.ref_correct += int(np.count_nonzero((pr == lab) & keep))
        idx = np.where(keep, lab, 0)[..., None]
        self.nll -= float((np.take_along_axis(_log_softmax(o), idx, -1)[..., 0] * keep).sum())
        self.ref_nll -= float((np.take_along_axis(_log_softmax(r), idx, -1)[..., 0] * keep).sum())

    def result(self) -> dict:
        res = {"n": self.n, "tokens": self.tokens, "token_agreement": safe_div(self.agree, self.tokens)}
        if self.labelled:
            acc, ref_acc = self.correct / self.labelled, self.ref_correct / self.labelled
            ppl = math.exp(min(self.nll / self.labelled, 700))
            ref_ppl = math.exp(min(self.ref_nll / self.labelled, 700))
            res |= {
                "accuracy": acc,
                "ref_accuracy": ref_acc,
                "accuracy_drop": ref_acc - acc,
                "perplexity": ppl,
                "ref_perplexity": ref_ppl,
                "perplexity_change": ppl / ref_ppl - 1.0,
            }
        return res


class Token(Task):
    name = "token"
    title = "Per-token prediction"
    roles = ("token_logits",)
    label_kind = "tokens"
    GATES = GATES
    PARAMS = (Param("ignore_index", -100, lo=-(1 << 31), hi=1 << 31, text="label value that is not scored"),)
    primary_metric = "token_agreement"
    primary_label_metric = "accuracy"
    SHOW = (
        ("token_agreement", "tok agree", True),
        ("accuracy", "acc", True),
        ("perplexity", "ppl", False),
        ("perplexity_change", "ppl +", True),
    )
    LABEL_METRICS = ("accuracy", "perplexity")

    @classmethod
    def assign_roles(cls, outputs: list[dict]) -> list[str]:
        roles = [o.get("role") for o in outputs]
        for i, o in enumerate(outputs):
            if not roles[i]:
                fits = "token_logits" not in roles and len(o["shape"]) == 3 and o["dtype"].startswith("float")
                roles[i] = "token_logits" if fits else "aux"
        if "token_logits" not in roles:
            raise ConfigError(
                "task token needs a per-token score output [batch, seq, vocab]; name it with "
                "--output NAME:token_logits"
            )
        return roles

    def accumulator(self) -> Accumulator:
        return TokenAccumulator(self)

    def predict_rows(self, outputs: dict, labels, *, top_k: int = 3) -> list[dict]:
        from .render import top_k as rank

        spec = self.output("token_logits")
        rows = []
        for seq in np.asarray(outputs[spec.name]):
            rows.append({"tokens": [rank(t, labels, top_k, spec.kind != "probs") for t in seq]})
        return rows

    def format_row(self, row: dict) -> str:
        from ..errors import safe_text

        best = [safe_text(t[0]["label"], 20) for t in row["tokens"]]
        return f"{len(best)} positions, top-1: {' '.join(best[:32])}" + (" ..." if len(best) > 32 else "")

    def check_labels(self, labels) -> None:
        if labels is not None:
            v = self.output("token_logits").shape[-1]
            hi = int(v) - 1 if isinstance(v, int) else 1 << 30
            check_int_labels(labels, 0, hi, "token labels", allowed=(self.params["ignore_index"],))
