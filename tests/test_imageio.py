"""Image loading: any PNG/JPEG -> MNIST-style uint8 [28,28], torch-free."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edgeport.errors import DataError
from edgeport.imageio import load_image, load_images, to_mnist


def digit_like(h: int = 120, w: int = 200) -> np.ndarray:
    """A dark "7" on a light background, off-centre, as a phone photo would be."""
    a = np.full((h, w), 235, np.uint8)
    a[20:32, 60:130] = 20  # top bar
    for r in range(32, 105):  # diagonal stroke
        c = 125 - (r - 32) // 2
        a[r, c - 7 : c + 7] = 20
    return a


def test_white_and_black_backgrounds_give_the_same_digit(tmp_path):
    dark_on_light = digit_like()
    Image.fromarray(dark_on_light).save(tmp_path / "white.png")
    Image.fromarray(255 - dark_on_light).save(tmp_path / "black.png")
    white, black = load_image(tmp_path / "white.png"), load_image(tmp_path / "black.png")
    assert white.shape == (28, 28) and white.dtype == np.uint8
    np.testing.assert_array_equal(white, black)
    # MNIST style: black background, bright stroke, digit inside the central 20x20 box
    assert white[0].max() == 0 and white[:, 0].max() == 0 and white.max() == 255
    rows, cols = np.flatnonzero(white.any(1)), np.flatnonzero(white.any(0))
    assert rows[-1] - rows[0] + 1 == 20 and cols[-1] - cols[0] + 1 <= 20
    ys, xs = np.nonzero(white)
    cy = (white[ys, xs] * ys).sum() / white.sum()
    cx = (white[ys, xs] * xs).sum() / white.sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_non_square_jpeg_rgb_matches_png(tmp_path):
    gray = digit_like(120, 200)
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "photo.jpg", quality=85)
    Image.fromarray(gray).save(tmp_path / "scan.png")
    jpg, png = load_image(tmp_path / "photo.jpg"), load_image(tmp_path / "scan.png")
    assert jpg.shape == (28, 28)
    corr = np.corrcoef(jpg.ravel().astype(float), png.ravel().astype(float))[0, 1]
    assert corr > 0.95


def test_transparent_png_with_dark_strokes(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[10:54, 28:36] = (0, 0, 0, 255)  # a black "1" on transparent
    Image.fromarray(rgba).save(tmp_path / "one.png")
    out = load_image(tmp_path / "one.png")
    assert out[0].max() == 0 and out[14, 13:15].min() > 200


def test_blank_image_is_all_black():
    assert to_mnist(np.full((40, 30), 200.0)).max() == 0


def test_tiny_image_upscaled():
    a = np.zeros((7, 5))
    a[1:6, 2] = 255
    out = to_mnist(a)
    assert out.shape == (28, 28) and np.flatnonzero(out.any(1)).size == 20


@pytest.mark.parametrize(
    "content, match",
    [(b"", "corrupt|not an image"), (b"not an image at all", "not an image"), (None, "not found")],
)
def test_bad_files_raise_one_line_data_error(tmp_path, content, match):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_truncated_png_is_data_error(tmp_path):
    Image.fromarray(digit_like()).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        load_image(tmp_path / "cut.png")
    assert "\n" not in str(info.value)


def test_folder_and_empty_list(tmp_path):
    with pytest.raises(DataError, match="not a file"):
        load_image(tmp_path)
    with pytest.raises(DataError, match="no image files"):
        load_images([])


@pytest.mark.mnist
def test_real_digits_survive_a_round_trip_through_a_photo(mnist_root, tmp_path):
    raw = (mnist_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    digits = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:50]
    corrs = []
    for i, d in enumerate(digits):
        big = np.asarray(Image.fromarray(255 - d).resize((120, 120), Image.Resampling.BILINEAR))
        canvas = np.full((120, 200), 255, np.uint8)
        canvas[:, 30:150] = big  # dark on light, wider than tall, off-centre
        Image.fromarray(canvas).save(tmp_path / f"{i}.jpg", quality=90)
        back = load_image(tmp_path / f"{i}.jpg").astype(float)
        corrs.append(np.corrcoef(back.ravel(), d.ravel().astype(float))[0, 1])
    assert np.median(corrs) > 0.85, f"median correlation {np.median(corrs):.3f}"
