"""A user's own data (models/userdata.py): NPZ and CSV files, scaling, identity, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from clockprop.core.errors import ClockpropError
from clockprop.models.config import load_config
from clockprop.models.datasets import load_dataset
from clockprop.models.userdata import apply_scale, load_samples
from clockprop.sw.cli import train_model

from conftest import assert_clean_error, clockprop

DIGITS = Path(__file__).resolve().parent.parent / "configs" / "digits.toml"


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    raw = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=raw.data, y=raw.target)
    return path


def _csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows])
                    + "\n")
    return path


def _flowers(path, n=40, seed=0):
    """A small separable CSV: two inputs, string labels in a middle column."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        cls = ("setosa", "virginica")[i % 2]
        centre = 2.0 if cls == "setosa" else 8.0
        rows.append([f"{centre + rng.normal():.3f}", cls, f"{100 * centre + rng.normal():.1f}"])
    return _csv(path, ["petal", "species", "weight"], rows)


def test_npz_with_global_scale_is_the_builtin_digits(digits_npz):
    builtin = load_dataset("digits", 3)
    own = load_dataset(str(digits_npz), 3, scale="global")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(builtin, name), getattr(own, name)), name
    assert own.n_classes == 10 and own.source.sha256[:16] in own.split


def test_npz_trains_the_builtin_model_bit_for_bit(digits_npz):
    overrides = {"train.epochs": 2}
    builtin = train_model(load_config(DIGITS, overrides), log=lambda m: None)
    own = train_model(load_config(DIGITS, {**overrides,
                                  "dataset": str(digits_npz), "scale": "global"}),
                      log=lambda m: None)
    for a, b in zip(builtin.layers, own.layers):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        assert a.frac == b.frac
    assert own.meta["integer"] == builtin.meta["integer"]
    assert own.meta["data"]["path"] == str(digits_npz)


def test_npz_with_its_own_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "split.npz"
    np.savez(path, x_train=rng.random((30, 4)) * 5, y_train=np.arange(30) % 3,
             x_test=rng.random((9, 4)) * 10 - 2, y_test=np.arange(9) % 3)
    d = load_dataset(str(path))
    assert (len(d.y_train), len(d.y_test), d.n_classes, d.n_inputs) == (30, 9, 3, 4)
    assert d.x_train.min() == 0 and d.x_train.max() == 1          # per-input min-max
    assert d.x_test.min() >= 0 and d.x_test.max() <= 1            # clipped
    assert "own train/test split" in d.split


def test_csv_string_labels_and_feature_scale(tmp_path):
    d = load_dataset(str(_flowers(tmp_path / "f.csv")), 0, label="species")
    assert d.n_inputs == 2 and d.n_classes == 2
    assert d.source.classes == ("setosa", "virginica")
    np.testing.assert_array_equal(d.x_train.min(axis=0), [0, 0])
    np.testing.assert_array_equal(d.x_train.max(axis=0), [1, 1])
    assert len(d.y_train) + len(d.y_test) == 40 and len(d.y_test) == 10


def test_constant_column_scales_to_zero():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_array_equal(apply_scale(x, [1, 5], [3, 5]), [[0, 0], [1, 0]])


@pytest.mark.parametrize("rows, needle", [
    ([["1", "a"], ["x", "b"]], "'x' is not a number"),
    ([["1", "a"], ["nan", "b"], ["2", "a"], ["3", "b"]], "NaN or infinite"),
    ([["1", "a"], ["inf", "b"], ["2", "a"], ["3", "b"]], "NaN or infinite"),
    ([["1", "a"], ["2", "a"], ["3", "a"], ["4", "a"]], "single class"),
    ([["1", "a"], ["2"]], "line 3: 1 cells"),
])
def test_bad_csv(tmp_path, rows, needle):
    path = _csv(tmp_path / "bad.csv", ["v", "label"], rows)
    with pytest.raises(ClockpropError, match=needle.replace("(", r"\(")):
        load_dataset(str(path), label="label")


def test_bad_files(tmp_path):
    with pytest.raises(ClockpropError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ClockpropError, match="not a readable NPZ"):
        load_dataset(str(tmp_path / "junk.npz"))
    np.savez(tmp_path / "keys.npz", a=np.zeros(3))
    with pytest.raises(ClockpropError, match="holds x_train, y_train"):
        load_dataset(str(tmp_path / "keys.npz"))
    np.savez(tmp_path / "len.npz", x=np.zeros((5, 2)), y=np.arange(4))
    with pytest.raises(ClockpropError, match="5 samples but 4 labels"):
        load_dataset(str(tmp_path / "len.npz"))
    np.savez(tmp_path / "unseen.npz", x_train=np.zeros((4, 2)), y_train=[0, 1, 0, 1],
             x_test=np.zeros((2, 2)), y_test=[0, 2])
    with pytest.raises(ClockpropError, match="never seen in training"):
        load_dataset(str(tmp_path / "unseen.npz"))
    np.savez(tmp_path / "wide.npz", x=np.full((8, 2), 3.0), y=np.arange(8) % 2)
    with pytest.raises(ClockpropError, match=r"scale = \"none\" needs inputs in \[0, 1\]"):
        load_dataset(str(tmp_path / "wide.npz"), scale="none")
    path = _flowers(tmp_path / "f.csv")
    with pytest.raises(ClockpropError, match="has no column 'kind'"):
        load_dataset(str(path), label="kind")
    with pytest.raises(ClockpropError, match="name its label column"):
        load_dataset(str(path))


def test_config_checks_the_data_keys():
    with pytest.raises(ClockpropError, match="not a CSV file"):
        load_config(None, {"dataset": "d.npz", "label": "y"})
    with pytest.raises(ClockpropError, match="scale must be one of"):
        load_config(None, {"dataset": "d.csv", "scale": "zscore"})
    with pytest.raises(ClockpropError, match="unknown dataset 'd.txt'"):
        load_config(None, {"dataset": "d.txt"})


def test_samples_use_the_training_scale(tmp_path):
    path = _flowers(tmp_path / "f.csv")
    d = load_dataset(str(path), 0, label="species")
    meta = {"data": d.source.to_dict(), "n_classes": 2}
    x, y = load_samples(path, meta, 2)
    assert x.shape == (40, 2) and set(y.tolist()) == {0, 1}
    _csv(tmp_path / "unlabelled.csv", ["petal", "weight"], [["2.0", "200"], ["8.0", "800"]])
    x, y = load_samples(tmp_path / "unlabelled.csv", meta, 2)
    assert y is None and x.shape == (2, 2)
    with pytest.raises(ClockpropError, match="has 2 inputs per sample; the model takes 3"):
        load_samples(path, meta, 3)
    _csv(tmp_path / "other.csv", ["petal", "species", "weight"], [["2", "rose", "9"]])
    with pytest.raises(ClockpropError, match="not classes of the model"):
        load_samples(tmp_path / "other.csv", meta, 2)


def test_cli_trains_simulates_and_reports_a_csv(tmp_path):
    _flowers(tmp_path / "flowers.csv")
    args = ["--set", "dataset=flowers.csv", "--set", "label=species", "--set", "name=flowers",
            "--set", "train.hidden=[2]", "--set", "train.epochs=3"]
    r = clockprop(tmp_path, "flow", *args)
    assert r.returncode == 0, r.stderr
    sim = json.loads((tmp_path / "build" / "flowers" / "sim.json").read_text())
    assert sim["samples_equal"] == sim["n_samples"] == 10
    report = (tmp_path / "reports" / "flowers" / "report.md").read_text()
    model = json.loads((tmp_path / "build" / "flowers" / "model.json").read_text())
    assert model["meta"]["data"]["sha256"] in report and "flowers.csv" in report

    # The file changes: the model's data is no longer there, and sim says so.
    with open(tmp_path / "flowers.csv", "a") as f:
        f.write("5.0,setosa,500\n")
    r = clockprop(tmp_path, "sim", "flowers")
    assert_clean_error(r, "has changed since the model was trained")


def test_cli_bad_data_writes_nothing(tmp_path):
    _csv(tmp_path / "bad.csv", ["v", "label"], [["1", "a"], ["oops", "b"]])
    r = clockprop(tmp_path, "train", "--set", "dataset=bad.csv", "--set", "label=label")
    assert_clean_error(r, "line 3, column 'v': 'oops' is not a number")
    assert not (tmp_path / "build").exists()


def test_run_classifies_another_file_on_the_simulated_board(tmp_path):
    _flowers(tmp_path / "flowers.csv")
    r = clockprop(tmp_path, "train", "--set", "dataset=flowers.csv", "--set", "label=species",
                  "--set", "name=flowers", "--set", "train.hidden=[1]", "--set",
                  "train.epochs=3")
    assert r.returncode == 0, r.stderr
    _csv(tmp_path / "new.csv", ["petal", "weight"], [["2.1", "201"], ["7.9", "799"]])
    r = clockprop(tmp_path, "run", "flowers", "--port", "sim", "--data", "new.csv")
    assert r.returncode == 0, r.stderr
    assert "no labels on 2 samples; 2/2 classes equal to the golden model" in r.stdout
    _csv(tmp_path / "narrow.csv", ["petal"], [["2.1"]])
    assert_clean_error(clockprop(tmp_path, "run", "flowers", "--port", "sim", "--data",
                                 "narrow.csv"), "has 1 inputs per sample; the model takes 2")
