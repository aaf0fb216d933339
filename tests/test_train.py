import json

import numpy as np
import pytest
import torch

from edgeport.cli import main
from edgeport.config import TrainConfig
from edgeport.errors import BundleError, ConfigError
from edgeport.seed.train import fast_dropout, fit, shifted_epoch, train
from edgeport.sources.mnist import load_mnist
from edgeport.sources.models import load_run


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


def test_shifted_epoch_moves_each_image_within_bounds():
    n, k = 64, 2
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 14, 14] = 255
    padded = np.pad(images, ((0, 0), (k, k), (k, k)))
    labels = torch.arange(n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    x, y = shifted_epoch(padded, labels, perm, k, torch.Generator().manual_seed(1))
    assert x.shape == (n, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(y, labels[perm])
    offsets = set()
    for img in x:
        (r, c), *_ = np.argwhere(img[0].numpy() == 255)
        assert abs(r - 14) <= k and abs(c - 14) <= k
        offsets.add((int(r), int(c)))
    assert len(offsets) > 5  # offsets differ per image, not per batch
    x0, _ = shifted_epoch(np.asarray(images), labels, perm, 0, torch.Generator())
    assert torch.equal(x0[:, 0], torch.from_numpy(images)[perm])


def test_fast_dropout_keeps_rate_and_scale_and_restores_module():
    model = torch.nn.Sequential(torch.nn.Dropout(0.2)).train()
    x = torch.ones(200, 500)
    with fast_dropout(model, seed=0):
        out = model(x)
        model.eval()
        assert torch.equal(model(x), x)  # eval: identity
        model.train()
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.01
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.8))
    assert "forward" not in vars(model[0])  # plain nn.Dropout again


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


def test_mnist_cnn_is_registered_and_trains(synthetic_mnist, tmp_path):
    from edgeport.sources.models import available_models, build_model, get_spec

    assert {"mnist-mlp", "mnist-cnn"} <= set(available_models())
    spec = get_spec("mnist-cnn")
    assert spec.output_kind == "logits" and spec.input_shape == (1, 28, 28)
    model = build_model("mnist-cnn")
    x = torch.zeros(2, 1, 28, 28)
    assert model(x).shape == (2, 10)
    _m, info = train(
        TrainConfig(model="mnist-cnn", epochs=1, batch_size=64, lr=3e-3),
        data_dir=synthetic_mnist,
        out=tmp_path / "cnn",
        progress=False,
    )
    assert info["model"] == "mnist-cnn" and 0 <= info["test_accuracy"] <= 1


def test_train_refuses_models_outside_the_registry(synthetic_mnist, tmp_path, capsys):
    rc = main(
        [
            "train",
            "--model",
            "torchvision:resnet18",
            "--data-dir",
            str(synthetic_mnist),
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "registry models" in err and err.count("\n") == 1


@pytest.mark.mnist
def test_mnist_cnn_reaches_99_percent(mnist_root, tmp_path):
    assert (
        main(
            [
                "train",
                "--model",
                "mnist-cnn",
                "--data-dir",
                str(mnist_root),
                "--out",
                str(tmp_path / "cnn"),
                "--quiet",
            ]
        )
        == 0
    )
    info = json.loads((tmp_path / "cnn" / "train.json").read_text())
    assert info["test_accuracy"] >= 0.99, info["test_accuracy"]


def test_training_defaults_come_from_the_model_spec():
    """edgeport.train(TrainConfig(model="mnist-cnn")) trains with the CNN's defaults, not the MLP's."""
    from edgeport.errors import ConfigError
    from edgeport.seed.train import resolve
    from edgeport.sources.models import get_spec

    cnn, mlp = resolve(TrainConfig(model="mnist-cnn")), resolve(TrainConfig(model="mnist-mlp"))
    for key in ("epochs", "batch_size", "lr"):
        assert getattr(cnn, key) == get_spec("mnist-cnn").train[key]
        assert getattr(mlp, key) == get_spec("mnist-mlp").train[key]
    assert (cnn.epochs, cnn.batch_size, cnn.lr) != (mlp.epochs, mlp.batch_size, mlp.lr)
    assert resolve(TrainConfig(model="mnist-cnn", epochs=2)).epochs == 2  # what the user set wins
    with pytest.raises(ConfigError, match="own recipe"):
        resolve(TrainConfig(model="text-tagger"))  # a zoo model trains with its recipe, not on MNIST
