"""The coco:, segfolder: and wavfolder: sources stream the right feeds and labels in the task's label form;
folders with link loops list each file once; bad input is one line with nothing written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from data_writers import write_coco, write_segfolder, write_wav, write_wavfolder
from edgeport.audio import AudioPreprocessing
from edgeport.audio_steps import kws_steps
from edgeport.errors import ConfigError, DataError
from edgeport.preprocessing import Preprocessing
from edgeport.sources.data import REAL_LABELLED, open_source, plan_data
from edgeport.specs import BATCH, Dim, Signature, TensorSpec


def image_signature(h=32, w=32, classes=3, seg=False) -> Signature:
    x = TensorSpec(name="image", dtype="float32", shape=(BATCH, 3, h, w), layout="NCHW")
    if seg:
        y = TensorSpec(
            name="masks", dtype="float32", shape=(BATCH, classes, h, w), kind="raw", role="mask_logits"
        )
    else:
        y = TensorSpec(name="logits", dtype="float32", shape=(BATCH, classes), kind="logits")
    return Signature((x,), (y,), {BATCH: Dim(BATCH, 1, 64)})


def pre(size=32, resize=40) -> Preprocessing:
    return Preprocessing(
        "image",
        (
            {"op": "decode", "mode": "RGB"},
            {"op": "resize", "size": resize, "mode": "shorter"},
            {"op": "center_crop", "size": [size, size]},
            {"op": "scale", "factor": 1 / 255},
            {"op": "layout", "layout": "NCHW"},
        ),
    )


def kws(name="audio") -> AudioPreprocessing:
    return AudioPreprocessing(name, tuple(kws_steps()), "kws")


def audio_signature() -> Signature:
    x = TensorSpec(name="audio", dtype="float32", shape=(BATCH, 1, 40, 101))
    y = TensorSpec(name="logits", dtype="float32", shape=(BATCH, 3), kind="logits")
    return Signature((x,), (y,), {BATCH: Dim(BATCH, 1, 64)})


# --------------------------------------------------------------------------- COCO


def test_coco_streams_images_and_boxes_in_model_input_pixels(tmp_path):
    path, data = write_coco(tmp_path / "coco", n=4, size=(48, 64))
    src = open_source(f"coco:{path}", signature=image_signature(), preprocessing=pre())
    assert (
        src.classes == ["cat", "dog"] and len(src) == 4 and src.evidence == REAL_LABELLED
    )  # sorted by id: 3, 7
    assert src.label_kind == "boxes" and src.class_labels() is None
    feeds, labels = next(src.batches(3))
    assert feeds["image"].shape == (3, 3, 32, 32) and labels.dtype == object and len(labels) == 3
    # 48x64 -> shorter side 40: 40x53 (scale 40/48 and 53/64), crop 32x32 at top 4, left 10
    g = pre().geometry(48, 64)
    sx, sy = 53 / 64, 40 / 48
    assert (g.sx, g.sy, g.dx, g.dy) == pytest.approx((sx, sy, -10.0, -4.0))
    dog = [4 * sx - 10, 6 * sy - 4, 24 * sx - 10, 16 * sy - 4]  # [4, 6, 20, 10] xywh, clipped at 0
    cat = [30 * sx - 10, 20 * sy - 4, 60 * sx - 10, 45 * sy - 4]
    first = labels[0]
    assert first["classes"].tolist() == [1, 0] and first["boxes"].dtype == np.float64
    np.testing.assert_allclose(first["boxes"], [[0.0, dog[1], dog[2], dog[3]], [cat[0], cat[1], 32.0, 32.0]])
    assert labels[1]["classes"].tolist() == [1]  # the second image's cat box is a crowd box: skipped
    from edgeport.tasks.detect import Detect

    det = Signature(
        image_signature().inputs,
        (
            TensorSpec(name="boxes", dtype="float32", shape=(BATCH, 5, 4), kind="raw", role="boxes"),
            TensorSpec(name="scores", dtype="float32", shape=(BATCH, 5, 2), kind="raw", role="scores"),
        ),
        {BATCH: Dim(BATCH, 1, 64)},
    )
    Detect(det).check_labels(labels)  # the lead's contract: the detect task accepts them as they are


def test_coco_identity_records_the_annotations_and_files(tmp_path):
    path, _ = write_coco(tmp_path / "coco", n=12)
    plan = plan_data(
        signature=image_signature(), preprocessing=pre(), data=f"coco:{path}", calibration_size=2
    )
    cal = plan.calibration.identity()
    assert cal["annotations_sha256"] and cal["files"] and len(cal["sha256"]) == 64
    assert not set(cal["files"]) & set(plan.eval.identity()["files"]) and len(plan.eval) == 10


BAD_COCO = {
    "box outside": (
        lambda d: d["annotations"][0].update(bbox=[50, 6, 20, 10]),
        "lies outside image 'img0.png'",
    ),
    "no categories": (lambda d: d.pop("categories"), "'categories'"),
    "negative box": (lambda d: d["annotations"][1].update(bbox=[1, 1, -3, 2]), "w, h >= 0"),
    "unknown image": (lambda d: d["annotations"][1].update(image_id=999), "image_id"),
    "missing file": (lambda d: d["images"][2].update(file_name="gone.png"), "'gone.png'"),
    "escaping name": (lambda d: d["images"][2].update(file_name="../img0.png"), "relative path"),
}


@pytest.mark.parametrize("case", list(BAD_COCO))
def test_bad_coco_annotations_are_one_data_error(tmp_path, case):
    path, data = write_coco(tmp_path / "coco", n=3)
    change, match = BAD_COCO[case]
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as exc:
        open_source(f"coco:{path}", signature=image_signature(), preprocessing=pre())
    assert match in str(exc.value) and "\n" not in str(exc.value)


def test_coco_that_is_not_json_and_a_size_that_lies(tmp_path):
    path, data = write_coco(tmp_path / "coco", n=2)
    (tmp_path / "bad.json").write_text('{"images": [')
    with pytest.raises(DataError, match="not valid JSON"):
        open_source(f"coco:{tmp_path / 'bad.json'}", signature=image_signature(), preprocessing=pre())
    data["images"][1]["width"] = 100  # the PNG is 64 wide
    path.write_text(json.dumps(data))
    src = open_source(f"coco:{path}", signature=image_signature(), preprocessing=pre())
    with pytest.raises(DataError, match="decodes to 64x48 but the annotations say 100x48"):
        next(src.batches(2))


def test_coco_images_beside_the_json_and_link_loops_in_names(tmp_path):
    path, data = write_coco(tmp_path / "coco", n=2, folder=".")
    assert len(open_source(f"coco:{path}", signature=image_signature(), preprocessing=pre())) == 2
    os.symlink(tmp_path / "coco", tmp_path / "coco" / "loop")
    data["images"][1]["file_name"] = "loop/loop/img1.png"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="passes through the folder 'loop' twice"):
        open_source(f"coco:{path}", signature=image_signature(), preprocessing=pre())


# --------------------------------------------------------------------------- segmentation folders


def test_segfolder_streams_images_and_label_maps_through_the_same_geometry(tmp_path):
    root = write_segfolder(tmp_path / "seg", n=5, size=(40, 56))
    sig = image_signature(seg=True)
    src = open_source(f"segfolder:{root}", signature=sig, preprocessing=pre())
    assert src.classes == ["bg", "road", "car"] and src.label_kind == "mask" and len(src) == 5
    feeds, masks = next(src.batches(4))
    assert feeds["image"].shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32) and masks.dtype == np.int64
    raw = np.asarray(Image.open(root / "masks" / "s1.png"))
    np.testing.assert_array_equal(masks[1], pre().apply_mask(raw))
    assert set(np.unique(masks)) <= {0, 1, 2, 255}
    # the class-2 rectangle shows up where the image's red channel (mask * 60) does
    red = feeds["image"][1, 0] * 255
    np.testing.assert_array_equal(masks[1] == 2, np.abs(red - 120) < 30)
    from edgeport.tasks.segment import Segment

    Segment(sig).check_labels(masks)
    more = write_segfolder(tmp_path / "more", n=13, size=(40, 56))
    plan = plan_data(signature=sig, preprocessing=pre(), data=f"segfolder:{more}", calibration_size=3)
    assert len(plan.calibration) == 3 and len(plan.eval) == 10  # a plain seeded split of label maps


BAD_SEG = {
    "missing mask": (lambda r: (r / "masks" / "s2.png").unlink(), "images/s2.png has no mask masks/s2.png"),
    "class beyond": (
        lambda r: Image.fromarray(np.full((40, 56), 7, np.uint8)).save(r / "masks" / "s0.png"),
        "masks/s0.png holds class id 7, but there are 3 classes",
    ),  # fmt: skip
    "rgb mask": (
        lambda r: Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(r / "masks" / "s0.png"),
        "must be 8-bit single-channel",
    ),  # fmt: skip
    "mask size": (
        lambda r: Image.fromarray(np.zeros((8, 8), np.uint8)).save(r / "masks" / "s0.png"),
        "is 8x8 but its image is 56x40",
    ),  # fmt: skip
    "classes.txt vs model": (
        lambda r: (r / "classes.txt").write_text("a\nb\n"),
        "lists 2 classes but the model",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SEG))
def test_bad_segmentation_folders_are_one_data_error(tmp_path, case):
    root = write_segfolder(tmp_path / "seg", n=3, size=(40, 56))
    change, match = BAD_SEG[case]
    change(root)
    with pytest.raises(DataError) as exc:
        src = open_source(f"segfolder:{root}", signature=image_signature(seg=True), preprocessing=pre())
        next(src.batches(3))
    assert match in str(exc.value) and "\n" not in str(exc.value)


def test_label_maps_are_checked_against_the_model_without_classes_txt(tmp_path):
    root = write_segfolder(tmp_path / "seg", n=2, classes=None)
    src = open_source(
        f"segfolder:{root}", signature=image_signature(seg=True, classes=2), preprocessing=pre()
    )
    assert src.classes is None and src.num_classes == 2
    with pytest.raises(DataError, match="holds class id 2, but there are 2 classes"):
        next(src.batches(2))


# --------------------------------------------------------------------------- WAV folders


def test_wavfolder_streams_features_and_class_labels(tmp_path):
    root = write_wavfolder(tmp_path / "speech", per_class=4)
    src = open_source(f"wavfolder:{root}", signature=audio_signature(), preprocessing=kws())
    assert src.classes == ["down", "go", "up"] and len(src) == 12 and src.label_kind == "class"
    feeds, labels = next(src.batches(12))
    assert feeds["audio"].shape == (12, 1, 40, 101) and feeds["audio"].dtype == np.float32
    assert labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # each class is a tone of 400 Hz x (class + 1): louder mel bands rise with the class
    peak = feeds["audio"][:, 0, :, 30:70].mean(axis=2).argmax(axis=1)
    assert (peak[:4].max() < peak[4:8].min()) and (peak[4:8].max() < peak[8:].min())
    direct = kws().load([src.files[5]])
    np.testing.assert_allclose(feeds["audio"][5], direct[0], rtol=1e-5, atol=1e-5)
    plan = plan_data(
        signature=audio_signature(), preprocessing=kws(), data=f"wavfolder:{root}", calibration_size=2
    )
    assert sorted(plan.calibration.labels_array().tolist()) != [0, 0]  # class-balanced
    assert plan.calibration.identity()["sample_rate"] == 16000


def test_wavfolder_needs_audio_steps_and_good_files(tmp_path):
    root = write_wavfolder(tmp_path / "speech", per_class=1)
    with pytest.raises(ConfigError, match="no input with audio steps"):
        open_source(f"wavfolder:{root}", signature=image_signature(), preprocessing=pre())
    write_wav(root / "go" / "bad.wav", np.zeros((10, 3)), 16000, channels=3)
    with pytest.raises(DataError, match="bad.wav has 3 channels"):
        open_source(f"wavfolder:{root}", signature=audio_signature(), preprocessing=kws())


# --------------------------------------------------------------------------- link loops


def _loops(folder):
    """Two link loops: one to the folder itself, one from a subfolder back to it."""
    os.symlink(folder, folder / "loop1")
    (folder / "sub").mkdir()
    os.symlink(folder, folder / "sub" / "loop2")


def test_link_loops_neither_multiply_samples_nor_hang(tmp_path):
    """A directory link back up the tree (two of them) leaves every source's file list as it was."""
    from data_writers import write_wavfolder as wavs

    img_root = tmp_path / "img"
    for c in ("a", "b"):
        (img_root / c).mkdir(parents=True)
        for k in range(2):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img_root / c / f"{k}.png")
    seg_root = write_segfolder(tmp_path / "seg", n=2)
    wav_root = wavs(tmp_path / "wav", per_class=2)
    cases = [
        (f"imagefolder:{img_root}", image_signature(), pre(), img_root / "a", 4),
        (f"segfolder:{seg_root}", image_signature(seg=True), pre(), seg_root / "images", 2),
        (f"wavfolder:{wav_root}", audio_signature(), kws(), wav_root / "go", 6),
    ]
    for spec, sig, p, folder, n in cases:
        before = open_source(spec, signature=sig, preprocessing=p).files
        _loops(folder)
        after = open_source(spec, signature=sig, preprocessing=p)
        assert len(after) == n and after.files == before, spec


def test_a_link_to_another_class_still_counts_for_both(tmp_path):
    """Entered once per walk, not once per data set: a class linking another's folder keeps its files."""
    root = tmp_path / "img"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / c / "0.png")
    os.symlink(root / "b", root / "a" / "more")
    src = open_source(f"imagefolder:{root}", signature=image_signature(), preprocessing=pre())
    assert src.labels_array().tolist() == [0, 0, 1]
    tv = pytest.importorskip("torchvision.datasets.folder")
    samples = tv.make_dataset(str(root), {"a": 0, "b": 1}, extensions=(".png",))
    assert [str(f) for f in src.files] == [p for p, _ in samples]  # torchvision's order where it terminates
