"""`predict_files` on PNG/JPEG files of any size, through the light runtime."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import export_fixtures as fx
from edgeport import predict
from edgeport.errors import DataError
from test_imageio import digit_like


@pytest.fixture
def bundle(tmp_path_factory, tiny_run, synthetic_mnist):
    return fx.plain_bundle(tmp_path_factory, tiny_run, synthetic_mnist)


@pytest.fixture
def images(tmp_path):
    d = digit_like(120, 200)
    Image.fromarray(d).save(tmp_path / "white.png")
    Image.fromarray(255 - d).save(tmp_path / "black.png")
    Image.fromarray(np.stack([d] * 3, -1)).save(tmp_path / "photo.jpg", quality=90)
    Image.fromarray(255 - d).resize((28, 28)).save(tmp_path / "small.png")
    return tmp_path


def test_predict_white_black_and_resized(bundle, images):
    files = [images / n for n in ("white.png", "black.png", "photo.jpg", "small.png")]
    results = predict.predict_files(bundle, files)
    assert [r["file"] for r in results] == [str(f) for f in files]
    for r in results:
        assert len(r["top"]) == 3 and r["label"] == r["top"][0]["label"]
        probs = [t["prob"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and 0 <= sum(probs) <= 1.0001
    # the same digit, dark-on-light or light-on-dark, is the same input to the model
    assert results[0]["top"] == results[1]["top"]
    # a JPEG of it and a 28x28 thumbnail are classified like the PNG
    assert results[2]["label"] == results[0]["label"]


def test_top_k_and_formats(bundle, images):
    (res,) = predict.predict_files(bundle, [images / "white.png"], top_k=10)
    assert len(res["top"]) == 10 and abs(sum(t["prob"] for t in res["top"]) - 1) < 1e-4
    text = predict.format_predictions([res])
    assert text.startswith(f"{images / 'white.png'}: {res['label']}  (") and text.count("%") == 10
    assert json.loads(predict.format_json([res])) == [res]


def test_corrupt_file_is_one_line_data_error(bundle, images):
    bad = images / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DataError) as info:
        predict.predict_files(bundle, [images / "white.png", bad])
    msg = str(info.value)
    assert "\n" not in msg and "corrupt.png" in msg and "PNG or JPEG" in msg


def test_bad_arguments(bundle, images):
    from edgeport.errors import ConfigError

    with pytest.raises(ConfigError, match="no image files"):
        predict.predict_files(bundle, [])
    with pytest.raises(ConfigError, match="top_k"):
        predict.predict_files(bundle, [images / "white.png"], top_k=0)


def test_rank_is_pure_numpy():
    probs = np.array([[0.1, 0.7, 0.2]], np.float32)
    (r,) = predict.rank(probs, ["a", "b", "c"], ["x.png"], top_k=5)
    assert r["label"] == "b" and [t["label"] for t in r["top"]] == ["b", "c", "a"]


def test_predict_imports_nothing_heavy(bundle, images, tmp_path):
    code = (
        "import sys; from edgeport.predict import predict_files, format_predictions;"
        f"print(format_predictions(predict_files({str(bundle)!r}, [{str(images / 'white.png')!r}])));"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'matplotlib', 'onnx', 'openvino') if m in sys.modules);"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout and "white.png: " in out.stdout
