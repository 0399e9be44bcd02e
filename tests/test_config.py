"""The run configuration's [hardware] table and how the hardware commands resolve it."""

import numpy as np
import pytest

from clockprop.hw.pipeline import config_hardware, hardware_options
from clockprop.models.config import HardwareConfig, from_dict, load_config
from clockprop.core.errors import ClockpropError

from conftest import random_model


def test_hardware_table_round_trips():
    run = from_dict({"hardware": {"fold": [4, 1], "register_every": 2, "pnr_seed": 8}})
    assert run.hardware == HardwareConfig(fold=(4, 1), register_every=2, pnr_seed=8)
    assert run.to_dict()["hardware"] == {"fold": [4, 1], "register_every": 2, "pnr_seed": 8,
                                         "lut_bits": 6}
    assert from_dict({}).hardware == HardwareConfig()


@pytest.mark.parametrize("table, needle", [
    ({"fold": [0, 1]}, "fold must be a list of positive integers"),
    ({"fold": 4}, "fold must be a list"),
    ({"register_every": -1}, "register_every must be a non-negative integer"),
    ({"pnr_seed": 0}, "pnr_seed must be a positive integer"),
    ({"folds": [1]}, "unknown [hardware] setting(s) folds"),
])
def test_bad_hardware_settings_are_refused(table, needle):
    with pytest.raises(ClockpropError) as info:
        from_dict({"hardware": table})
    assert needle in str(info.value)


def test_shipped_mnist_configs_name_their_fold():
    assert load_config("configs/mnist.toml").hardware.fold == (784, 640)
    assert load_config("configs/mnist_up5k.toml").hardware.fold == (196, 30)
    up5k = load_config("configs/digits_up5k.toml").hardware
    assert (up5k.register_every, up5k.pnr_seed) == (2, 7)


def test_options_come_from_the_command_line_then_the_model_config():
    model = random_model(np.random.default_rng(0), [6, 4, 3])
    assert hardware_options(model) == (0, [1, 1])
    assert config_hardware(model) == {}
    model.meta["config"] = {"hardware": {"fold": [3, 2], "register_every": 1, "pnr_seed": 5}}
    assert hardware_options(model) == (1, [3, 2])
    assert config_hardware(model)["pnr_seed"] == 5
    assert hardware_options(model, register_every=0, fold=[2, 4]) == (0, [2, 4])
    with pytest.raises(ClockpropError, match="does not divide its fan-in 6"):
        hardware_options(model, fold=[4, 1])
