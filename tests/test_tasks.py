"""Task metrics and gates, against values computed by hand (numpy only: no export needed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.errors import ConfigError, DataError
from edgeport.runtime.parity import Criteria, ParityAccumulator, criteria_for
from edgeport.specs import BATCH, Dim, Signature, TensorSpec
from edgeport.tasks import boxes as bx
from edgeport.tasks import registry


def sig(outputs, inputs=None, dims=None) -> Signature:
    inputs = inputs or (TensorSpec("x", "float32", (BATCH, 3, 8, 8), layout="NCHW"),)
    return Signature(tuple(inputs), tuple(outputs), {BATCH: Dim(BATCH, 1, 64), **(dims or {})})


# --------------------------------------------------------------------------- boxes


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    b = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], float)
    s = np.array([0.9, 0.8, 0.7, 0.6])
    c = np.array([0, 0, 1, 0])
    kept = bx.batched_nms(b, s, c, 0.5)
    assert kept.tolist() == [0, 2, 3]  # box 1 overlaps box 0 (IoU 0.81); box 2 is another class
    assert bx.iou_matrix(b[:1], b[1:2])[0, 0] == pytest.approx(81 / 100)


def test_decode_thresholds_activates_and_converts_formats():
    params = registry.task_class("detect").resolve_params(
        {"box_format": "cxcywh", "score_activation": "softmax", "background_class": 0, "score_threshold": 0.5}
    )
    boxes = np.array([[5, 5, 10, 10], [30, 30, 4, 4]], float)
    scores = np.array([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0]])  # the second is background
    d = bx.decode(boxes, scores, None, params)
    assert len(d) == 1 and d.classes.tolist() == [1]
    assert d.boxes[0].tolist() == [0, 0, 10, 10] and d.scores[0] == pytest.approx(np.exp(5) / (np.exp(5) + 2))


def test_match_pairs_same_class_boxes_above_the_iou():
    ref = bx.Detections(
        np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8]), np.array([0, 1])
    )
    out = bx.Detections(
        np.array([[0, 0, 10, 11], [20, 20, 30, 30]], float), np.array([0.85, 0.8]), np.array([0, 2])
    )
    pairs = bx.match(ref, out, 0.5)
    assert pairs == [(0, 0, pytest.approx(100 / 110))]  # the second pair differs in class


# --------------------------------------------------------------------------- each task


def _detect():
    s = sig(
        (
            TensorSpec("boxes", "float32", (BATCH, 3, 4), kind="raw", role="boxes"),
            TensorSpec("scores", "float32", (BATCH, 3, 2), kind="probs", role="scores"),
        )
    )
    return s, registry.make(s, "detect", {"score_threshold": 0.5})


def test_detect_metrics_against_reference_and_labels():
    s, task = _detect()
    boxes = np.array([[[0, 0, 8, 8], [4, 4, 8, 8], [0, 0, 2, 2]]], np.float32)
    scores = np.array([[[0.1, 0.9], [0.8, 0.2], [0.6, 0.4]]], np.float32)
    ref = {"boxes": boxes, "scores": scores}
    shifted = {"boxes": boxes + np.float32(0.1), "scores": scores}  # IoU of the 2x2 box: 0.82
    labels = np.empty(1, object)
    labels[0] = {"boxes": np.array([[0, 0, 8, 8], [4, 4, 8, 8]], float), "classes": np.array([1, 0])}
    acc = task.accumulator()
    acc.update(ref, shifted, labels)
    m = acc.result()
    assert m["ref_boxes"] == m["boxes"] == 3 and m["matched_recall"] == 1.0 == m["matched_precision"]
    assert m["mean_iou"] < 1.0 and m["score_error"] == 0.0
    assert m["ref_map50"] == pytest.approx(1.0) and 0 <= m["map50_drop"] <= 1  # faster-coco-eval figures
    # the reference's mAP is remembered across candidates; each artifact's own is not
    far = {"boxes": boxes + np.float32(3.0), "scores": scores}  # every box moved off its label
    acc = task.accumulator()
    acc.update(ref, far, labels)
    m2 = acc.result()
    assert (
        m2["ref_map50"] == m["ref_map50"] and m2["map50"] < m["map50"] and m2["map50_drop"] > m["map50_drop"]
    )
    gone = {"boxes": boxes, "scores": np.zeros_like(scores)}  # the artifact finds nothing
    acc = task.accumulator()
    acc.update(ref, gone)
    m = acc.result()
    assert m["matched_recall"] == 0.0 and m["boxes"] == 0
    reasons, evaluated = task.judge(m, task.gates_for("int8"))
    assert "matched_recall" in evaluated and any("matched_recall 0.00%" in r for r in reasons)


def test_segment_miou_and_agreement():
    s = sig((TensorSpec("mask", "float32", (BATCH, 3, 2, 2), kind="logits", role="mask_logits"),))
    task = registry.make(s, "segment")
    ref = np.zeros((1, 3, 2, 2), np.float32)
    ref[0, 0, 0, :] = ref[0, 1, 1, 0] = ref[0, 2, 1, 1] = 1  # classes [[0,0],[1,2]]
    out = ref.copy()
    out[0, 2, 1, 0] = 2  # pixel (1,0) becomes class 2
    labels = np.array([[[0, 0], [1, 255]]])  # one pixel ignored
    acc = task.accumulator()
    acc.update({"mask": ref}, {"mask": out}, labels)
    m = acc.result()
    assert m["pixel_agreement"] == 0.75
    # vs reference: class 0 IoU 1, class 1 IoU 0 (1 pixel lost), class 2 IoU 1/2 -> mean 0.5
    assert m["miou_ref"] == pytest.approx(0.5)
    # vs labels (pixel (1,1) ignored): class 0 IoU 1, class 1 IoU 0, class 2 (predicted, absent) IoU 0
    assert m["ref_miou"] == pytest.approx(1.0) and m["miou"] == pytest.approx(1 / 3)
    assert m["miou_drop"] == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="found 7, expected 0..2"):
        task.check_labels(np.array([[[0, 7]]]))
    task.check_labels(labels)  # 255 is the ignore index


def test_embed_cosine_and_neighbours():
    s = sig((TensorSpec("emb", "float32", (BATCH, 4), kind="raw", role="embedding"),))
    task = registry.make(s, "embed", {"knn_k": 1})
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((20, 4)).astype(np.float32)
    acc = task.accumulator()
    acc.update({"emb": ref}, {"emb": ref * 3})  # scale does not change direction
    m = acc.result()
    assert m["cosine_min"] == pytest.approx(1.0) and m["knn_agreement"] == 1.0
    acc = task.accumulator()
    acc.update({"emb": ref}, {"emb": -ref})
    assert acc.result()["cosine_mean"] == pytest.approx(-1.0)


def test_token_agreement_accuracy_and_perplexity():
    s = sig(
        (TensorSpec("tok", "float32", (BATCH, "seq", 3), kind="logits", role="token_logits"),),
        inputs=(TensorSpec("ids", "int64", (BATCH, "seq")),),
        dims={"seq": Dim("seq", 1, 8, 2)},
    )
    task = registry.make(s, "token")
    ref = np.log(np.array([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]]], np.float32))
    out = np.log(np.array([[[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]]], np.float32))
    labels = np.array([[0, 1]])
    acc = task.accumulator()
    acc.update({"tok": ref}, {"tok": out}, labels)
    m = acc.result()
    assert m["token_agreement"] == 0.5 and m["accuracy"] == 0.5 and m["ref_accuracy"] == 1.0
    assert m["ref_perplexity"] == pytest.approx(np.exp(-(np.log(0.7) + np.log(0.8)) / 2), rel=1e-5)
    assert m["perplexity_change"] == pytest.approx(m["perplexity"] / m["ref_perplexity"] - 1)
    with pytest.raises(DataError, match="found 5"):
        task.check_labels(np.array([[0, 5]]))


def test_classify_labels_must_be_whole_class_ids_in_range():
    s = sig((TensorSpec("p", "float32", (BATCH, 10), kind="probs", role="class_scores"),))
    task = registry.make(s, "classify")
    for bad, msg in (
        (np.array([99]), "found 99"),
        (np.array([3.7]), "whole numbers"),
        (np.array([np.nan]), "whole"),
    ):
        with pytest.raises(DataError, match=msg):
            task.check_labels(bad)
    task.check_labels(np.array([0, 9]))


def test_raw_rows_are_judged_by_relative_error():
    s = sig((TensorSpec("y", "float32", (BATCH, 4), kind="raw", role="aux"),))
    task = registry.make(s, "raw")
    ref = np.ones((2, 4), np.float32)
    acc = ParityAccumulator(s, criteria_for(task, "int8"), "x", "int8", task=task)
    acc.update({"y": ref}, {"y": ref * 1.5})
    res = acc.result()
    assert (
        not res.passed
        and res.checks == ("rel_error",)
        and "rel_error 50.00% (gate <= 10.00%)" in res.reasons[0]
    )


def test_a_row_with_nothing_to_judge_fails():
    """int8 has no elementwise check; with every gate switched off, nothing could fail: the row fails."""
    s, task = _detect()
    boxes = np.zeros((1, 3, 4), np.float32)
    out = {"boxes": boxes, "scores": np.full((1, 3, 2), 0.9, np.float32)}
    acc = ParityAccumulator(s, Criteria(None, None, {}), "x", "int8", task=task)
    acc.update(out, out)
    res = acc.result()
    assert not res.passed and "nothing could be judged" in res.reasons[0]


def test_gate_overrides_by_name_and_precision():
    s, task = _detect()
    g = task.gates_for("int8", {"matched_recall": 0.9, "fp32.mean_iou": 0.1, "int8.map50_drop": None})
    assert g["matched_recall"] == 0.9 and "map50_drop" not in g and g["mean_iou"] == 0.85
    with pytest.raises(ConfigError, match="no gate 'miou_drop'"):
        task.gates_for("int8", {"miou_drop": 0.01})
    with pytest.raises(ConfigError, match="takes no such parameter"):
        registry.make(s, "detect", {"nms": 0.3})
    with pytest.raises(ConfigError, match="choose one of xyxy"):
        registry.make(s, "detect", {"box_format": "yxyx"})


def test_task_inference_follows_the_classifier_rule():
    cls = [{"name": "p", "shape": (2, 10), "dtype": "float32"}]
    assert registry.infer(cls, [{"name": "x", "shape": (2, 3, 8, 8), "dtype": "float32"}]) == "classify"
    assert registry.infer(cls, [{"name": "ids", "shape": (2, 16), "dtype": "int64"}]) == "text-classify"
    seg = [{"name": "m", "shape": (2, 5, 8, 8), "dtype": "float32"}]
    assert registry.infer(seg, []) is None  # asked for, not guessed
    assert registry.infer([{**seg[0], "role": "mask_logits"}], []) == "segment"
