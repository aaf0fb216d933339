"""Each way parity can fail, made to happen: tolerance, non-finite values, shape, top-1 agreement,
accuracy drop; and the labelled / unlabelled agreement thresholds of int8."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.runtime.parity import compare
from edgeport.specs import Signature, TensorSpec
from edgeport.tasks import classify, registry


def _sig():
    return Signature(
        (TensorSpec("x", "float32", ("batch", 4)),),
        (TensorSpec("logits", "float32", ("batch", 3), kind="logits", role="class_scores"),),
        {},
    )


def _task():
    return registry.make(_sig(), "classify")


def _logits(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, (n, 3)).astype(np.float32)
    y[np.arange(n), rng.integers(0, 3, n)] += 3.0  # a clear winner per row
    return y


def _flip(y, k):
    """``y`` with the top-1 class of the first ``k`` rows moved to the next class."""
    out = y.copy()
    top = out.argmax(1)
    for i in range(k):
        out[i, (top[i] + 1) % 3] = out[i].max() + 1.0
    return out


def test_identical_outputs_pass():
    y = _logits()
    assert compare("a", _sig(), {"logits": y}, {"logits": y.copy()}, "fp32", task=_task()).passed


def test_tolerance_trips():
    y = _logits()
    res = compare("a", _sig(), {"logits": y}, {"logits": y + 1e-3}, "fp32", task=_task())
    assert not res.passed and any("exceed" in r for r in res.reasons)


def test_non_finite_values_trip():
    y = _logits()
    bad = y.copy()
    bad[3, 1] = np.nan
    res = compare("a", _sig(), {"logits": y}, {"logits": bad}, "int8", task=_task())
    assert not res.passed and any("1 non-finite values" in r for r in res.reasons)


def test_shape_trips():
    y = _logits()
    res = compare("a", _sig(), {"logits": y}, {"logits": y[:, :2]}, "int8", task=_task())
    assert not res.passed and any("shape [400, 2] != reference [400, 3]" in r for r in res.reasons)


def test_agreement_trips_without_labels_at_the_strict_threshold():
    y = _logits()
    gate = classify.GATES[0].defaults["int8"]
    k = int(len(y) * (1 - gate)) + 2  # just past the gate: 1% flipped
    res = compare("a", _sig(), {"logits": y}, {"logits": _flip(y, k)}, "int8", task=_task())
    assert not res.passed and any(r.startswith("agreement ") for r in res.reasons), res.reasons
    assert compare("a", _sig(), {"logits": y}, {"logits": _flip(y, 1)}, "int8", task=_task()).passed


def test_with_labels_accuracy_decides_and_agreement_is_a_floor():
    y = _logits()
    labels = y.argmax(1)  # the reference is right everywhere
    floor = classify.GATES[0].labelled["int8"]
    budget = classify.GATES[1].defaults["int8"]
    within = int(len(y) * budget) - 1  # flips cost accuracy: just inside the drop budget
    res = compare(
        "a", _sig(), {"logits": y}, {"logits": _flip(y, within)}, "int8", task=_task(), labels=labels
    )
    assert res.passed, res.reasons  # 99.5% agreement would have refused it; labels say it holds
    past = int(len(y) * budget) + 2
    res = compare("a", _sig(), {"logits": y}, {"logits": _flip(y, past)}, "int8", task=_task(), labels=labels)
    assert not res.passed and any(r.startswith("accuracy_drop ") for r in res.reasons), res.reasons
    # flips that cancel out in accuracy still trip the agreement floor
    swap = _flip(y, int(len(y) * (1 - floor)) + 4)
    wrong_labels = labels.copy()
    n = int(len(y) * (1 - floor)) + 4
    wrong_labels[: n // 2] = swap[: n // 2].argmax(1)  # half the flips "fix" a label
    res = compare("a", _sig(), {"logits": y}, {"logits": swap}, "int8", task=_task(), labels=wrong_labels)
    assert any("with labels" in r for r in res.reasons), res.reasons


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_user_gate_replaces_both_agreement_thresholds(precision):
    t = _task()
    g = t.gates_for(precision, {f"{precision}.agreement": 0.5})
    assert g["agreement"] == 0.5 and "agreement@labelled" not in g


def _acc(precision="fp32"):
    from edgeport.runtime.parity import ParityAccumulator, criteria_for

    return ParityAccumulator(_sig(), criteria_for(_task(), precision), "a", precision, task=_task())


def test_edge_rows_get_the_looser_bound_and_real_rows_do_not():
    """An all-zero image is outside the data: fp32 rounding may differ there by up to EDGE_TOLERANCE_FACTOR
    times the bound; the same error on a real row fails, and a larger one on an edge row fails too."""
    from edgeport.runtime.parity import EDGE_TOLERANCE_FACTOR

    y = _logits(8)
    scale = max(1.0, float(np.abs(y).max()))
    edge = np.arange(8) >= 6
    err = 3e-5 * scale  # 3x the fp32 bound (1e-5 * scale + 1e-5 * |ref|) at most, well inside 10x
    assert EDGE_TOLERANCE_FACTOR >= 10

    out = y.copy()
    out[6:] += err
    acc = _acc()
    acc.update({"logits": y}, {"logits": out}, edge=edge)
    assert acc.result().passed

    out = y.copy()
    out[0] += err  # a real row
    acc = _acc()
    acc.update({"logits": y}, {"logits": out}, edge=edge)
    res = acc.result()
    assert (
        not res.passed and "exceed" in res.reasons[0] and "0 of them in the 2 edge inputs" in res.reasons[0]
    )

    out = y.copy()
    out[7] += 30 * 2e-5 * scale  # past 10x on an edge row
    acc = _acc()
    acc.update({"logits": y}, {"logits": out}, edge=edge)
    res = acc.result()
    assert not res.passed and "3 of them in the 2 edge inputs" in res.reasons[0], res.reasons


def test_edge_rows_stay_out_of_the_task_metrics():
    """A flipped top-1 on an edge input (noise has no right answer) does not count against agreement; on a
    real row it does, and a NaN on an edge row still fails."""
    y = _logits(10)
    flipped = _flip(y, 10)
    edge = np.arange(10) >= 8
    out = y.copy()
    out[8:] = flipped[8:]
    acc = _acc("int8")
    acc.update({"logits": y}, {"logits": out}, edge=edge)
    res = acc.result()
    assert res.passed and res.metrics["agreement"] == 1.0 and res.n == 10

    out = y.copy()
    out[:1] = flipped[:1]
    acc = _acc("int8")
    acc.update({"logits": y}, {"logits": out}, edge=edge)
    assert not acc.result().passed

    out = y.copy()
    out[9, 0] = np.nan
    acc = _acc("int8")
    acc.update({"logits": y}, {"logits": out}, edge=edge)
    res = acc.result()
    assert not res.passed and any("non-finite" in r for r in res.reasons)
