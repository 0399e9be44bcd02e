"""The training board top, its simulated board and the host side of on-chip training."""

import numpy as np
import pytest

from clockprop.boards.train_top import TrainDeviceCore
from clockprop.sim.train_top_sim import simulated_train_board
from clockprop.core.errors import ClockpropError
from clockprop.models.inttrain import IntTrainConfig, IntTrainer
from clockprop.core.protocol import FrameType, encode_train
from clockprop.sw.train_cli import TrainClient, compare_weights
from clockprop.core.transport import Link

from conftest import assert_clean_error, clockprop

CFG = IntTrainConfig(rule="ed", hidden=(2,), weight_bits=6, frac=(3, 3), shift=(5, 6),
                     e_shift=3, e_max=3, drop=(0, 1), gate_margin=2, anneal=1, seed=5)


def _data(rng, n, n_in=5, n_classes=3):
    return rng.integers(0, 16, (n, n_in)), rng.integers(0, n_classes, n)


def test_train_infer_stored_and_read_back():
    """TRAIN, TRAIN_STORED and INFER on the simulated top: every weight read back equals the
    integer trainer's after the same sequence, and so do the acks."""
    rng = np.random.default_rng(1)
    host = IntTrainer(CFG, 5, 3)
    stored = _data(rng, 7)
    with Link(simulated_train_board(host, stored=stored), timeout=600) as link:
        client = TrainClient(link, host)
        x, y = _data(rng, 5)
        for k, (xi, yi) in enumerate(zip(x, y)):
            ack = client.train(xi, int(yi), k % 2)
            assert ack.cls == host.step(xi, int(yi), k % 2)
            assert (ack.steps, ack.correct, ack.lfsr) == (k + 1, int(ack.cls == yi),
                                                          host.lfsr.state)
        ack = client.train_stored(1, 10)                    # wraps around the 7 samples
        order = np.arange(10) % 7
        predicted = host.train_steps(stored[0][order], stored[1][order], 1)
        assert ack.steps == 15 and not ack.refused
        assert ack.correct == int(np.sum(predicted == stored[1][order]))
        cls, logits = client.infer(x[0])
        np.testing.assert_array_equal(logits, host.forward_all(x[:1])[1][0])
        assert cls == int(np.argmax(logits))
        flat = client.read_weights()
        assert len(flat) == 6 * 11 + 3 * 3                  # ed: absent weights not sent
        compare_weights(host, flat, ack.lfsr)
        assert host.steps == 15


def test_bad_label_and_lr_are_refused():
    rng = np.random.default_rng(2)
    host = IntTrainer(CFG, 5, 3)
    x, _ = _data(rng, 1)
    with Link(simulated_train_board(host), timeout=600) as link:
        client = TrainClient(link, host)
        with pytest.raises(ClockpropError, match="label 3 is out of range"):
            client.train(x[0], 3)
        with pytest.raises(ClockpropError, match="lr 2 must be in"):
            client.train(x[0], 0, 2)
        # the board checks too, and changes nothing
        with pytest.raises(ClockpropError, match="LABEL"):
            link.request(FrameType.TRAIN, encode_train(7, 0, x[0], 4))
        with pytest.raises(ClockpropError, match="LEARNING_RATE"):
            link.request(FrameType.TRAIN, encode_train(0, 2, x[0], 4))
        with pytest.raises(ClockpropError, match="UNKNOWN_TYPE"):     # no stored split
            client.train_stored(0, 3)
        ack = client.train(x[0], 1)
        assert ack.steps == 1 and not ack.refused
        host.step(x[0], 1)
        compare_weights(host, client.read_weights(), ack.lfsr)


def test_compare_weights_names_the_differences():
    host = IntTrainer(CFG, 5, 3)
    flat = host.flat_weights().copy()
    flat[[3, 70]] += 1                                      # layer 0 V[0, 3], layer 1 V[1, 3]
    with pytest.raises(ClockpropError, match=r"2 of 75 weights .*layer 0 V\[0, 3\] = .*"
                                             r"layer 1 V\[1, 3\]"):
        compare_weights(host, flat)
    with pytest.raises(ClockpropError, match="holds 74 weights"):
        compare_weights(host, flat[:-1])
    with pytest.raises(ClockpropError, match="LFSR"):
        compare_weights(host, host.flat_weights(), host.lfsr.state ^ 1)


def test_a_board_that_diverged_is_an_error():
    """A board that started from other weights: the host notices, it never goes on."""
    from clockprop.models.datasets import load_dataset
    from clockprop.sw.train_cli import run_board
    cfg = IntTrainConfig(hidden=(), weight_bits=6, frac=3, shift=5, e_shift=3, e_max=3,
                         fan_in=2, epochs=1)
    data = load_dataset("digits", 0)
    other = IntTrainer(cfg, 64, 10)
    other.v[0][4, -1] += 1                                  # one bias differs
    with Link(simulated_train_board(other), timeout=600) as link:
        with pytest.raises(ClockpropError, match="diverged"):
            run_board(cfg, data, link, limit=4, progress=lambda msg: None)


def test_estimate_counts_the_read_back():
    host = IntTrainer(CFG, 5, 3)
    core = TrainDeviceCore(host, divisor=4, stored=_data(np.random.default_rng(3), 9))
    need = core.estimate(capacity=None)
    unit = core.net.cost
    assert need["lut"] > unit.lut + core.n_weights * 3 and need["ff"] > unit.ff


def test_bad_stored_split():
    host = IntTrainer(CFG, 5, 3)
    with pytest.raises(ClockpropError, match="labels in"):
        TrainDeviceCore(host, divisor=4, stored=(np.zeros((2, 5), int), [0, 3]))
    with pytest.raises(ClockpropError, match="fold"):
        TrainDeviceCore(host, divisor=4, serial=False, fold=2)


TINY = ["--set", "hidden=[]", "--set", "fan_in=2", "--set", "weight_bits=6", "--set", "drop=0",
        "--set", "frac=3"]


@pytest.mark.parametrize("extra", [["--limit", "8", "--points", "2"],
                                   ["--stored", "--limit", "10", "--set", "epochs=2"]])
def test_cli_trains_the_simulated_board(tmp_path, extra):
    result = clockprop(tmp_path, "train-onchip", "--port", "sim", *TINY, *extra)
    assert result.returncode == 0, result.stderr
    assert "read back equal to the host's integer trainer" in result.stdout
    assert (tmp_path / "reports" / "onchip-digits" / "onchip_board.json").exists()


def test_cli_pysim_mode(tmp_path):
    """Without --port: the unit in pysim next to the integer trainer, and a report."""
    result = clockprop(tmp_path, "train-onchip", *TINY, "--set", "epochs=2", "--sim-steps",
                       "6", "--points", "2")
    assert result.returncode == 0, result.stderr
    report = (tmp_path / "reports" / "onchip-digits" / "onchip.md").read_text()
    assert "every weight equal" in report


@pytest.mark.parametrize("args, needles", [
    (["--set", "weight_bits=4", "--set", "drop=0", "--set", "shift=0"],
     ["shift[0] = 0 would overflow"]),
    (["--set", "learning_rate=3"], ["unknown setting learning_rate"]),
    (["--set", "rule=\"bp\""], ["rule must be one of csb, ed"]),
    (["--board", "nosuchboard"], ["nosuchboard"]),
])
def test_cli_bad_input(tmp_path, args, needles):
    assert_clean_error(clockprop(tmp_path, "train-onchip", "--port", "sim", *args), *needles)


@pytest.mark.parametrize("args, needles", [
    (["--board", "icebreaker", "--set", "hidden=[8]", "--set", "fan_in=0"],
     ["does not fit icebreaker", "LUT needed", "hidden=[20]"]),
    ([], ["--bitstream needs --board"]),
    (["--board", "icebreaker", "--port", "sim"], ["one at a time"]),
])
def test_cli_bitstream_bad_input(tmp_path, args, needles):
    assert_clean_error(clockprop(tmp_path, "train-onchip", "--bitstream", *args), *needles)
    assert not (tmp_path / "build").exists()


def _build_small_training_top(board, family, out_dir):
    """Build the training top of a small net with a 16-sample stored split (skipped without
    the family's toolchain)."""
    from clockprop.boards.build import build_train, check_toolchain
    try:
        check_toolchain(family)
    except ClockpropError as e:
        pytest.skip(str(e))
    cfg = IntTrainConfig(hidden=(3,), weight_bits=6, frac=(3, 3), shift=(4, 4), e_shift=4,
                         e_max=1, gate_margin=2)            # up/down counters: ~2000 LUT4
    return build_train(IntTrainer(cfg, 5, 3), board,
                       stored=_data(np.random.default_rng(4), 16), out_dir=out_dir)


@pytest.mark.synth
@pytest.mark.slow
def test_up5k_training_top_builds(tmp_path):
    """The training top of a small net with a stored split, placed and routed on the UP5K."""
    report = _build_small_training_top("icebreaker", "ice40", tmp_path)
    res = report["resources"]
    assert 0 < res["lut"]["used"] <= res["lut"]["available"] and res["ebr"]["used"] >= 1
    assert report["timing_met"] and report["fmax_mhz"] > report["pll_mhz"]
    assert report["training_samples_per_s"] == report["fmax_mhz"] * 1e6 / \
        report["clocks_per_sample"]
    assert (tmp_path / "top.bin").stat().st_size > 0
    assert "clocks per sample" in (tmp_path / "report.md").read_text()


@pytest.mark.synth
@pytest.mark.slow
def test_ecp5_training_top_builds_with_the_spreading_placer(tmp_path):
    """The same small training top on the ULX3S, placed by nextpnr's electrostatic placer,
    its sums on carry chains."""
    report = _build_small_training_top("ulx3s", "ecp5", tmp_path)
    assert "--placer static" in (tmp_path / "build_top.sh").read_text()
    assert "maccmap -unmap" in (tmp_path / "top.ys").read_text()
    res = report["resources"]
    assert report["timing_met"] and 0 < res["lut"]["used"] <= res["lut"]["available"]
    assert (tmp_path / "top.bit").stat().st_size > 0
