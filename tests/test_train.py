import json

import numpy as np
import pytest
import torch

from edgeport.checkpoint import load_run
from edgeport.cli import main
from edgeport.config import TrainConfig
from edgeport.data import load_mnist
from edgeport.errors import BundleError, ConfigError
from edgeport.train import fit, random_shift, train


def test_loss_falls_on_synthetic_idx(synthetic_mnist):
    data = load_mnist(synthetic_mnist, download=False)
    _model, info = fit(TrainConfig(epochs=3, batch_size=64, lr=5e-3), data, progress=False)
    losses = [h["train_loss"] for h in info["history"]]
    assert losses[-1] < losses[0] * 0.7, losses
    assert info["val_accuracy"] > 0.5


def test_same_seed_same_result(synthetic_mnist):
    data = load_mnist(synthetic_mnist, download=False)
    cfg = TrainConfig(epochs=1, batch_size=128, seed=3)
    m1, i1 = fit(cfg, data, progress=False)
    m2, i2 = fit(cfg, data, progress=False)
    assert i1["val_accuracy"] == i2["val_accuracy"]
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoint_round_trip(tiny_run):
    model, info = load_run(tiny_run)
    saved = json.loads((tiny_run / "train.json").read_text())
    for key in (
        "model",
        "params",
        "epochs",
        "seed",
        "train_seconds",
        "val_accuracy",
        "test_accuracy",
        "history",
    ):
        assert key in saved, key
    assert saved["params"] == 102_762 and len(saved["history"]) == saved["epochs"]
    assert not model.training
    x = torch.randn(3, 1, 28, 28)
    model2, _ = load_run(tiny_run)
    torch.testing.assert_close(model(x), model2(x))


def test_refuses_to_overwrite_run_without_force(tiny_run, synthetic_mnist):
    before = (tiny_run / "model.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="--force"):
        train(TrainConfig(epochs=1), data_dir=synthetic_mnist, out=tiny_run, progress=False)
    assert (tiny_run / "model.safetensors").read_bytes() == before


def test_cli_train_and_force(tmp_path, synthetic_mnist, capsys):
    out = tmp_path / "run"
    args = ["train", "--data-dir", str(synthetic_mnist), "--out", str(out), "--epochs", "1", "--quiet"]
    assert main(args) == 0
    assert "test" in capsys.readouterr().out
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_corrupt_checkpoint_is_bundle_error(tmp_path, tiny_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BundleError, match="corrupt"):
        load_run(run)


def test_random_shift_moves_pixels_within_bounds():
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 14, 14] = 1.0
    out = random_shift(x, 2, 0.0, torch.Generator().manual_seed(0))
    for img in out:
        r, c = np.argwhere(img[0].numpy() == 1.0)[0]
        assert abs(r - 14) <= 2 and abs(c - 14) <= 2
    assert torch.equal(random_shift(x, 0, 0.0, torch.Generator()), x)


def test_predict_grid_writes_png(tmp_path, tiny_run, synthetic_mnist):
    out = tmp_path / "grid.png"
    assert (
        main(["predict-grid", "--run", str(tiny_run), "--data-dir", str(synthetic_mnist), "--out", str(out)])
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.mnist
def test_default_training_reaches_98_percent(mnist_root, tmp_path):
    _model, info = train(TrainConfig(), data_dir=mnist_root, out=tmp_path / "run", progress=False)
    assert info["test_accuracy"] >= 0.98, info["test_accuracy"]
