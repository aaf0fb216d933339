"""`edgeport predict` renders each task: boxes drawn, masks overlaid, embeddings summarised."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from edgeport.cli import main
from edgeport.config import ExportConfig
from edgeport.export.api import export
from edgeport.predict import predict_files


def _cells_png(path, colours) -> None:
    """A 32x32 image of 8x8 cells; ``colours`` maps (row, col) -> channel that is bright (others dark)."""
    a = np.zeros((32, 32, 3), np.uint8)
    for (r, c), ch in colours.items():
        a[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8, ch] = 255
    Image.fromarray(a).save(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cells")
    _cells_png(d / "a.png", {(0, 0): 0, (2, 3): 2})
    _cells_png(d / "b.png", {(1, 1): 1})
    return [d / "a.png", d / "b.png"]


def _bundle(tmp_path_factory, model, task, formats=("onnx",)):
    out = tmp_path_factory.mktemp(task) / "b"
    export(
        model_ref=f"user_models:{model}",
        random_init=True,
        inputs=["image:1,3,32,32"],
        labels=["red", "green", "blue"] if task == "detect" else ["bg", "red", "green", "blue"],
        config=ExportConfig(task=task, formats=formats),
        data="synthetic:32",
        preprocessing_overrides={"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},  # pixels in [0, 1]
        out=out,
        progress=False,
    )
    return out


def test_detections_are_listed_and_drawn(tmp_path_factory, files, tmp_path):
    b = _bundle(tmp_path_factory, "grid_detector", "detect")
    res = predict_files(b, files, out_dir=tmp_path / "pics")
    dets = {r["file"].rsplit("/", 1)[1]: r["detections"] for r in res}
    assert sorted(d["label"] for d in dets["a.png"]) == ["blue", "red"] and [
        d["label"] for d in dets["b.png"]
    ] == ["green"]
    red = next(d for d in dets["a.png"] if d["label"] == "red")
    assert all(abs(v - w) < 4 for v, w in zip(red["box"], [0, 0, 8, 8])) and red["score"] > 0.9
    pic = np.asarray(Image.open(res[0]["picture"]).convert("RGB"))
    assert pic.shape == (32, 32, 3) and not np.array_equal(
        pic, np.asarray(Image.open(files[0]).convert("RGB"))
    )
    with pytest.raises(Exception, match="exist"):  # pictures already there are kept
        predict_files(b, files, out_dir=tmp_path / "pics")
    assert main(["predict", str(b), str(files[1]), "--json"]) == 0


def test_segment_shares_and_overlay(tmp_path_factory, files, tmp_path, capsys):
    b = _bundle(tmp_path_factory, "channel_seg", "segment")
    assert main(["predict", str(b), str(files[1]), "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # the 8x8 green cell (6.25% of the image) grows a little through the default resize-then-crop
    assert "b.png: pixels: bg 9" in out and ", green " in out and "b.pred.png" in out
    pic = Image.open(tmp_path / "b.pred.png")
    assert pic.size == (32, 32)
    (r,) = predict_files(b, [files[1]])
    assert [c["label"] for c in r["classes"]] == ["bg", "green"] and 0.06 <= r["classes"][1]["share"] <= 0.12
    assert json.loads(json.dumps(r)) == r  # JSON-able
