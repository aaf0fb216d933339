"""The calibration set: deterministic, class-balanced, training split only, streamed; adapters agree."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.calibration.adapters import nncf_dataset, ort_reader, torch_batches
from edgeport.calibration.dataset import CalibrationSet, balanced_positions
from edgeport.config import CalibrationConfig
from edgeport.data import load_mnist
from edgeport.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def data(synthetic_mnist):
    return load_mnist(synthetic_mnist, download=False)


def _set(data, **kw) -> CalibrationSet:
    return CalibrationSet.from_data(data, CalibrationConfig(**{"size": 100, "batch_size": 32, **kw}))


def test_deterministic(data):
    a, b = _set(data), _set(data)
    assert np.array_equal(a.indices, b.indices)
    assert a.sha256() == b.sha256()
    c = _set(data, seed=1)
    assert not np.array_equal(a.indices, c.indices)
    assert a.sha256() != c.sha256()


def test_class_balanced(data):
    counts = _set(data).class_counts()
    assert counts == {str(c): 10 for c in range(10)}, counts
    # Uneven sizes: classes differ by at most one image.
    assert (
        max(_set(data, size=57).class_counts().values()) - min(_set(data, size=57).class_counts().values())
        <= 1
    )


def test_training_split_only(data):
    cs = _set(data, size=len(data.train_labels))  # every training image, so any leak would show
    assert set(cs.indices.tolist()) == set(data.train_indices.tolist())
    assert not set(cs.indices.tolist()) & set(data.val_indices.tolist())
    # Indices are positions in the original training file: the images match it.
    assert np.array_equal(data.train_images[cs.positions], next(cs.raw_batches(len(cs))))


def test_streamed_sized_reiterable(data):
    cs = _set(data)
    batches = list(cs)
    assert len(cs) == 100 and cs.num_batches == 4 == len(batches)
    assert [len(b) for b in batches] == [32, 32, 32, 4]
    assert batches[0].dtype == np.float32 and batches[0].shape[1:] == (1, 28, 28)
    assert all(np.array_equal(x, y) for x, y in zip(batches, cs, strict=True))  # second pass, same data


def test_manifest_record(data):
    rec = _set(data).to_manifest("minmax")
    assert rec["size"] == 100 and rec["method"] == "minmax" and rec["split"] == "train"
    assert len(rec["indices"]) == 100 and len(rec["sha256"]) == 64
    assert sum(rec["class_counts"].values()) == 100


def test_too_large_or_invalid(data):
    with pytest.raises(DataError, match="calibration-size"):
        _set(data, size=10_000)
    with pytest.raises(ConfigError):
        _set(data, size=5)
    with pytest.raises(DataError):
        balanced_positions(np.zeros(3), 4, 0)


def test_adapters_yield_the_same_images(data):
    cs = _set(data)
    ref = np.concatenate(list(cs))
    reader = ort_reader(cs, "input")
    via_ort = []
    while (item := reader.get_next()) is not None:
        via_ort.append(item["input"])
    reader.rewind()
    assert reader.get_next() is not None  # rewindable
    via_nncf = np.concatenate(list(nncf_dataset(cs).get_inference_data()))
    via_torch = np.concatenate([t.numpy() for t in torch_batches(cs)])
    for got in (np.concatenate(via_ort), via_nncf, via_torch):
        assert np.array_equal(got, ref)
