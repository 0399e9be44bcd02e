"""The fit check: resource estimates against board capacities, and the refusal message."""

import numpy as np
import pytest

from clockprop.boards.registry import UP5K, ECP5_85F, get_board
from clockprop.core.errors import ClockpropError
from clockprop.boards.fit import (LC_FF_SHARE, LOGIC_ROM_SHARE, check_fit, ebr_blocks, estimate,
                                  logic_rom_cost, rom_ebr, selftest_capacity, selftest_storage)

from conftest import random_model
from clockprop.core.qformat import QFormat


def test_ebr_blocks_pick_the_best_shape():
    assert ebr_blocks(256, 16, UP5K) == 1
    assert ebr_blocks(450, 256, UP5K) == 32          # 2 deep x 16 wide (256x16 blocks)
    assert ebr_blocks(450, 4, UP5K) == 1             # 1024x4
    assert ebr_blocks(450, 260, ECP5_85F) == 8       # 512x36
    assert ebr_blocks(0, 8, UP5K) == 0


@pytest.fixture(scope="module")
def big():
    fmt = QFormat(act_bits=4, weight_bits=8, bias_bits=20)
    return random_model(np.random.default_rng(0), [64, 32, 10], fmt=fmt, density=0.9)


@pytest.fixture(scope="module")
def tiny():
    return random_model(np.random.default_rng(1), [6, 4, 3])


def test_selftest_capacity_leaves_room(big):
    n = selftest_capacity(big, UP5K, 450)
    assert 0 < n < 450
    need = estimate(big, selftest_samples=n, capacity=UP5K)["ebr"]
    assert need <= UP5K.ebr
    assert selftest_capacity(big, ECP5_85F, 450) == 450


def test_selftest_split_in_logic_only_on_the_ecp5_and_only_while_small(big, tiny):
    # The digits split on the ECP5-85F: 450 x 256 bits, 29 banks of 16 words.
    assert logic_rom_cost(450, 256) == {"lut": 29 * 256 * 3 // 2, "ff": 29 * 256 + 4 * 256}
    assert selftest_storage(tiny, "ecp5", ECP5_85F, 450) == "logic"
    assert selftest_storage(tiny, "ice40", UP5K, 20) == "block"
    assert selftest_storage(tiny, "ecp5", ECP5_85F, 0) == "block"
    # Past LOGIC_ROM_SHARE of the LUTs, or where the top would pass WARN, block RAM.
    n = 450
    while logic_rom_cost(n, 6 * 4)["lut"] <= LOGIC_ROM_SHARE * ECP5_85F.lut:
        n += 16
    assert selftest_storage(tiny, "ecp5", ECP5_85F, n) == "block"
    assert estimate(big)["lut"] > 0.7 * ECP5_85F.lut
    assert selftest_storage(big, "ecp5", ECP5_85F, 450) == "block"
    block = estimate(tiny, selftest_samples=450, capacity=ECP5_85F)
    logic = estimate(tiny, selftest_samples=450, capacity=ECP5_85F, selftest_storage="logic")
    assert logic["ebr"] == block["ebr"] - ebr_blocks(450, 6 * 4, ECP5_85F) - \
        ebr_blocks(450, 2, ECP5_85F)
    assert logic["lut"] - block["lut"] == logic_rom_cost(450, 6 * 4)["lut"] + \
        logic_rom_cost(450, 2)["lut"]
    # check_fit counts the split where the board top will keep it.
    assert check_fit(tiny, get_board("ulx3s"), selftest_samples=450).need == logic
    assert check_fit(big, get_board("ulx3s"), selftest_samples=450).need == \
        estimate(big, selftest_samples=450, capacity=ECP5_85F)


def test_a_model_too_big_is_refused_with_a_clear_message(big):
    with pytest.raises(ClockpropError) as info:
        check_fit(big, get_board("icebreaker"))
    message = str(info.value)
    assert "does not fit icebreaker" in message
    assert "LUT4 needed, 5280 available" in message
    assert "hidden" in message and "weight_bits" in message and "bigger board" in message
    assert "\n" not in message


def test_fit_report_without_strict(big):
    report = check_fit(big, get_board("icebreaker"), strict=False)
    assert not report.fits and report.need["lut"] > 5280
    assert check_fit(big, get_board("ulx3s")).fits


def test_tiny_model_fits_everywhere(tiny):
    for name in ("icebreaker", "upduino_v3", "ice40_hx8k", "ulx3s", "orangecrab"):
        report = check_fit(tiny, get_board(name), selftest_samples=100)
        assert report.fits and report.need["dsp"] == 0


def test_tree_registers_count_flip_flops(big):
    assert estimate(big, register_every=1)["ff"] > estimate(big)["ff"]
    assert estimate(big, register_every=1)["lut"] == estimate(big)["lut"]


def test_fit_cli(tmp_path, big, capsys):
    from clockprop.sw.cli import main
    path = tmp_path / "big.json"
    big.save(path)
    assert main(["fit", str(path), "--board", "icebreaker", "--no-selftest"]) == 1
    assert "does not fit icebreaker" in capsys.readouterr().err
    assert main(["fit", str(path), "--board", "ulx3s", "--no-selftest"]) == 0
    assert main(["fit", str(path), "--board", "nosuchboard"]) == 1
    assert "known boards: ice40_hx8k, icebreaker" in capsys.readouterr().err


def test_folding_trades_logic_for_block_ram(big):
    flat = estimate(big, capacity=UP5K)
    folded = estimate(big, fold=[64, 32], capacity=UP5K)
    assert folded["lut"] < flat["lut"] / 8      # the ROM-fed adders and control stay
    # Layer 0: 64 words of 32 x 1 x 8 bits (256 x 16 blocks: 16); layer 1: 32 words of
    # 10 x 1 x 8 bits (5 blocks).
    assert rom_ebr(big, [64, 32], UP5K) == 21
    assert folded["ebr"] == flat["ebr"] + 21
    assert not check_fit(big, get_board("ice40_hx8k"), strict=False).fits
    assert check_fit(big, get_board("ice40_hx8k"), fold=[64, 32]).fits
    # The self-test split gets only the block RAM the ROMs leave.
    assert selftest_capacity(big, UP5K, 450, fold=[64, 32]) < selftest_capacity(big, UP5K, 450)


def test_fit_cli_takes_the_fold_from_the_option_or_the_model(tmp_path, big, capsys):
    from clockprop.sw.cli import main
    path = tmp_path / "big.json"
    big.save(path)
    assert main(["fit", str(path), "--board", "ice40_hx8k", "--no-selftest"]) == 1
    assert main(["fit", str(path), "--board", "ice40_hx8k", "--no-selftest",
                 "--fold", "64,32"]) == 0
    assert "fits" in capsys.readouterr().out
    big.meta["config"] = {"hardware": {"fold": [64, 32], "register_every": 0}}
    big.save(path)
    assert main(["fit", str(path), "--board", "ice40_hx8k", "--no-selftest"]) == 0
    assert main(["fit", str(path), "--board", "ice40_hx8k", "--fold", "5,1"]) == 1
    assert "does not divide its fan-in 64" in capsys.readouterr().err


def test_ice40_logic_cells_refuse_a_top_whose_luts_and_flip_flops_fit_apart():
    """On the iCE40 a flip-flop no LUT feeds takes a logic cell of its own: a top whose
    LUT4 and flip-flops each fit the UP5K but whose cells (LUT4 + LC_FF_SHARE of the
    flip-flops) do not is refused, and the bigger boards named are those where it fits."""
    model = random_model(np.random.default_rng(1), [16, 12, 4])
    board = get_board("icebreaker")
    need = estimate(model, register_every=1, capacity=board.capacity)
    assert need["lut"] < board.capacity.lut and need["ff"] < board.capacity.ff
    assert need["lut"] + round(LC_FF_SHARE * need["ff"]) > board.capacity.lut
    with pytest.raises(ClockpropError, match=r"logic cells needed .*5280 available.*"
                                             r"bigger board \(ice40_hx8k, orangecrab"):
        check_fit(model, board, register_every=1)
    assert not check_fit(model, board, register_every=2).problems
