import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clockprop.core.errors import ClockpropError
from clockprop.core.qformat import QFormat, round_half_away, signed_width


@given(st.integers(-2**40, 2**40), st.integers(0, 2**40))
def test_signed_width_is_minimal(lo, span):
    hi = lo + span
    w = signed_width(lo, hi)
    assert -(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1
    if w > 1:
        assert not (-(1 << (w - 2)) <= lo and hi <= (1 << (w - 2)) - 1)


def test_round_half_away_from_zero():
    np.testing.assert_array_equal(round_half_away([-2.5, -1.5, -0.5, 0.5, 1.5, 2.49]),
                                  [-3, -2, -1, 1, 2, 2])


def test_activation_is_the_float_clamp():
    fmt = QFormat(act_bits=4)
    frac = 5
    acc = np.arange(-2000, 2000)
    # acc stands for h = acc / (A * 2**frac); the folded bias adds the half LSB.
    a = fmt.activate(acc + (1 << (frac - 1)), frac)
    expected = np.clip(np.floor(acc / (1 << frac) + 0.5), 0, fmt.a_max)
    np.testing.assert_array_equal(a, expected)
    assert a.min() == 0 and a.max() == fmt.a_max


@given(st.lists(st.floats(-3, 3), min_size=1, max_size=30), st.floats(-2, 2))
def test_quantized_weights_within_half_lsb(ws, b):
    fmt = QFormat(weight_bits=8)
    w = np.array(ws)
    frac = fmt.choose_frac(w, np.array([b]))
    q = fmt.quantize_weight(w, frac)
    assert np.all(np.abs(q) <= fmt.w_max)
    assert np.all(np.abs(q / (1 << frac) - w) <= 0.5 / (1 << frac) + 1e-12)


def test_acc_width_covers_every_input():
    fmt = QFormat(act_bits=3, weight_bits=5)
    w = np.array([[15, -15, 3], [-1, 0, 0]])
    b = np.array([-7, 100])
    lo, hi = fmt.acc_bounds(w, b)
    corners = np.array([[x, y, z] for x in (0, 7) for y in (0, 7) for z in (0, 7)])
    h = corners @ w.T + b
    assert lo == h.min() and hi == h.max()
    width = fmt.acc_width(w, b)
    assert -(1 << (width - 1)) <= h.min() and h.max() < (1 << (width - 1))


@pytest.mark.parametrize("kwargs", [{"act_bits": 0}, {"weight_bits": 1}, {"bias_bits": 64},
                                    {"act_bits": 4.0}, {"weight_bits": True}])
def test_bad_format_values(kwargs):
    with pytest.raises(ClockpropError, match="number format"):
        QFormat(**kwargs)


def test_weights_that_do_not_fit():
    fmt = QFormat(weight_bits=4)
    with pytest.raises(ClockpropError, match="do not fit"):
        fmt.choose_frac(np.array([100.0]), np.array([0.0]))
    with pytest.raises(ClockpropError, match="NaN"):
        fmt.choose_frac(np.array([np.nan]), np.array([0.0]))
    with pytest.raises(ClockpropError, match="do not fit"):
        fmt.check_layer(np.array([[8]]), np.array([0]), 3)
