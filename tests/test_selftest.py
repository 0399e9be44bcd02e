"""The self-test core and the simulated board top, end to end through the host API."""

from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from clockprop.hw.pipeline import Pipeline
from clockprop.hw.selftest import SelfTest
from clockprop.sim.top_sim import simulated_board
from clockprop.sw.board_cli import BoardClient
from clockprop.core.errors import ClockpropError
from clockprop.core.protocol import FrameType
from clockprop.core.transport import Link, LoopbackTransport

from conftest import random_model


def _split(rng, model, n):
    a = rng.integers(0, model.fmt.a_max + 1, (n, model.n_inputs))
    y = rng.integers(0, model.n_classes, n)
    return a, y


@pytest.mark.parametrize("storage", ["block", "logic"])
@pytest.mark.parametrize("register_every", [0, 1])
def test_selftest_core_counts_like_the_golden_model(register_every, storage):
    rng = np.random.default_rng(3)
    model = random_model(rng, [7, 5, 4])
    a, y = _split(rng, model, 37)
    pipe = Pipeline(model, register_every=register_every)
    st = SelfTest(a, y, act_bits=model.fmt.act_bits, n_classes=model.n_classes,
                  logit_shape=pipe.logit_shape, storage=storage)
    m = Module()
    m.submodules.pipe, m.submodules.st = pipe, st
    wiring.connect(m, st.o, pipe.i)
    wiring.connect(m, pipe.o, st.i)
    seen, idle_payloads = {}, []

    async def tb(ctx):
        for run in range(2):                    # a second start clears the counters
            ctx.set(st.start, 1)
            await ctx.tick()
            ctx.set(st.start, 0)
            while not ctx.get(st.done):
                await ctx.tick()
                if not ctx.get(st.o.valid) and ctx.get(st.o.payload.as_value()):
                    idle_payloads.append(ctx.get(st.o.payload.as_value()))
            seen[run] = (ctx.get(st.correct), ctx.get(st.total), ctx.get(st.cycles))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    expected = int(np.sum(model.predict(a) == y))
    # One sample per clock: N samples take N clocks plus the pipeline latency, the sample
    # memory's read, the label's register, the comparison's and the count's.
    # In logic, 37 samples make 3 banks of 16 and one 4-to-1 stage: address registers (7
    # copies of the 28-bit samples' address behind 2, 1 for the labels), bank and mux
    # registers.
    assert st.overhead == (4 if storage == "block" else (2 + 1 + 1) + (1 + 1 + 1) + 1)
    assert seen[0] == seen[1] == (expected, len(a), len(a) + pipe.latency + st.overhead)
    # From logic, no sample shows while none is offered (the board top ORs the sources).
    assert st.idle_zero == (storage == "logic")
    if st.idle_zero:
        assert idle_payloads == []


def test_selftest_rejects_bad_labels():
    with pytest.raises(ClockpropError, match="labels"):
        SelfTest([[1, 2]], [5], act_bits=2, n_classes=3, logit_shape=8)
    with pytest.raises(ClockpropError, match="at least one"):
        SelfTest([], [], act_bits=2, n_classes=3, logit_shape=8)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    model = random_model(rng, [6, 5, 3])
    a, y = _split(rng, model, 25)
    return model, a, y


# The board tops' forms: iCE40 (one clock, the logits through argmax in block RAM), ECP5
# (samples cross two registers into the pipeline, the host link on a clock of its own;
# boards.top.CROSSING, LINK_CLOCK), and the two apart.
FORMS = {"ice40": dict(crossing=0, logit_memory=True),
         "ecp5": dict(crossing=2, link_clock=True, selftest_storage="logic"),
         "crossing": dict(crossing=2), "link_clock": dict(crossing=0, link_clock=True)}


@pytest.mark.parametrize("form", FORMS)
def test_simulated_top_through_the_host_api(small, form):
    model, a, y = small
    with Link(simulated_board(model, selftest=(a, y), **FORMS[form]), timeout=600) as link:
        client = BoardClient(link, model)
        client.ping()
        result = client.classify(a[:4])
        np.testing.assert_array_equal(result.logits, model.forward(a[:4]))
        np.testing.assert_array_equal(result.classes, model.predict(a[:4]))
        st = client.selftest()
        assert (st.correct, st.total) == (int(np.sum(model.predict(a) == y)), len(a))
        assert st.cycles == (len(a) + link.transport.core.latency +
                             link.transport.core.selftest.overhead)
        # The board stays usable after a self-test, and a second self-test waits for its own
        # end (not the first one's): the same count.
        np.testing.assert_array_equal(client.classify(a[4:6]).classes, model.predict(a[4:6]))
        assert client.selftest() == st
        assert link.resends == 0


def test_simulated_top_answers_bad_requests_with_errors(small):
    model, a, y = small
    with Link(simulated_board(model), timeout=600) as link:
        with pytest.raises(ClockpropError, match="UNKNOWN_TYPE"):
            link.request(0x42, b"xyz")
        with pytest.raises(ClockpropError, match="LENGTH"):
            link.request(FrameType.SAMPLE, b"\x01")
        with pytest.raises(ClockpropError, match="UNKNOWN_TYPE"):   # no self-test stored
            link.request(FrameType.SELFTEST)
        core = link.transport.core
        with pytest.raises(ClockpropError, match="LENGTH"):         # longer than the buffer
            link.request(FrameType.PING, b"x" * (core.max_payload + 1))
        link.ping(b"")
        link.ping(b"still alive")


@pytest.mark.parametrize("form", ["ice40", "ecp5"])
@pytest.mark.parametrize("direction", ["to_board", "to_host"])
def test_corrupted_frames_are_caught_and_retried(small, direction, form):
    model, a, y = small
    # Flip a bit in the first payload byte of the first SAMPLE frame, or of the first RESULT.
    corrupt = {f"corrupt_{direction}": {4: 0x10}}
    with Link(simulated_board(model, **corrupt, **FORMS[form]), timeout=120, retries=2) as link:
        result = BoardClient(link, model).classify(a[:2])
        np.testing.assert_array_equal(result.logits, model.forward(a[:2]))
        assert link.resends == 1


def test_board_that_does_not_answer_times_out(small):
    model, a, y = small
    link = Link(LoopbackTransport(lambda data: b""), timeout=0.05, retries=1)
    with pytest.raises(ClockpropError, match="no answer"):
        BoardClient(link, model).classify(a[:1])


def test_board_running_another_model_is_reported(small):
    model, a, y = small
    other = random_model(np.random.default_rng(9), [6, 5, 7])
    with Link(simulated_board(other), timeout=600) as link:
        with pytest.raises(ClockpropError, match="another model"):
            BoardClient(link, model).classify(a[:1])


def _digits_model(tmp_path_factory):
    path = Path("build/digits/model.json")
    if not path.exists():
        from clockprop.sw.cli import main
        path = tmp_path_factory.mktemp("digits") / "model.json"
        assert main(["train", "--config", "configs/digits.toml", "--out", str(path)]) == 0
    from clockprop.models.intmodel import IntModel
    return IntModel.load(path)


@pytest.mark.slow
def test_digits_selftest_in_simulation_matches_the_golden_count(tmp_path_factory):
    """The whole top, UART included, replays the digits test split and reports exactly the
    golden model's count."""
    from clockprop.sw.cli import test_split
    model = _digits_model(tmp_path_factory)
    a, y = test_split(model)
    with Link(simulated_board(model, selftest=(a, y)), timeout=3600) as link:
        st = BoardClient(link, model).selftest()
    assert st.correct == int(np.sum(model.predict(a) == y))
    assert st.total == len(a)


@pytest.mark.parametrize("form", ["ice40", "ecp5"])
def test_folded_top_through_the_host_api(small, form):
    """A folded pipeline behind the board top: the input register waits for the folded
    layer (the host's sample does not cross registers then: it waits for ``i.ready``), and
    answers and the self-test count stay exact."""
    model, a, y = small
    fold = [3, 5]
    with Link(simulated_board(model, fold=fold, selftest=(a, y), **FORMS[form]),
              timeout=600) as link:
        client = BoardClient(link, model)
        np.testing.assert_array_equal(client.classify(a[:3]).logits, model.forward(a[:3]))
        st = client.selftest()
        core = link.transport.core
        assert core.interval == 5
        assert (st.correct, st.total) == (int(np.sum(model.predict(a) == y)), len(a))
        # One sample every `interval` clocks, then the latency of the last one.
        assert st.cycles == ((len(a) - 1) * core.interval + core.latency + 1 +
                             core.selftest.overhead)


@pytest.mark.parametrize("ratio", [0.37, 1.0, 5.3])
def test_link_clock_at_any_ratio(small, ratio):
    """The host link on a clock of its own, slower or faster than the pipeline's or the same:
    requests and answers cross by toggles, and answers and counts stay exact."""
    model, a, y = small
    with Link(simulated_board(model, selftest=(a, y), **FORMS["ecp5"], clock_ratio=ratio),
              timeout=600) as link:
        client = BoardClient(link, model)
        np.testing.assert_array_equal(client.classify(a[:3]).logits, model.forward(a[:3]))
        st = client.selftest()
        assert (st.correct, st.total) == (int(np.sum(model.predict(a) == y)), len(a))
        assert st.cycles == (len(a) + link.transport.core.latency +
                             link.transport.core.selftest.overhead)
