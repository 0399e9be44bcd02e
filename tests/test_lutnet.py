"""Learned truth tables (rule ``lut``): the gateware equals the golden model on every test
sample, the model file keeps the tables, training learns and is repeatable, and bad
configurations get clean errors."""

from pathlib import Path

import numpy as np
import pytest

from clockprop.core.errors import ClockpropError
from clockprop.core.qformat import QFormat
from clockprop.hw.pipeline import layer_mappings
from clockprop.models.datasets import load_dataset
from clockprop.models.intmodel import IntLayer, IntModel
from clockprop.models.lutnet import quantize_tables
from clockprop.models.train import TrainConfig, to_int_model, train
from clockprop.models.truthtable import layer_tables, pack_codes
from clockprop.sim.pysim import simulate

from conftest import assert_clean_error, clockprop

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
FMT = QFormat(act_bits=2, weight_bits=6)


def _config(**kw):
    return TrainConfig(**{**dict(rule="lut", hidden=(60,), fan_in=(2, 6), epochs=4, lr=0.1,
                                 weight_decay=0.01, prune=0.0, qat=True,
                                 fan_in_select="variance"), **kw})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", 0)


@pytest.fixture(scope="module")
def trained(digits):
    result = train(_config(redraw=0.5, epochs=6), digits, FMT)
    return result, to_int_model(result.net, FMT, {"name": "lut"})


def test_tables_are_the_golden_model(trained, digits):
    """The integer model's hidden activations are each neuron's table entry for its code,
    the logits their sums per class, and the float net's integer tables agree."""
    result, model = trained
    a = FMT.quantize_input(digits.x_test)
    hidden = FMT.activate(model.trace(a)[0], model.layers[0].frac)
    for j, table in enumerate(layer_tables(model.layers[0], FMT)):
        assert len(table.inputs) == 2 and len(table.table) == 16
        np.testing.assert_array_equal(hidden[:, j],
                                      table.table[pack_codes(a, table.inputs, 2)])
    per_class = hidden.reshape(len(a), 10, 6).sum(axis=2)
    np.testing.assert_array_equal(model.forward(a), per_class)
    net = result.net
    want = net.logits_of_codes(net.codes(a), net.integer_tables())
    np.testing.assert_array_equal(model.forward(a), want)
    assert model.accuracy(a, digits.y_test) == result.history[-1]["int_test_acc"]


@pytest.mark.parametrize("register_every", [0, 2])
def test_gateware_equals_the_golden_model(trained, digits, register_every):
    _, model = trained
    assert layer_mappings(model) == ["truth-table", "shift-add"]
    a = FMT.quantize_input(digits.x_test[:150])
    got = simulate(model, a, register_every=register_every, stall=0.2)
    np.testing.assert_array_equal(got.logits, model.forward(a))
    np.testing.assert_array_equal(got.classes, model.predict(a))


def test_model_file_keeps_the_tables(trained, digits, tmp_path):
    _, model = trained
    model.save(tmp_path / "m.json")
    back = IntModel.load(tmp_path / "m.json")
    np.testing.assert_array_equal(back.layers[0].table, model.layers[0].table)
    assert back.layers[1].table is None
    a = FMT.quantize_input(digits.x_test)
    np.testing.assert_array_equal(back.forward(a), model.forward(a))


def test_training_learns_and_repeats(digits):
    """Well above chance in a few epochs, and the same config gives the same tables."""
    first = train(_config(hidden=(200,), fan_in=(2, 20), epochs=5), digits, FMT)
    again = train(_config(hidden=(200,), fan_in=(2, 20), epochs=5), digits, FMT)
    np.testing.assert_array_equal(first.net.tables, again.net.tables)
    model = to_int_model(first.net, FMT)
    assert model.accuracy(FMT.quantize_input(digits.x_test), digits.y_test) > 0.85
    assert [row["epoch"] for row in first.history] == [1, 2, 3, 4, 5]


def test_redraw_changes_only_the_weakest_inputs(digits):
    plain = train(_config(epochs=5), digits, FMT).net
    redrawn = train(_config(epochs=5, redraw=0.5), digits, FMT).net
    changed = (plain.inputs != redrawn.inputs).any(axis=1)
    assert 0 < changed.sum() <= 3 * 30               # at most half of every class, 3 times
    assert (plain.inputs[:, 0] < plain.inputs[:, 1]).all()


def test_a_table_layer_is_always_a_truth_table(trained):
    _, model = trained
    with pytest.raises(ClockpropError, match=r"layer 0 \(learned truth tables\) needs truth "
                                             r"tables of 4 input bits .* the limit is 3"):
        layer_mappings(model, lut_bits=3)
    with pytest.raises(ClockpropError, match="learned truth tables, which cannot be folded"):
        layer_mappings(model, fold=[2, 1])


@pytest.mark.parametrize("change,message", [
    (dict(hidden=(60, 10), fan_in=(2, 6, 1)), "rule lut has one hidden layer"),
    (dict(hidden=(65,), fan_in=(2, 0)), "hidden 65 is not a multiple of the 10 classes"),
    (dict(fan_in=(0, 6)), "needs fan_in = [k, 6] with k the inputs per table"),
    (dict(fan_in=(2, 5)), "each class reads its own 6 neurons"),
    (dict(fan_in_select="magnitude"), "fan_in_select must be 'random' or 'variance'"),
    (dict(fan_in=(7, 6)), "= 14 input bits; the most is 12"),
])
def test_bad_table_configs(digits, change, message):
    with pytest.raises(ClockpropError, match=message.replace("[", r"\[").replace("(", r"\(")):
        train(_config(**change), digits, FMT)


def test_bad_settings_and_model_files():
    with pytest.raises(ClockpropError, match="redraw needs rule lut"):
        TrainConfig(rule="csb", redraw=0.2)
    with pytest.raises(ClockpropError, match=r"redraw must be a number in \[0, 1\)"):
        _config(redraw=1.0)
    mask = np.zeros((3, 4), dtype=np.int64)
    mask[:, :2] = 1
    out = IntLayer(np.ones((2, 3), dtype=np.int64), np.zeros(2, dtype=np.int64), 1)
    good = np.zeros((3, 16), dtype=np.int64)
    IntModel(FMT, (IntLayer(mask, np.zeros(3, dtype=np.int64), 1, table=good), out))
    for table, message in [(np.zeros((3, 8), dtype=np.int64), "table of shape"),
                           (np.full((3, 16), 4), r"outside \[0, 3\]")]:
        with pytest.raises(ClockpropError, match=message):
            IntModel(FMT, (IntLayer(mask, np.zeros(3, dtype=np.int64), 1, table=table), out))
    with pytest.raises(ClockpropError, match="2-bit activations, the format has 3"):
        quantize_tables(train(_config(epochs=1), load_dataset("digits", 0), FMT).net,
                        QFormat(act_bits=3))


def test_cli_trains_simulates_and_refuses_shift_adds(tmp_path):
    small = ["--config", str(CONFIGS / "digits_lut.toml"), "--set", "train.hidden=[100]",
             "--set", "train.fan_in=[2, 10]", "--set", "train.epochs=3"]
    result = clockprop(tmp_path, "train", *small, "--out", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    result = clockprop(tmp_path, "sim", str(tmp_path / "m.json"), "--limit", "40")
    assert result.returncode == 0, result.stderr
    assert "40/40 samples bit-exact" in result.stderr
    result = clockprop(tmp_path, "train", *small, "--set", "hardware.lut_bits=0",
                       "--out", str(tmp_path / "n.json"))
    assert_clean_error(result, "rule lut learns truth tables, which have no shift-add form")
    assert not (tmp_path / "n.json").exists()
