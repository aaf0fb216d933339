"""Boxes and label maps follow the image steps' geometry: checked against actually preprocessing an
image with the box (or the mask) drawn into it."""

from __future__ import annotations

import numpy as np
import pytest

from edgeport.errors import ConfigError, InputError
from edgeport.preprocessing import Preprocessing, from_preset

STEPS = {
    "shorter+crop": [
        {"op": "decode", "mode": "L"},
        {"op": "resize", "size": 48, "mode": "shorter"},
        {"op": "center_crop", "size": [40, 40]},
    ],
    "exact": [{"op": "decode", "mode": "L"}, {"op": "resize", "size": [30, 50], "mode": "exact"}],
    "crop-pads": [{"op": "decode", "mode": "L"}, {"op": "center_crop", "size": [90, 140]}],
    "upscale+crop": [
        {"op": "decode", "mode": "L"},
        {"op": "resize", "size": 160, "mode": "shorter"},
        {"op": "center_crop", "size": [128, 96]},
    ],
}
SIZES = [(60, 100), (100, 60), (81, 81)]


def pre_of(name) -> Preprocessing:
    return Preprocessing("image", tuple(STEPS[name]), None)


def drawn(h, w, box) -> np.ndarray:
    img = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img


def bright_box(x: np.ndarray) -> np.ndarray:
    """xyxy (pixel edges) of the pixels above half brightness."""
    ys, xs = np.nonzero(x > 127.5)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


@pytest.mark.parametrize("steps", list(STEPS))
@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_boxes_land_where_the_drawn_box_does(steps, hw):
    h, w = hw
    pre = pre_of(steps)
    box = (w // 4, h // 3, w // 4 + w // 2, h // 3 + h // 3)  # well inside the crop
    out = pre.apply(drawn(h, w, box)[None])[0, 0]
    mapped, keep = pre.geometry(h, w).boxes([box])
    assert keep.tolist() == [True] and out.shape == (pre.geometry(h, w).out_h, pre.geometry(h, w).out_w)
    # bilinear resampling blurs an edge by at most one output pixel either way
    np.testing.assert_allclose(mapped[0], bright_box(out), atol=1.01, err_msg=f"{steps} {hw}")


def test_boxes_are_clipped_and_empty_ones_dropped():
    pre = pre_of("shorter+crop")  # 60x100 -> 48x80 -> crop 40x40 from x 20..60
    g = pre.geometry(60, 100)
    assert (g.sx, g.sy, g.dx, g.dy) == pytest.approx((0.8, 0.8, -20.0, -4.0))
    boxes, keep = g.boxes([[0, 0, 10, 10], [10, 10, 90, 50], [95, 0, 100, 60]])
    assert keep.tolist() == [False, True, False]  # left of the crop, inside, right of the crop
    np.testing.assert_allclose(boxes, [[0.0, 4.0, 40.0, 36.0]])


@pytest.mark.parametrize("steps", list(STEPS))
@pytest.mark.parametrize("hw", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_label_maps_follow_the_image(steps, hw):
    h, w = hw
    pre = pre_of(steps)
    box = (w // 5, h // 4, w // 5 + w // 2, h // 4 + h // 2)
    mask = np.zeros((h, w), np.uint8)
    mask[box[1] : box[3], box[0] : box[2]] = 3
    out_img = pre.apply(drawn(h, w, box)[None])[0, 0]
    out_mask = pre.apply_mask(mask)
    assert out_mask.shape == out_img.shape and out_mask.dtype == np.uint8
    assert set(np.unique(out_mask)) <= {0, 3, 255}  # nearest: never a blend of classes
    inside = out_mask == 3
    bright = out_img > 127.5
    # they disagree only on the one-pixel rim bilinear blurs
    assert np.count_nonzero(inside != bright) <= 2 * (out_img.shape[0] + out_img.shape[1])
    np.testing.assert_allclose(bright_box(inside * 255.0), bright_box(out_img), atol=1.01)


def test_mask_padding_is_ignore_and_never_a_class():
    pre = pre_of("crop-pads")  # 60x100 padded to 90x140
    out = pre.apply_mask(np.ones((60, 100), np.uint8))
    assert out.shape == (90, 140) and out[0, 0] == 255 and out[45, 70] == 1
    assert np.count_nonzero(out == 1) == 60 * 100


def test_digit_fitting_has_no_geometry_and_masks_are_checked():
    with pytest.raises(ConfigError, match="fits each digit"):
        from_preset("mnist").geometry(28, 28)
    with pytest.raises(InputError, match="uint8"):
        pre_of("exact").apply_mask(np.zeros((4, 4), np.int32))
