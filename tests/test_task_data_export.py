"""Export, verify and predict on the new data kinds end to end (audio through its recorded steps,
segmentation label maps into mIoU), and bad input for them: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from data_writers import tone, write_coco, write_segfolder, write_wav, write_wavfolder
from edgeport.cli import main
from edgeport.config import CalibrationConfig, ExportConfig

ONNX = ExportConfig(formats=("onnx",))


@pytest.fixture(scope="module")
def kws_bundle(tmp_path_factory):
    from edgeport.export.api import export

    root = write_wavfolder(tmp_path_factory.mktemp("wav") / "speech", per_class=7)
    out = tmp_path_factory.mktemp("kws") / "bundle"
    b = export(
        model_ref="data_models:kws_cnn",
        random_init=True,
        inputs=["audio:1,1,40,101"],
        data=f"wavfolder:{root}",
        out=out,
        config=ONNX,
        calibration=CalibrationConfig(size=10),
        progress=False,
    )
    return b, root


def test_audio_export_records_the_steps_and_predict_runs_them(kws_bundle, capsys):
    from edgeport.audio import AudioPreprocessing
    from edgeport.bundle import load_bundle
    from edgeport.predict import predict_files

    b, root = kws_bundle
    b = load_bundle(b.path)  # as a device reads it
    m = b.manifest
    assert m.preprocessing["kind"] == "audio" and m.preprocessing["preset"] == "kws"
    assert list(m.labels) == ["down", "go", "up"] and m.data["eval"]["kind"] == "wavfolder"
    pre = b.preprocessing
    assert isinstance(pre, AudioPreprocessing) and pre.shape == (1, 40, 101)
    files = sorted(root.rglob("*.wav"))[:4]
    waves = [pre.decode_file(f) for f in files]
    with b.runner("onnxruntime") as r:
        classes, probs = r.predict(waves)
        direct = r.run({"audio": pre.apply(np.stack(waves))})["logits"]
    assert classes.tolist() == direct.argmax(1).tolist() and probs.shape == (4, 3)
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    results = predict_files(b.path, files)  # WAV files through the light path
    assert [r["label"] for r in results] == [m.labels[i] for i in classes]
    assert main(["inspect", str(b.path)]) == 0
    assert "decode_wav(sample_rate=16000" in capsys.readouterr().out


def test_audio_verify_reads_the_wav_folder(kws_bundle):
    from edgeport.runtime.verify import verify

    b, root = kws_bundle
    report = verify(b, data=f"wavfolder:{root}", backends=["onnxruntime"], devices=["cpu"], progress=False)
    assert report["passed"] and report["data"]["kind"] == "wavfolder" and report["rows"][0]["n"] == 21
    assert report["rows"][0]["accuracy"] is not None  # labelled: the task measured accuracy


def test_segmentation_export_and_verify_measure_miou_on_label_maps(tmp_path):
    from edgeport.export.api import export
    from edgeport.runtime.verify import verify

    root = write_segfolder(tmp_path / "seg", n=22, size=(40, 56))
    b = export(
        model_ref="data_models:seg_net",
        random_init=True,
        inputs=["image:1,3,32,32"],
        config=ExportConfig(formats=("onnx",), task="segment"),
        data=f"segfolder:{root}",
        out=tmp_path / "bundle",
        calibration=CalibrationConfig(size=10),
        progress=False,
    )
    assert list(b.labels) == ["bg", "road", "car"]
    report = verify(b, data=f"segfolder:{root}", backends=["onnxruntime"], devices=["cpu"], progress=False)
    row = report["rows"][0]
    assert (
        report["passed"] and row["metrics"]["miou"] is not None and row["metrics"]["pixel_agreement"] == 1.0
    )


# --------------------------------------------------------------------------- bad input through the CLI


def _seg(tmp_path, change):
    root = write_segfolder(tmp_path / "seg", n=22, size=(40, 56))
    change(root)
    return ["--model", "data_models:seg_net", "--input", "image:1,3,32,32", "--task", "segment",
            "--data", f"segfolder:{root}"]  # fmt: skip


def _coco(tmp_path, change):
    path, data = write_coco(tmp_path / "coco", n=14)
    change(path, data)
    return ["--model", "data_models:seg_net", "--input", "image:1,3,32,32", "--task", "segment",
            "--data", f"coco:{path}"]  # fmt: skip


def _wav(tmp_path, change):
    root = write_wavfolder(tmp_path / "wav", per_class=7)
    change(root)
    return ["--model", "data_models:kws_cnn", "--input", "audio:1,1,40,101", "--data", f"wavfolder:{root}"]


def _box_outside(path, data):
    data["annotations"][4]["bbox"] = [60, 40, 10, 20]
    path.write_text(json.dumps(data))


BAD = {
    "coco box outside": (
        _coco,
        _box_outside,
        "[60, 40, 10, 20] of annotations[4] lies outside image 'img2.png'",
    ),
    "coco not json": (_coco, lambda p, d: p.write_text("{not json"), "is not valid JSON"),
    "coco no images": (_coco, lambda p, d: p.write_text(json.dumps({"annotations": []})), "'images'"),
    "label beyond classes": (
        _seg,
        lambda r: Image.fromarray(np.full((40, 56), 9, np.uint8)).save(r / "masks" / "s3.png"),
        "holds class id 9, but there are 3 classes",
    ),
    "missing mask": (_seg, lambda r: (r / "masks" / "s5.png").unlink(), "has no mask masks/s5.png"),
    "3-channel wav": (
        _wav,
        lambda r: write_wav(r / "up" / "x.wav", np.zeros((99, 3)), 16000, channels=3),
        "has 3 channels",
    ),  # fmt: skip
    "8-bit wav": (
        _wav,
        lambda r: write_wav(r / "up" / "x.wav", tone(300, 8000, 0.2), 8000, width=1),
        "8-bit samples",
    ),  # fmt: skip
    "corrupt wav": (
        _wav,
        lambda r: (r / "go" / "x.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk"),
        "corrupt WAV",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    make, change, match = BAD[case]
    args = make(tmp_path, change)
    out = tmp_path / "bundle"
    rc = main(["export", *args, "--random-init", "--formats", "onnx", "--calibration-size", "10",
               "--out", str(out), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "internal error" not in err, err
    assert match in err, err
    assert not out.exists() and not [
        p for p in tmp_path.iterdir() if p.name.startswith((".bundle", "bundle"))
    ]
