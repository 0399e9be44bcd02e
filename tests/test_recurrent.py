"""Recurrent models: the い/よ/し task, the integer golden models, generation, bad input."""

import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clockprop.core.errors import ClockpropError
from clockprop.core.qformat import QFormat
from clockprop.models.recurrent import (
    ElmanNet, IntElman, IntSioConv, Lfsr16, RecurrentConfig, SioConvNet, accuracy,
    bits_per_char, generate, quantize_recurrent, sample_index, temperature_shift,
    train_recurrent,
)
from clockprop.models.text import (
    IYOSHI_WORDS, Vocab, determined_positions, iyoshi_corpus, prose_corpus,
)

WORDS_RE = re.compile("(" + "|".join(IYOSHI_WORDS) + ")*")


@pytest.fixture(scope="module")
def iyoshi():
    text = iyoshi_corpus()
    vocab = Vocab.from_text(text)
    return text, vocab, vocab.encode(text), determined_positions(text, 2)


@pytest.fixture(scope="module")
def elman(iyoshi):
    _, vocab, ids, _ = iyoshi
    return train_recurrent(ids, len(vocab), RecurrentConfig(cell="elman", seed=0))


# -- text ------------------------------------------------------------------------------------


def test_vocab_round_trip_japanese():
    text = "いろはにほへと ちりぬるを\nabc"
    vocab = Vocab.from_text(text)
    assert len(vocab) == len(set(text))
    assert vocab.decode(vocab.encode(text)) == text
    assert Vocab.from_text(text.encode("utf-8")) == vocab


def test_iyoshi_needs_context(iyoshi):
    text, vocab, _, det = iyoshi
    assert vocab.chars == ("い", "し", "よ")
    assert WORDS_RE.fullmatch(text)
    assert not determined_positions(text, 1).any()      # the current character never suffices
    # inside a word the next character is fixed by the last two; after し (a word end) not
    assert det[4::4].all() and det[1::4].all() and det[2::4].all()
    assert not det[3::4].any()


def test_prose_corpus():
    text = prose_corpus()
    assert len(text.encode("utf-8")) > 3000
    assert 20 < len(Vocab.from_text(text)) < 40


# -- learning --------------------------------------------------------------------------------


def test_elman_learns_context(iyoshi, elman):
    _, vocab, ids, det = iyoshi
    assert elman.curve[-1] < 0.5 * elman.curve[0]
    assert accuracy(elman.net, ids, det) == 1.0
    q = quantize_recurrent(elman.net, QFormat())
    assert accuracy(q, ids, det) == 1.0
    assert abs(bits_per_char(q, ids) - bits_per_char(elman.net, ids)) < 0.05


@pytest.mark.parametrize("cell", ["elman", "reservoir", "sioconv"])
def test_context_forced_to_zero_is_worse(iyoshi, cell):
    _, vocab, ids, det = iyoshi
    net = train_recurrent(ids, len(vocab), RecurrentConfig(cell=cell, context=False,
                                                           epochs=10)).net
    assert accuracy(net, ids, det) < 0.5
    assert accuracy(quantize_recurrent(net), ids, det) < 0.5


@pytest.mark.parametrize("cell,epochs", [("reservoir", 40), ("sioconv", 60)])
def test_other_cells_learn_context(iyoshi, cell, epochs):
    _, vocab, ids, det = iyoshi
    cfg = RecurrentConfig(cell=cell, epochs=epochs, lr=0.1, decay_shifts=(1, 2))
    net = train_recurrent(ids, len(vocab), cfg).net
    # SioConv's linear state starts cold at 0: the first word may be missed
    after_first_word = det & (np.arange(det.size) >= 4)
    assert accuracy(net, ids, after_first_word) == 1.0
    assert accuracy(quantize_recurrent(net), ids, after_first_word) == 1.0


# -- integer golden models against plain loops -----------------------------------------------


def ref_elman(q, ids):
    """Scalar Python: the Elman integer arithmetic written out."""
    A, H, V = q.fmt.a_max, q.n_hidden, q.n_vocab
    ctx, out = [0] * H, []
    for x in ids:
        u = [A if i == x else 0 for i in range(V)] + (ctx if q.context else [0] * H)
        a = []
        for j in range(H):
            acc = int(q.b[j]) + sum(int(q.w[j, i]) * u[i] for i in range(V + H))
            a.append(min(max(acc >> q.frac, 0), A))
        out.append([int(q.b_out[k]) + sum(int(q.w_out[k, j]) * a[j] for j in range(H))
                    for k in range(V)])
        ctx = a
    return out


def ref_sioconv(q, ids):
    """Scalar Python: the SioConv integer arithmetic written out."""
    A, H, V, s = q.fmt.a_max, q.n_hidden, q.n_vocab, q.state_frac
    c, out = [0] * H, []
    for x in ids:
        a = []
        for j in range(H):
            z = int(q.w_in[j, x]) * A
            k = int(q.shifts[j])
            c[j] = (c[j] - (c[j] >> k) if q.context else 0) + (z << s)
            assert abs(c[j]) <= q.state_bound()
            a.append(min(max((c[j] + (int(q.b[j]) << s)) >> (q.frac + s), 0), A))
        out.append([int(q.b_out[k]) + sum(int(q.w_out[k, j]) * a[j] for j in range(H))
                    for k in range(V)])
    return out


def random_int_elman(rng, fmt, V=3, H=7, context=True):
    W = fmt.w_max
    return IntElman(fmt, rng.integers(-W, W + 1, (H, V + H)), rng.integers(-400, 400, H), 5,
                    rng.integers(-W, W + 1, (V, H)), rng.integers(-400, 400, V), 4, context)


def random_int_sioconv(rng, fmt, V=3, H=7, context=True):
    W = fmt.w_max
    return IntSioConv(fmt, rng.integers(-W, W + 1, (H, V)), rng.integers(-400, 400, H), 5,
                      rng.integers(1, 5, H), 3, rng.integers(-W, W + 1, (V, H)),
                      rng.integers(-400, 400, V), 4, context)


@pytest.mark.parametrize("context", [True, False])
def test_int_elman_equals_reference(context):
    rng = np.random.default_rng(1)
    for fmt in (QFormat(4, 8), QFormat(3, 5, 16)):
        q = random_int_elman(rng, fmt, context=context)
        ids = rng.integers(0, 3, 40)
        np.testing.assert_array_equal(q.run(ids), ref_elman(q, ids))


@pytest.mark.parametrize("context", [True, False])
def test_int_sioconv_equals_reference(context):
    rng = np.random.default_rng(2)
    for fmt in (QFormat(4, 8), QFormat(3, 5, 16)):
        q = random_int_sioconv(rng, fmt, context=context)
        ids = rng.integers(0, 3, 40)
        np.testing.assert_array_equal(q.run(ids), ref_sioconv(q, ids))


def test_quantized_elman_equals_reference(iyoshi, elman):
    _, _, ids, _ = iyoshi
    q = quantize_recurrent(elman.net)
    np.testing.assert_array_equal(q.run(ids[:60]), ref_elman(q, ids[:60]))


# -- SioConv decay ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(-(1 << 40), 1 << 40), st.integers(1, 16))
def test_decay_by_shift_equals_formula(c, k):
    d = int(np.int64(c) - (np.int64(c) >> k))
    assert d == c - math.floor(c / 2**k) == c - (c // 2**k)
    exact = (1 - Fraction(1, 2**k)) * c             # a * c with a = 1 - 2**-k
    assert 0 <= d - exact < 1
    if c % (1 << k) == 0:
        assert d == exact


def test_int_sioconv_state_tracks_float():
    """With the float model built from the integer weights, the states differ only by the
    floor of the decay: less than 2**k state LSBs."""
    rng = np.random.default_rng(3)
    q = random_int_sioconv(rng, QFormat(4, 8))
    scale = q.fmt.a_max * 2.0**(q.frac + q.state_frac)
    net = SioConvNet(q.w_in / 2.0**q.frac, q.b / (q.fmt.a_max * 2.0**q.frac), q.shifts,
                     np.zeros((3, 7)), np.zeros(3))
    ci, cf = q.init_state(1), net.init_state(1)
    for x in rng.integers(0, 3, 200):
        ci, _ = q.step(ci, np.array([x]))
        cf, _ = net.step(cf, np.array([x]))
        err = ci[0] - cf[0] * scale
        assert np.all((err >= 0) & (err < 2.0**q.shifts))


# -- generation ------------------------------------------------------------------------------


def test_lfsr_is_maximal_and_pinned():
    lfsr = Lfsr16(0xACE1)
    assert [lfsr.step() for _ in range(4)] == [0xE270, 0x7138, 0x389C, 0x1C4E]
    assert Lfsr16(0xACE1).draw() == 0xEB62
    lfsr = Lfsr16(1)
    period = 1
    while lfsr.step() != 1:
        period += 1
    assert period == 65535


def test_sample_index_follows_base2_softmax():
    lfsr = Lfsr16(7)
    logits = np.array([0, 3 << 4, 0, -(20 << 4)])   # with shift 4: d = [3, 0, 3, 23]
    counts = np.bincount([sample_index(logits, 4, lfsr) for _ in range(4000)], minlength=4)
    p = np.array([1 / 8, 1, 1 / 8, 0]) / 1.25
    assert counts[3] == 0
    np.testing.assert_allclose(counts / 4000, p, atol=0.03)


def test_generation_is_deterministic(iyoshi, elman):
    _, vocab, _, _ = iyoshi
    q = quantize_recurrent(elman.net)
    assert WORDS_RE.fullmatch(generate(elman.net, vocab, "し", 40))
    assert generate(q, vocab, "し", 40) == generate(elman.net, vocab, "し", 40)
    shift = temperature_shift(q)
    a = generate(q, vocab, "し", 80, shift=shift, seed=123)
    assert a == generate(q, vocab, "し", 80, shift=shift, seed=123)
    assert a != generate(q, vocab, "し", 80, shift=shift, seed=321)
    assert WORDS_RE.fullmatch(a)


# -- bad input -------------------------------------------------------------------------------


def test_bad_inputs_raise(iyoshi, elman):
    _, vocab, ids, _ = iyoshi
    with pytest.raises(ClockpropError, match="empty"):
        Vocab.from_text("")
    with pytest.raises(ClockpropError, match="'x'.*'ア'"):
        generate(elman.net, vocab, "いxアx", 5)
    with pytest.raises(ClockpropError, match="empty"):
        generate(elman.net, vocab, "", 5)
    with pytest.raises(ClockpropError, match="integer model"):
        generate(elman.net, vocab, "い", 5, shift=3)
    with pytest.raises(ClockpropError, match="seed"):
        Lfsr16(0)
    with pytest.raises(ClockpropError, match="unknown recurrent cell"):
        RecurrentConfig(cell="lstm")
    with pytest.raises(ClockpropError, match="hidden"):
        RecurrentConfig(hidden=0)
    with pytest.raises(ClockpropError, match="outside"):
        train_recurrent(np.array([0, 1, 5]), 3)
    with pytest.raises(ClockpropError, match="too short"):
        train_recurrent(np.array([0]), 3)
    with pytest.raises(ClockpropError, match="cannot quantize"):
        quantize_recurrent(object())
    with pytest.raises(ClockpropError, match="NaN|diverged"):
        bad = ElmanNet(*(np.full(s, np.nan) for s in [(4, 3), (4, 4), 4, (3, 4), 3]))
        quantize_recurrent(bad)
