"""Data sources and splits: one protocol for MNIST, image folders, npz and synthetic inputs;
calibration never meets the eval verdict; memory bounded by the batch; identities recorded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeport.errors import ConfigError, DataError
from edgeport.preprocessing import from_preset
from edgeport.sources.data import (
    RANDOM,
    REAL_LABELLED,
    REAL_UNLABELLED,
    balanced_positions,
    open_source,
    plan_data,
)
from edgeport.sources.mnist import load_mnist, write_idx
from edgeport.specs import BATCH, Dim, Signature, TensorSpec


def image_signature(c=3, h=16, w=16, name="image") -> Signature:
    spec = TensorSpec(name=name, dtype="float32", shape=(BATCH, c, h, w), layout="NCHW")
    out = TensorSpec(name="logits", dtype="float32", shape=(BATCH, 10), kind="logits")
    return Signature((spec,), (out,), {BATCH: Dim(BATCH, 1, 4096)})


def write_folder(root, n_per_class=6, classes=("cat", "dog", "eel"), size=(20, 16), fmt="PNG"):
    rng = np.random.default_rng(0)
    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for k in range(n_per_class):
            arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            arr[..., i] = 255
            Image.fromarray(arr).save(root / c / f"{k}.{fmt.lower()}", fmt)
    return root


def rgb_pre(size=16):
    from edgeport.preprocessing import build

    return build(input_spec=image_signature(h=size, w=size).inputs[0], resize=size, crop=size)


@pytest.fixture(scope="module")
def mnist(synthetic_mnist):
    return load_mnist(synthetic_mnist, download=False)


def test_balanced_positions_deterministic_and_balanced():
    labels = np.repeat(np.arange(10), 30)
    a, b = balanced_positions(labels, 100, 0), balanced_positions(labels, 100, 0)
    assert np.array_equal(a, b) and not np.array_equal(a, balanced_positions(labels, 100, 1))
    counts = np.bincount(labels[a], minlength=10)
    assert counts.tolist() == [10] * 10
    uneven = np.bincount(labels[balanced_positions(labels, 57, 0)], minlength=10)
    assert uneven.max() - uneven.min() <= 1
    with pytest.raises(DataError, match="calibration-size"):
        balanced_positions(labels, 1000, 0)
    with pytest.raises(DataError):
        balanced_positions(None, 5, 0, n=3)


def test_mnist_plan_calibrates_on_train_only(mnist):
    pre = from_preset("mnist")
    sig = image_signature(c=1, h=28, w=28, name="input")
    plan = plan_data(signature=sig, preprocessing=pre, data="mnist", calibration_size=100, mnist=mnist)
    cal = plan.calibration.identity()
    assert cal["split"] == "train" and cal["n"] == 100 and len(cal["file_indices"]) == 100
    assert not set(cal["file_indices"]) & set(mnist.val_indices.tolist())  # never validation...
    assert plan.eval.split == "test" and plan.selection.split == "val"  # ... and test is the verdict
    assert np.bincount(plan.calibration.labels_array(), minlength=10).tolist() == [10] * 10
    again = plan_data(signature=sig, preprocessing=pre, data="mnist", calibration_size=100, mnist=mnist)
    assert again.calibration.identity()["sha256"] == cal["sha256"]  # deterministic, recorded


def test_batches_are_streamed_and_reiterable(mnist):
    src = open_source(
        "mnist:train",
        signature=image_signature(1, 28, 28, "input"),
        preprocessing=from_preset("mnist"),
        mnist=mnist,
    )
    sizes = [len(f["input"]) for f, _ in src.batches(300)]
    assert sizes[:-1] == [300] * (len(sizes) - 1) and sum(sizes) == len(src)
    first = [f["input"] for f, _ in src.batches(300)][0]
    assert first.dtype == np.float32 and first.shape == (300, 1, 28, 28)
    np.testing.assert_array_equal(first, next(iter(src.batches(300)))[0]["input"])


def test_imagefolder_labelled_split_is_disjoint_and_recorded(tmp_path):
    root = write_folder(tmp_path / "photos")
    sig, pre = image_signature(), rgb_pre()
    src = open_source(f"imagefolder:{root}", signature=sig, preprocessing=pre)
    assert src.classes == ["cat", "dog", "eel"] and len(src) == 18 and src.evidence == REAL_LABELLED
    plan = plan_data(signature=sig, preprocessing=pre, data=f"imagefolder:{root}", calibration_size=6)
    cal, ev = plan.calibration.identity(), plan.eval.identity()
    assert not set(cal["files"]) & set(ev["files"]) and len(cal["files"]) + len(ev["files"]) == 18
    assert np.bincount(plan.calibration.labels_array()).tolist() == [2, 2, 2]
    assert len(cal["sha256"]) == 64 and cal["classes"] == ["cat", "dog", "eel"]
    feeds, labels = next(plan.eval.batches(4))
    assert (
        feeds["image"].shape == (4, 3, 16, 16) and feeds["image"].dtype == np.float32 and labels is not None
    )


def test_imagefolder_flat_is_unlabelled(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for k in range(3):
        Image.fromarray(np.full((12, 12, 3), 40 * k, np.uint8)).save(flat / f"{k}.jpg")
    (flat / "notes.txt").write_text("not an image")
    src = open_source(f"imagefolder:{flat}", signature=image_signature(), preprocessing=rgb_pre())
    assert len(src) == 3 and src.labels_array() is None and src.evidence == REAL_UNLABELLED


def test_imagefolder_errors_are_one_line(tmp_path):
    sig, pre = image_signature(), rgb_pre()
    with pytest.raises(DataError, match="folder not found"):
        open_source(f"imagefolder:{tmp_path / 'nope'}", signature=sig, preprocessing=pre)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="hold no images"):
        open_source(f"imagefolder:{tmp_path / 'empty'}", signature=sig, preprocessing=pre)
    with pytest.raises(ConfigError, match="unknown source"):
        open_source("s3://bucket", signature=sig, preprocessing=pre)
    with pytest.raises(DataError, match="too few"):
        plan_data(
            signature=sig,
            preprocessing=pre,
            data=f"imagefolder:{write_folder(tmp_path / 'few', 2)}",
            calibration_size=300,
        )


def test_npz_source_keys_labels_and_dtypes(tmp_path):
    spec_a = TensorSpec(name="a", dtype="float32", shape=(BATCH, 4))
    spec_b = TensorSpec(name="b", dtype="int64", shape=(BATCH, 2))
    out = TensorSpec(name="y", dtype="float32", shape=(BATCH, 3), kind="logits")
    sig = Signature((spec_a, spec_b), (out,), {BATCH: Dim(BATCH, 1, 64)})
    np.savez(
        tmp_path / "ok.npz",
        a=np.ones((10, 4), np.float32),
        b=np.zeros((10, 2), np.int64),
        labels=np.arange(10) % 3,
    )
    src = open_source(f"npz:{tmp_path / 'ok.npz'}", signature=sig)
    feeds, labels = next(src.batches(4))
    assert set(feeds) == {"a", "b"} and feeds["b"].dtype == np.int64 and labels.tolist() == [0, 1, 2, 0]
    np.savez(tmp_path / "bad.npz", a=np.ones((10, 4), np.float64), b=np.zeros((10, 2), np.int64))
    with pytest.raises(DataError, match="float64"):
        open_source(f"npz:{tmp_path / 'bad.npz'}", signature=sig)
    np.savez(tmp_path / "missing.npz", a=np.ones((10, 4), np.float32))
    with pytest.raises(DataError, match="needs"):
        open_source(f"npz:{tmp_path / 'missing.npz'}", signature=sig)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        open_source(f"npz:{tmp_path / 'junk.npz'}", signature=sig)


def test_synthetic_is_seeded_and_marked_weak():
    sig = image_signature()
    a = open_source("synthetic:8", signature=sig, role="eval")
    b = open_source("synthetic:8", signature=sig, role="eval")
    assert a.evidence == RANDOM and "weak evidence" in RANDOM
    np.testing.assert_array_equal(next(a.batches(8))[0]["image"], next(b.batches(8))[0]["image"])
    with pytest.raises(ConfigError):
        open_source("synthetic:0", signature=sig)


def test_explicit_calibration_and_eval_sources(tmp_path):
    sig, pre = image_signature(), rgb_pre()
    cal_root, ev_root = write_folder(tmp_path / "cal"), write_folder(tmp_path / "ev", 3)
    plan = plan_data(
        signature=sig,
        preprocessing=pre,
        calibration_data=f"imagefolder:{cal_root}",
        eval_data=f"imagefolder:{ev_root}",
        calibration_size=9,
    )
    assert len(plan.calibration) == 9 and len(plan.eval) == 9
    assert plan.identity()["calibration"]["root"] == str(cal_root)
    with pytest.raises(ConfigError, match="go together"):
        plan_data(signature=sig, preprocessing=pre, calibration_data=f"imagefolder:{cal_root}")
    with pytest.raises(ConfigError, match="not both"):
        plan_data(
            signature=sig,
            preprocessing=pre,
            data="synthetic",
            eval_data=f"imagefolder:{ev_root}",
            calibration_data=f"imagefolder:{cal_root}",
        )


def test_onnx_and_nncf_adapters_read_the_same_samples(mnist):
    from edgeport.formats.onnx import _reader, even_batch
    from edgeport.formats.openvino import _Samples

    pre = from_preset("mnist")
    plan = plan_data(
        signature=image_signature(1, 28, 28, "input"),
        preprocessing=pre,
        data="mnist",
        calibration_size=100,
        mnist=mnist,
    )
    ref = np.concatenate([f["input"] for f, _ in plan.calibration.batches(32)])
    reader = _reader(plan.calibration, 32)
    via_ort = []
    while (item := reader.get_next()) is not None:
        via_ort.append(item["input"])
    assert even_batch(100, 32) == 25 and {len(b) for b in via_ort} == {
        25
    }  # ORT's histograms need equal batches
    reader.rewind()
    assert reader.get_next() is not None  # rewindable
    via_nncf = np.concatenate([s["input"] for s in _Samples(plan.calibration, 32)])
    for got in (np.concatenate(via_ort), via_nncf):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda x, y: (x, y[:-5]), "labels"),  # wrong counts
        (lambda x, y: (x, np.where(y == 3, 12, y)), "0..9"),  # labels out of range
    ],
    ids=["counts", "labels"],
)
def test_mnist_files_are_validated(tmp_path, corrupt, match, synthetic_mnist, capsys):
    """MNIST with wrong counts or labels outside 0..9: one-line DataError in train and in verify."""
    from edgeport.cli import main

    good = load_mnist(synthetic_mnist, download=False)
    x = np.concatenate([good.train_images, good.val_images])
    y = np.concatenate([good.train_labels, good.val_labels]).astype(np.uint8)
    root = tmp_path / "bad"
    write_idx(root, *corrupt(x, y), train=True)
    write_idx(root, good.test_images, good.test_labels.astype(np.uint8), train=False)
    with pytest.raises(DataError, match=match):
        load_mnist(root, download=False)
    assert main(["train", "--data-dir", str(root), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and match.split(".")[0] in err


def test_report_samples_show_every_class_of_a_sorted_folder(tmp_path):
    root = write_folder(tmp_path / "photos")  # files listed class by class: cat..., dog..., eel...
    src = open_source(f"imagefolder:{root}", signature=image_signature(), preprocessing=rgb_pre())
    images, labels = src.display_images(6)
    assert len(images) == 6 and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert all(im.dtype == np.uint8 and im.ndim == 3 for im in images)
    images, labels = src.subset([0, 1, 2], "eval").display_images(16)  # fewer than asked: all of them
    assert labels.tolist() == [0, 0, 0] and len(images) == 3
