import numpy as np
import pytest

from edgeport.cli import main
from edgeport.errors import DataError
from edgeport.preprocessing import from_preset
from edgeport.sources.mnist import load_mnist, split_indices


def test_synthetic_idx_loads_through_torchvision(synthetic_mnist):
    data = load_mnist(synthetic_mnist, download=False)
    assert data.train_images.dtype == np.uint8 and data.train_images.shape[1:] == (28, 28)
    assert len(data.train_images) + len(data.val_images) == 1200
    assert len(data.test_images) == 1000
    assert not set(data.train_indices) & set(data.val_indices)


def test_split_is_fixed_and_disjoint():
    a_tr, a_va = split_indices()
    b_tr, b_va = split_indices()
    assert len(a_tr) == 55_000 and len(a_va) == 5_000
    np.testing.assert_array_equal(a_tr, b_tr)
    np.testing.assert_array_equal(a_va, b_va)
    assert len(np.union1d(a_tr, a_va)) == 60_000


def test_missing_data_raises_dataerror_naming_files(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path / "absent", download=False)


def test_missing_data_is_one_line_at_cli(tmp_path, capsys):
    code = main(["train", "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "MNIST not found" in err and "t10k-images-idx3-ubyte" in err
    assert not (tmp_path / "run").exists()


def test_preprocessing_matches_training_constants():
    x = np.array([[0, 255]], dtype=np.uint8).reshape(1, 1, 2)
    out = from_preset("mnist").apply(x)
    assert out.dtype == np.float32 and out.shape == (1, 1, 1, 2)
    np.testing.assert_allclose(out.ravel(), [(0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081], rtol=1e-6)


@pytest.mark.mnist
def test_real_mnist_split_sizes(mnist_root):
    data = load_mnist(mnist_root, download=False)
    assert (len(data.train_images), len(data.val_images), len(data.test_images)) == (55_000, 5_000, 10_000)
    assert abs(float(data.train_images.mean()) / 255 - 0.1307) < 0.002
