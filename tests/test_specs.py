"""Tensor specs: every input checked before a backend sees it, every output after; nothing reshaped."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.errors import InputError, OutputError
from edgeport.specs import BATCH, Dim, Signature, TensorSpec, random_feeds


def sig() -> Signature:
    return Signature(
        (
            TensorSpec("image", "float32", (BATCH, 3, 8, 8), layout="NCHW"),
            TensorSpec("ids", "int64", (BATCH, "seq")),
        ),
        (
            TensorSpec("logits", "float32", (BATCH, 4), kind="logits"),
            TensorSpec("tokens", "float32", (BATCH, "seq", 2), kind="raw"),
        ),
        {BATCH: Dim(BATCH, 1, 16), "seq": Dim("seq", 2, 5)},
    )


def feeds(n=2, seq=3):
    return {"image": np.zeros((n, 3, 8, 8), np.float32), "ids": np.zeros((n, seq), np.int64)}


def test_good_feeds_bind_every_dim():
    checked, bound = sig().check_feeds(feeds(4, 5))
    assert bound == {"batch": 4, "seq": 5} and checked["ids"].dtype == np.int64


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda f: f.pop("ids"), "missing input.*'ids'"),
        (lambda f: f.update(extra=np.zeros(2)), "unknown input.*'extra'"),
        (lambda f: f.update(ids=f["ids"].astype(np.int32)), "'ids' has dtype int32"),
        (lambda f: f.update(image=np.zeros((2, 8, 8, 3), np.uint8)), "image.*uint8.*predict"),
        (lambda f: f.update(image=np.zeros((2, 8, 8, 3), np.float32)), "axis 1 must be 3"),
        (lambda f: f.update(ids=np.zeros((2, 9), np.int64)), "seq = 9 is outside 2..5"),
        (lambda f: f.update(ids=np.zeros((3, 3), np.int64)), "batch is 3.*must agree"),
        (
            lambda f: f.update(image=np.zeros((17, 3, 8, 8), np.float32), ids=np.zeros((17, 3), np.int64)),
            "outside 1..16",
        ),
        (lambda f: f.update(image=np.full((2, 3, 8, 8), np.inf, np.float32)), "NaN or infinite"),
        (lambda f: f.update(image=[[1.0]]), "numpy array"),
    ],
)
def test_bad_feeds_name_the_tensor(mutate, match):
    f = feeds()
    mutate(f)
    with pytest.raises(InputError, match=match):
        sig().check_feeds(f, "runner")


def test_one_array_only_for_one_input():
    with pytest.raises(InputError, match="pass a dict"):
        sig().check_feeds(np.zeros((2, 3, 8, 8), np.float32))


def test_masked_and_read_only_arrays():
    """A masked array's hidden NaN is seen (not trusted to the mask); a read-only array is accepted (copied)."""
    f = feeds()
    img = np.ma.masked_array(np.zeros((2, 3, 8, 8), np.float32), mask=False)
    img.data[0, 0, 0, 0] = np.nan
    img.mask = np.isnan(img.data)
    f["image"] = img
    with pytest.raises(InputError, match="NaN"):
        sig().check_feeds(f)
    ro = np.frombuffer(np.zeros(2 * 3 * 8 * 8, np.float32).tobytes(), np.float32).reshape(2, 3, 8, 8)
    assert not ro.flags.writeable
    checked, _ = sig().check_feeds({"image": ro, "ids": np.zeros((2, 3), np.int64)})
    assert checked["image"].flags.writeable and checked["image"].flags.c_contiguous


@pytest.mark.parametrize(
    "outs, match",
    [
        ({"logits": np.zeros((2, 4), np.float32)}, "no output 'tokens'"),
        (
            {"logits": np.zeros((3, 4), np.float32), "tokens": np.zeros((2, 3, 2), np.float32)},
            "axis 0 is 3, expected 2",
        ),
        ({"logits": np.zeros((2, 5), np.float32), "tokens": np.zeros((2, 3, 2), np.float32)}, "axis 1 is 5"),
        (
            {"logits": np.zeros((2, 4), np.float64), "tokens": np.zeros((2, 3, 2), np.float32)},
            "dtype float64",
        ),
        ({"logits": np.zeros((2, 4, 1), np.float32), "tokens": np.zeros((2, 3, 2), np.float32)}, "shape"),
        (
            {"logits": np.zeros((2, 4), np.float32), "tokens": np.zeros((2, 4, 2), np.float32)},
            "axis 1 is 4, expected 3",
        ),
        ({"logits": np.full((2, 4), np.nan, np.float32), "tokens": np.zeros((2, 3, 2), np.float32)}, "NaN"),
        ({"logits": [[0.0] * 4] * 2, "tokens": np.zeros((2, 3, 2), np.float32)}, "expected an array"),
    ],
)
def test_outputs_are_checked(outs, match):
    _, bound = sig().check_feeds(feeds(2, 3))
    with pytest.raises(OutputError, match=match):
        sig().check_outputs(outs, bound, "backend")


def test_random_feeds_follow_the_specs():
    f = random_feeds(sig(), 3)
    assert f["image"].shape == (3, 3, 8, 8) and f["ids"].shape == (3, 2) and f["ids"].dtype == np.int64
    sig().check_feeds(f)
