"""Preprocessing steps: the torch-free numpy/Pillow path and torchvision.transforms.v2 give the same tensors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgeport.errors import ConfigError, InputError
from edgeport.preprocessing import Preprocessing, build, from_json_file, from_preset
from edgeport.sources.transforms import geometry_only, to_torchvision
from edgeport.specs import BATCH, TensorSpec


def rgb_spec(h=224, w=224, layout="NCHW"):
    shape = (BATCH, 3, h, w) if layout == "NCHW" else (BATCH, h, w, 3)
    return TensorSpec("image", "float32", shape, layout=layout)


def photos(tmp_path, rgb_folder):
    """Real images (the RGB digit folder, PNG and JPEG) plus smooth photo-like images of odd sizes."""
    files = sorted(rgb_folder.rglob("*.png"))[:6] + sorted(rgb_folder.rglob("*.jpg"))[:6]
    rng = np.random.default_rng(0)
    for k, (w, h) in enumerate([(300, 200), (199, 401), (640, 480), (57, 33)]):
        base = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
        p = tmp_path / f"photo{k}.{'jpg' if k % 2 else 'png'}"
        img.save(p, quality=92)
        files.append(p)
    return files


@pytest.mark.parametrize("preset", ["imagenet", "resize-64-crop-48", "exact-32x40"])
def test_numpy_and_torchvision_agree_within_one_level(preset, tmp_path, rgb_folder):
    if preset == "imagenet":
        pre = from_preset("imagenet", "image")
    elif preset == "resize-64-crop-48":
        pre = build(input_spec=rgb_spec(48, 48), resize=64, crop=48)
    else:
        pre = Preprocessing(
            "image",
            (
                {"op": "decode", "mode": "RGB"},
                {"op": "resize", "size": [32, 40], "mode": "exact"},
                {"op": "scale", "factor": 1 / 255},
                {"op": "layout", "layout": "NCHW"},
                {"op": "dtype", "dtype": "float32"},
            ),
        )
    tv_geo = geometry_only(pre)
    tv_full = to_torchvision(pre)
    for path in photos(tmp_path, rgb_folder):
        img = pre.decode_file(path)
        ours = Preprocessing._geometry(img, pre.step("resize"), pre.step("center_crop"))
        theirs = tv_geo(img)
        assert ours.shape == theirs.shape, path
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        assert diff.max() <= 1, (path, diff.max())  # within 1/255 before normalisation
        a, b = pre.apply([img])[0], tv_full(img)
        mean, std = pre.mean_std()
        assert np.abs(a - b).max() <= (1 / 255) / std.min() + 1e-5, path


def test_mnist_preset_is_todays_behaviour():
    x = np.array([[0, 255]], dtype=np.uint8).reshape(1, 1, 2)
    out = from_preset("mnist").apply(x)
    assert out.dtype == np.float32 and out.shape == (1, 1, 1, 2)
    np.testing.assert_allclose(out.ravel(), [(0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081], rtol=1e-6)


def test_layouts_dtype_and_wrong_images():
    pre = build(input_spec=rgb_spec(16, 16, "NHWC"), resize=16, crop=16)
    out = pre.apply(np.zeros((2, 20, 30, 3), np.uint8))
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.float32
    with pytest.raises(InputError, match="channel-first"):
        pre.apply(np.zeros((2, 3, 20, 30), np.uint8))
    with pytest.raises(InputError, match=r"\[N,H,W,3\]"):
        pre.apply(np.zeros((2, 20, 30), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        pre.apply(np.zeros((2, 20, 30, 3), np.float32))
    images = [np.zeros((20, 30, 3), np.uint8), np.zeros((40, 10, 3), np.uint8)]
    assert pre.apply(images).shape == (2, 16, 16, 3)  # any sizes, made equal by resize + crop
    plain = Preprocessing("image", ({"op": "decode", "mode": "RGB"}, {"op": "layout", "layout": "NCHW"}))
    with pytest.raises(InputError, match="different sizes"):
        plain.apply(images)


def test_custom_steps_from_flags_and_json(tmp_path):
    spec = rgb_spec(32, 32)
    pre = build(input_spec=spec, resize=40, crop=32, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])
    assert (
        pre.step("resize")["size"] == 40
        and pre.mean_std()[1].tolist() == [0.25] * 3
        and "custom" in pre.preset
    )
    assert pre.value_range() == pytest.approx((-2.0, 2.0))
    f = tmp_path / "steps.json"
    f.write_text(
        '{"steps": [{"op": "decode", "mode": "RGB"}, {"op": "resize", "size": [32, 32], "mode": "exact"},'
        ' {"op": "scale", "factor": 0.00392156862745098}, {"op": "layout", "layout": "NCHW"}]}'
    )
    assert from_json_file(f, "image").output_hw() == (32, 32)
    assert build(input_spec=spec, preset=str(f)).step("dtype")["dtype"] == "float32"
    with pytest.raises(ConfigError, match="do not fit|produce 24x24"):
        build(input_spec=spec, crop=24)
    f.write_text('[{"op": "resize", "size": 3}]')
    with pytest.raises(ConfigError, match="start with decode"):
        from_json_file(f, "image")
    with pytest.raises(ConfigError, match="not an image input"):
        build(input_spec=TensorSpec("v", "float32", (BATCH, 6)))


def test_a_photo_is_classified_the_same_without_torch(tmp_path, rgb_folder):
    """`edgeport predict` with torch unimportable == runner.predict in the full install."""
    from edgeport.config import ExportConfig
    from edgeport.export.api import export

    b = export(
        model_ref="user_models:logits_cnn",
        random_init=True,
        input_shape=(1, 3, 16, 16),
        data="synthetic",
        out=tmp_path / "b",
        config=ExportConfig(formats=("onnx",)),
        progress=False,
        labels=list("abcde"),
    )
    photo = tmp_path / "photo.jpg"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(photo, quality=90)
    with b.runner("onnxruntime") as r:
        _, probs = r.predict([b.preprocessing.decode_file(photo)])
    code = (
        "import sys, json\n"
        "class B:\n"
        "    def find_spec(self, n, p=None, t=None):\n"
        "        if n.split('.')[0] in ('torch', 'torchvision'): raise ImportError(n)\n"
        "sys.meta_path.insert(0, B())\n"
        "from edgeport.predict import predict_files\n"
        f"print(json.dumps(predict_files({str(tmp_path / 'b')!r}, [{str(photo)!r}], top_k=5)))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert p.returncode == 0, p.stderr[-1000:]
    import json

    (res,) = json.loads(p.stdout)
    assert res["label"] == "abcde"[int(probs[0].argmax())]
    got = {t["label"]: t["prob"] for t in res["top"]}
    for i, lab in enumerate("abcde"):
        assert got[lab] == pytest.approx(float(probs[0, i]), abs=1e-5)
