import json

import numpy as np
import pytest

from clockprop.core.errors import ClockpropError
from clockprop.models.intmodel import FILE_VERSION, IntLayer, IntModel
from clockprop.core.qformat import QFormat

from conftest import random_model


@pytest.fixture
def model():
    return random_model(np.random.default_rng(5), [6, 5, 3])


def test_round_trip(tmp_path, model):
    path = tmp_path / "m.json"
    model.meta["rule"] = "csb"
    model.save(path)
    loaded = IntModel.load(path)
    assert loaded.fmt == model.fmt and loaded.meta == model.meta
    for a, b in zip(loaded.layers, model.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert a.frac == b.frac
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]      # no temporary files left


def test_truncated(tmp_path, model):
    path = tmp_path / "m.json"
    model.save(path)
    path.write_text(path.read_text()[:100])
    with pytest.raises(ClockpropError, match="truncated"):
        IntModel.load(path)


def test_bad_checksum(tmp_path, model):
    path = tmp_path / "m.json"
    model.save(path)
    content = json.loads(path.read_text())
    content["layers"][0]["bias"][0] += 1
    path.write_text(json.dumps(content))
    with pytest.raises(ClockpropError, match="checksum"):
        IntModel.load(path)


def test_newer_version(tmp_path, model):
    path = tmp_path / "m.json"
    model.save(path)
    content = json.loads(path.read_text())
    content["version"] = FILE_VERSION + 1
    path.write_text(json.dumps(content))
    with pytest.raises(ClockpropError, match="newer"):
        IntModel.load(path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ClockpropError, match="does not exist"):
        IntModel.load(tmp_path / "nope.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ClockpropError, match="not a clockprop model"):
        IntModel.load(tmp_path / "other.json")


def test_weights_that_do_not_fit_the_format():
    fmt = QFormat(weight_bits=4)
    with pytest.raises(ClockpropError, match="do not fit"):
        IntModel(fmt, (IntLayer(np.array([[9, 0]]), np.array([0]), 3),))


def test_layers_must_chain():
    fmt = QFormat()
    l0 = IntLayer(np.zeros((3, 2), np.int64), np.zeros(3, np.int64), 2)
    l1 = IntLayer(np.zeros((2, 4), np.int64), np.zeros(2, np.int64), 2)
    with pytest.raises(ClockpropError, match="takes 4 inputs"):
        IntModel(fmt, (l0, l1))


def test_inputs_out_of_range(model):
    with pytest.raises(ClockpropError, match=r"\[0, 15\]"):
        model.forward(np.full((1, 6), 16))
    with pytest.raises(ClockpropError, match="6 features"):
        model.forward(np.zeros((1, 5), np.int64))


def test_written_files_get_the_usual_mode(tmp_path, model):
    import os
    model.save(tmp_path / "m.json")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~mask
