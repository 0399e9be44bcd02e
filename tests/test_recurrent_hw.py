"""The recurrent core: gateware text == golden model text, one character per clock, the CLI."""

import json

import numpy as np
import pytest
from amaranth.back import rtlil
from hypothesis import given, settings
from hypothesis import strategies as st

from clockprop.hw.recurrent import (
    CUT_SITES, DEFAULT_CUTS, MAX_VOCAB, RecurrentCore, check_core, lfsr_draw_masks,
)
from clockprop.sim.recurrent_sim import (
    generate_sim, generate_streams_sim, simulate_generation, simulate_predictions,
    simulate_streams,
)
from clockprop.core.errors import ClockpropError
from clockprop.sw.generate_cli import load_recurrent, save_recurrent
from clockprop.core.qformat import QFormat
from clockprop.models.recurrent import (
    IntElman, IntSioConv, Lfsr16, RecurrentConfig, generate, generate_streams,
    quantize_recurrent, temperature_shift, train_recurrent,
)
from clockprop.models.text import Vocab, iyoshi_corpus

from conftest import assert_clean_error, clockprop

CHARS = "abcdefgh"


def random_recurrent(rng, cell, n_vocab, n_hidden, context):
    """A random small integer recurrent model whose logits often tie or nearly tie."""
    fmt = QFormat(act_bits=int(rng.integers(2, 5)), weight_bits=5, bias_bits=14)
    W = fmt.w_max
    frac = int(rng.integers(1, 6))
    bias = rng.integers(-fmt.b_max // 16, fmt.b_max // 16 + 1, n_hidden).astype(np.int64)
    w_out = rng.integers(-3, 4, (n_vocab, n_hidden)).astype(np.int64)
    w_out[rng.random(w_out.shape) < 0.5] = 0
    b_out = rng.integers(-2, 3, n_vocab).astype(np.int64)
    frac_out = int(rng.integers(1, 4))
    if cell == "sioconv":
        return IntSioConv(fmt, rng.integers(-W, W + 1, (n_hidden, n_vocab)).astype(np.int64),
                          bias, frac, rng.integers(1, 5, n_hidden).astype(np.int64),
                          int(rng.integers(0, 5)), w_out, b_out, frac_out, context)
    w = rng.integers(-W, W + 1, (n_hidden, n_vocab + n_hidden)).astype(np.int64)
    w[rng.random(w.shape) < 0.3] = 0
    return IntElman(fmt, w, bias, frac, w_out, b_out, frac_out, context)


def golden_ids(model, prompt_ids, n, shift, seed=0xACE1):
    vocab = Vocab(tuple(CHARS[:model.n_vocab]))
    text = generate(model, vocab, vocab.decode(prompt_ids), n, shift=shift, seed=seed)
    return vocab.encode(text)


def test_lfsr_draw_masks_are_sixteen_steps():
    masks = lfsr_draw_masks()
    rng = np.random.default_rng(0)
    for state in [1, 0xACE1, 0xFFFF, *rng.integers(1, 1 << 16, 20)]:
        lfsr = Lfsr16(int(state))
        expect = lfsr.draw()
        got = sum((bin(int(state) & mask).count("1") & 1) << b for b, mask in enumerate(masks))
        assert got == expect


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), cell=st.sampled_from(["elman", "sioconv"]),
       n_vocab=st.integers(2, 5), n_hidden=st.integers(1, 5), context=st.booleans(),
       shift=st.one_of(st.none(), st.integers(0, 6)))
def test_random_models_equal_golden(seed, cell, n_vocab, n_hidden, context, shift):
    rng = np.random.default_rng(seed)
    model = random_recurrent(rng, cell, n_vocab, n_hidden, context)
    # Two sessions back to back: the state and the LFSR must start afresh for the second.
    sessions = [(rng.integers(0, n_vocab, int(rng.integers(1, 4))), int(rng.integers(0, 12)))
                for _ in range(2)]
    result = simulate_generation(model, sessions, shift=shift)
    for (prompt, n), got in zip(sessions, result.sessions):
        np.testing.assert_array_equal(got.ids, golden_ids(model, prompt, n, shift))


def _seed_drawing(u):
    """The LFSR seed whose first draw is ``u``."""
    return next(seed for seed in range(1, 1 << 16) if Lfsr16(seed).draw() == u)


@pytest.mark.parametrize("n_vocab,u", [(2, 1 << 15), (4, 1 << 14)])
def test_ties_and_sampling_boundaries(n_vocab, u):
    # Equal logits: argmax takes index 0; with r = (u * S) >> 16 exactly equal to the first
    # prefix sum, sampling must pick index 1 (the first sum that *exceeds* r).
    H = 1
    model = IntElman(QFormat(), np.zeros((H, n_vocab + H), dtype=np.int64),
                     np.zeros(H, dtype=np.int64), 1, np.zeros((n_vocab, H), dtype=np.int64),
                     np.zeros(n_vocab, dtype=np.int64), 1)
    seed = _seed_drawing(u)
    for shift, expect in ((None, [0, 0]), (0, [1])):
        n = len(expect)
        result = simulate_generation(model, [([0], n)], shift=shift, seed=seed)
        assert result.sessions[0].ids.tolist() == expect
        assert golden_ids(model, [0], n, shift, seed).tolist() == expect


@pytest.fixture(scope="module")
def iyoshi_models():
    text = iyoshi_corpus()
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    models = {}
    for cell in ("elman", "reservoir", "sioconv"):
        net = train_recurrent(ids, len(vocab), RecurrentConfig(cell=cell, hidden=8, epochs=15,
                                                                decay_shifts=(1, 2))).net
        models[cell] = quantize_recurrent(net)
    return vocab, models


@pytest.mark.parametrize("cell", ["elman", "reservoir", "sioconv"])
@pytest.mark.parametrize("temperature", [None, 1.0, 4.0])
def test_trained_iyoshi_equal_golden_one_char_per_clock(iyoshi_models, cell, temperature):
    vocab, models = iyoshi_models
    model = models[cell]
    shift = None if temperature is None else temperature_shift(model, temperature)
    n = 80
    text, result = generate_sim(model, vocab, "いよ", n, shift=shift, seed=0x1234)
    assert text == generate(model, vocab, "いよ", n, shift=shift, seed=0x1234)
    session = result.sessions[0]
    assert session.prompt_clocks == 2           # one prompt character per clock
    assert session.latency == 1                 # first character the clock after the prompt
    assert session.gen_clocks == n              # then one character per clock
    assert session.chars_per_clock == 1.0
    if temperature == 4.0:
        assert len(set(text)) == 3


@pytest.mark.parametrize("cell", ["elman", "sioconv"])
def test_gateware_predictions_on_the_corpus(iyoshi_models, cell):
    vocab, models = iyoshi_models
    ids = vocab.encode(iyoshi_corpus(n_words=40, seed=1))
    predicted, cycles = simulate_predictions(models[cell], ids)
    np.testing.assert_array_equal(predicted, np.argmax(models[cell].run(ids[:-1]), axis=1))
    assert cycles == len(ids) - 1


def test_backpressure_and_empty_sessions(iyoshi_models):
    vocab, models = iyoshi_models
    model = models["elman"]
    shift = temperature_shift(model, 2.0)
    sessions = [(vocab.encode("し"), 0), (vocab.encode("よいい"), 25), (vocab.encode("い"), 7)]
    result = simulate_generation(model, sessions, shift=shift, stall=0.3, stall_seed=3)
    for (prompt, n), got in zip(sessions, result.sessions):
        expect = generate(model, vocab, vocab.decode(prompt), n, shift=shift)
        assert vocab.decode(got.ids) == expect


def test_model_file_round_trip(tmp_path, iyoshi_models):
    vocab, models = iyoshi_models
    for cell, model in models.items():
        path = tmp_path / f"{cell}.json"
        save_recurrent(path, model, vocab, {"name": cell, "cell": cell})
        loaded, loaded_vocab, meta = load_recurrent(path)
        assert loaded_vocab == vocab and meta["name"] == cell and type(loaded) is type(model)
        assert generate(loaded, vocab, "い", 30) == generate(model, vocab, "い", 30)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('"frac":', '"frac": 1, "x":', 1), encoding="utf-8")
    with pytest.raises(ClockpropError, match="checksum"):
        load_recurrent(path)


def test_vocabulary_too_large():
    V, H = MAX_VOCAB + 1, 1
    model = IntElman(QFormat(), np.ones((H, V + H), dtype=np.int64), np.zeros(H, dtype=np.int64),
                     1, np.ones((V, H), dtype=np.int64), np.zeros(V, dtype=np.int64), 1)
    with pytest.raises(ClockpropError, match=f"at most {MAX_VOCAB}"):
        check_core(model)


def test_core_reports_cost(iyoshi_models):
    _, models = iyoshi_models
    argmax = RecurrentCore(models["elman"]).estimate()
    sampled = RecurrentCore(models["elman"], shift=3).estimate()
    assert 0 < argmax.lut < sampled.lut
    assert argmax.ff == 8 * 4 + 2 + 16 + 2      # context, flags, count, character
    with pytest.raises(ClockpropError, match="fewer hidden channels"):
        check_core(models["elman"], lut_budget=10, cost=argmax, where=" on tiny")


# -- C-slow: K streams through a loop cut by K - 1 registers -----------------------------------

STREAM_PROMPTS = ["いよ", "し", "よしいい", "いしよ", "よ"]
STREAM_LENGTHS = [40, 23, 31, 7, 16]


@pytest.mark.parametrize("cell", ["elman", "sioconv"])
@pytest.mark.parametrize("temperature", [None, 2.0])
@pytest.mark.parametrize("K", [1, 2, 3, 4])
def test_streams_equal_golden(iyoshi_models, cell, temperature, K):
    vocab, models = iyoshi_models
    model = models[cell]
    shift = None if temperature is None else temperature_shift(model, temperature)
    seeds = [0x1234 + 77 * s for s in range(K)]
    prompts, ns = STREAM_PROMPTS[:K], STREAM_LENGTHS[:K]
    texts, result = generate_streams_sim(model, vocab, prompts, ns, shift=shift, seeds=seeds)
    assert texts == generate_streams(model, vocab, prompts, ns, shift=shift, seeds=seeds)
    for s, (prompt, n) in enumerate(zip(prompts, ns)):
        session = result.sessions[s][0]
        assert session.prompt_clocks == K * (len(prompt) - 1) + 1     # one per turn
        assert session.latency == K                 # the next turn after the prompt
        assert session.gen_clocks == K * (n - 1) + 1


@pytest.mark.parametrize("K", [2, 4])
def test_streams_make_one_character_per_clock(iyoshi_models, K):
    """Every stream generating: the core as a whole emits a character every clock."""
    vocab, models = iyoshi_models
    n, prompts = 50, STREAM_PROMPTS[:K]
    ids = [vocab.encode(p) for p in prompts]
    result = simulate_streams(models["elman"], [[(p, n)] for p in ids])
    # The last stream's last prompt character goes in at clock (longest prompt - 1) * K + K
    # - 1 at most; then K * n clocks of characters, K per round.
    assert result.cycles <= K * max(map(len, ids)) + K * n + 1
    assert all(ss[0].gen_clocks == K * (n - 1) + 1 for ss in result.sessions)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), cell=st.sampled_from(["elman", "sioconv"]),
       n_vocab=st.integers(2, 5), n_hidden=st.integers(1, 5), context=st.booleans(),
       shift=st.one_of(st.none(), st.integers(0, 6)), K=st.integers(2, 6),
       stall=st.sampled_from([0.0, 0.3]))
def test_random_models_streams_equal_golden(seed, cell, n_vocab, n_hidden, context, shift, K,
                                            stall):
    K = min(K, max(DEFAULT_CUTS["argmax" if shift is None else "sampled"]))
    rng = np.random.default_rng(seed)
    model = random_recurrent(rng, cell, n_vocab, n_hidden, context)
    # Two sessions back to back per stream, stalls on both sides, characters offered out of
    # turn: every stream's state and LFSR are its own and start afresh for its second session.
    streams = [[(rng.integers(0, n_vocab, int(rng.integers(1, 4))), int(rng.integers(0, 10)))
                for _ in range(2)] for _ in range(K)]
    seeds = [int(x) for x in rng.integers(1, 1 << 16, K)]
    result = simulate_streams(model, streams, shift=shift, seed=seeds, stall=stall,
                              stall_seed=seed)
    for s, sessions in enumerate(streams):
        for (prompt, n), got in zip(sessions, result.sessions[s]):
            np.testing.assert_array_equal(got.ids, golden_ids(model, prompt, n, shift, seeds[s]))


@pytest.mark.parametrize("cuts", [(site,) for site in CUT_SITES] +
                         [("hidden", "readout"), ("readout", "sample")])
def test_every_cut_site(iyoshi_models, cuts):
    vocab, models = iyoshi_models
    K = len(cuts) + 1
    for cell in ("elman", "sioconv"):
        model = models[cell]
        shift = temperature_shift(model, 1.0) if "sample" in cuts else None
        for shift in {shift, temperature_shift(model, 1.0)}:
            prompts, ns = STREAM_PROMPTS[:K], STREAM_LENGTHS[:K]
            texts, _ = generate_streams_sim(model, vocab, prompts, ns, shift=shift,
                                            seeds=0x4321, cuts=cuts)
            assert texts == generate_streams(model, vocab, prompts, ns, shift=shift,
                                             seeds=0x4321)


def test_stream_parameters_are_checked(iyoshi_models):
    _, models = iyoshi_models
    model = models["elman"]
    for kwargs, match in [
            (dict(streams=0), r"streams must be an integer in \[1, 5\]"),
            (dict(streams=6), r"\[1, 5\]"),
            (dict(streams=2, cuts=("sample",)), "cuts hidden, act, readout, logit \\("),
            (dict(streams=3, cuts=("logit", "act")), "in that order"),
            (dict(streams=3, cuts=("act", "act")), "distinct"),
            (dict(streams=3, cuts=("act",)), "3 streams need 2"),
            (dict(streams=2, seed=(1, 2, 3)), "one per stream, 2"),
            (dict(streams=2, shift=2, seed=(1, 0)), "LFSR seed")]:
        with pytest.raises(ClockpropError, match=match):
            RecurrentCore(model, **kwargs)
    six = RecurrentCore(model, shift=1, streams=6)
    assert six.cuts == DEFAULT_CUTS["sampled"][6] and six.estimate().ff > 0
    one, two = (RecurrentCore(model, streams=k).estimate() for k in (1, 2))
    assert two.ff > one.ff + 8 * 4                  # the act registers and the ring
    # One stream's seed may be given as a one-element tuple, as for K streams.
    as_int, as_tuple = (rtlil.convert(RecurrentCore(model, shift=1, seed=s), emit_src=False)
                        for s in (0x1234, (0x1234,)))
    assert as_int == as_tuple and f"16'{0x1234:016b}" in as_int    # the LFSR's init


def test_generate_streams_is_independent_runs(iyoshi_models):
    vocab, models = iyoshi_models
    model = models["elman"]
    shift = temperature_shift(model, 2.0)
    texts = generate_streams(model, vocab, ["い", "い"], [20, 9], shift=shift, seeds=[5, 6])
    assert texts == [generate(model, vocab, "い", 20, shift=shift, seed=5),
                     generate(model, vocab, "い", 9, shift=shift, seed=6)]
    with pytest.raises(ClockpropError, match="one prompt, one length and one seed"):
        generate_streams(model, vocab, ["い", "よ"], [3], shift=shift)


# -- the command line --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("generate")
    result = clockprop(cwd, "generate", "--backend", "sim", "--prompt", "いよ", "-n", "24",
                       "--temperature", "2", "--epochs", "20")
    assert result.returncode == 0, result.stderr
    return cwd, result


def test_cli_generate_sim(cli_run):
    cwd, result = cli_run
    assert result.stdout.startswith("いよ") and len(result.stdout.strip()) == 26
    report = json.loads((cwd / "reports/iyoshi-elman/report.json").read_text())
    runs = report["runs"]
    assert runs["context"]["integer"]["det_acc"] == 1.0
    assert runs["no_context"]["integer"]["det_acc"] < 0.6
    assert runs["no_context"]["curve"][-1] > 2 * runs["context"]["curve"][-1]
    gw = report["generation"]["gateware"]
    assert gw["text_equal"] and gw["chars_per_clock"] == 1.0 and gw["latency_cycles"] == 1
    assert (cwd / "reports/iyoshi-elman/loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "forced to zero" in (cwd / "reports/iyoshi-elman/report.md").read_text()
    assert (cwd / "build/iyoshi-elman/recurrent.json").exists()


def test_cli_generate_from_model_file(cli_run):
    cwd, first = cli_run
    result = clockprop(cwd, "generate", "--model", "build/iyoshi-elman/recurrent.json",
                       "--prompt", "いよ", "-n", "24", "--temperature", "2",
                       "--backend", "sim")
    assert result.returncode == 0, result.stderr
    assert result.stdout == first.stdout


def test_cli_bad_input(tmp_path, cli_run):
    cwd, _ = cli_run
    model = ["--model", "build/iyoshi-elman/recurrent.json"]
    assert_clean_error(clockprop(cwd, "generate", *model, "--prompt", "いxよ"),
                       "outside the vocabulary", "'x'")
    assert_clean_error(clockprop(cwd, "generate", *model, "--prompt", ""), "prompt is empty")
    assert_clean_error(clockprop(cwd, "generate", *model, "--board", "nope"), "unknown board")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_clean_error(clockprop(tmp_path, "generate", "--corpus", str(empty)), "empty")
    assert_clean_error(clockprop(tmp_path, "generate", "--corpus", "missing.txt"),
                       "neither")
    big = tmp_path / "big.txt"
    big.write_text("".join(chr(0x4E00 + k) for k in range(MAX_VOCAB + 10)), encoding="utf-8")
    assert_clean_error(clockprop(tmp_path, "generate", "--corpus", str(big),
                                 "--board", "icebreaker"),
                       f"{MAX_VOCAB + 10} distinct characters", "at most")
    assert_clean_error(clockprop(tmp_path, "generate", "--corpus", "prose", "--epochs", "1",
                                 "--board", "icebreaker"), "LUTs", "larger board")
