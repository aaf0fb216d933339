"""The task model zoo: every registered task model builds and runs at its declared signature, and every
trainable one trains (briefly) on its generated set into a run folder that export reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeport.cli import main  # noqa: E402
from edgeport.sources.models import build_model, get_spec  # noqa: E402

ARCHITECTURES = [
    "ssdlite320-detector",
    "lraspp-segmenter",
    "mnv3-embedder",
    "bert-tagger",
    "kws-dscnn",
    "shapes-detector",
    "shapes-segmenter",
    "text-tagger",
    "kws-tones",
    "tones-embedder",
]
TRAINABLE = {
    # model: (task, a validation metric train.json must hold, the --data kind of its sets)
    "shapes-detector": ("detect", "ref_map50", "coco"),
    "shapes-segmenter": ("segment", "ref_miou", "segfolder"),
    "text-tagger": ("token", "ref_accuracy", "npz"),
    "kws-tones": ("classify", "ref_accuracy", "wavfolder"),
    "tones-embedder": ("embed", "knn1_accuracy", "wavfolder"),
}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_task_model_runs_at_its_signature(name):
    from edgeport.export.signature import build_signature
    from edgeport.sources.models import ModelSource

    spec = get_spec(name)
    model = build_model(name).eval()
    sig, _, task = build_signature(model, ModelSource(model, name, spec=spec))
    assert task == spec.task
    values = sig.example_values(2)
    feeds = {}
    for s in sig.inputs:
        shape = s.concrete_shape(values)
        if s.np_dtype.kind == "i":
            feeds[s.name] = torch.randint(0, 8, shape)
        else:
            feeds[s.name] = torch.rand(shape)
    with torch.inference_mode():
        out = model(*feeds.values())
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(sig.outputs)
    for o, spec_out in zip(outs, sig.outputs):
        assert o.shape[0] == 2 and torch.isfinite(o).all(), spec_out.name


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TRAINABLE))
def test_trainable_task_models_write_a_run_folder_with_their_data(name, tmp_path, capsys):
    task, metric, kind = TRAINABLE[name]
    run = tmp_path / "run"
    argv = ["train", "--model", name, "--out", str(run), "--samples", "64", "--epochs", "1", "--quiet"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"{name} ({task})" in said and "64 generated samples" in said
    info = json.loads((run / "train.json").read_text())
    assert info["task"] == task and info["split"] == {"train": 64, "val": 16}
    assert metric in info["val_metrics"] and np.isfinite(info["val_metrics"][metric])
    for split, spec in info["data"].items():
        got_kind, _, path = spec.partition(":")
        assert got_kind == kind and (run / path).exists(), (split, spec)
    # the same run again is refused without --force, and nothing is lost
    before = (run / "model.safetensors").read_bytes()
    assert main(argv) != 0
    assert "--force" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == before


def test_zoo_training_arguments_are_checked(tmp_path, capsys):
    assert main(["train", "--model", "shapes-detector", "--out", str(tmp_path / "r"), "--samples", "3"]) == 2
    assert "--samples: expected a whole number between 10" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_export_of_a_task_run_uses_its_generated_sets(tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "bundle"
    assert (
        main(
            [
                "train",
                "--model",
                "kws-tones",
                "--out",
                str(run),
                "--samples",
                "64",
                "--epochs",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["export", "--run", str(run), "--formats", "onnx", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert (
        f"calibration wavfolder:{run / 'data' / 'train'}" in said
        and f"eval wavfolder:{run / 'data' / 'val'}" in said
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"]["name"] == "classify"
    assert str(run / "data" / "val") in json.dumps(manifest["data"])
    # a run whose train.json names data outside the run folder gets no default: export asks for data
    info = json.loads((run / "train.json").read_text())
    info["data"] = {"train": "wavfolder:../elsewhere", "val": "wavfolder:/etc"}
    (run / "train.json").write_text(json.dumps(info))
    assert main(["export", "--run", str(run), "--formats", "onnx", "--out", str(tmp_path / "b2")]) != 0
    assert "data" in capsys.readouterr().err and not (tmp_path / "b2").exists()
