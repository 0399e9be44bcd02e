"""Text generation on the simulated gateware: :class:`hw.recurrent.RecurrentCore` in pysim.

:func:`generate_sim` is :func:`clockprop.models.recurrent.generate` run on the cycle-accurate
Amaranth simulation of the core; the two return the same text, character for character.
:func:`generate_streams_sim` is :func:`~clockprop.models.recurrent.generate_streams` on the
C-slow core (``streams=K``), every stream's text equal to the golden model's.
"""

from dataclasses import dataclass

import numpy as np

from ..hw.recurrent import RecurrentCore
from ..core.errors import ClockpropError
from ..models.recurrent import prompt_ids
from .pysim import run_testbench

__all__ = ["GenSession", "GenResult", "simulate_generation", "generate_sim",
           "simulate_predictions", "simulate_streams", "generate_streams_sim"]


@dataclass
class GenSession:
    """What the gateware did with one prompt."""
    ids: np.ndarray         # int64 [n], the generated character ids
    prompt_clocks: int      # clocks from the first prompt character offered to the last taken
    latency: int            # clocks from the last prompt character taken to the first output
    gen_clocks: int         # clocks from the first generated character to the last, inclusive

    @property
    def chars_per_clock(self):
        """Generated characters per clock once primed (1.0 for the core without stalls)."""
        return len(self.ids) / self.gen_clocks if self.gen_clocks else float("nan")


@dataclass
class GenResult:
    sessions: list          # one GenSession per prompt
    cycles: int             # clocks simulated in all
    seconds: float
    cost: object            # the core's hw.arith.Cost tally

    @property
    def cycles_per_second(self):
        return self.cycles / self.seconds if self.seconds else float("nan")


def simulate_generation(model, sessions, *, shift=None, seed=0xACE1, stall=0.0, stall_seed=0,
                        vcd=None):
    """Run the core over ``sessions``, a list of ``(prompt_ids, n)``, back to back.

    The testbench offers every prompt character as soon as the core takes it, and takes
    every generated character at once; with ``stall`` > 0 it also withholds input validity
    and output readiness at random (probability ``stall`` per clock). ``vcd``: waveform path.
    """
    dut = RecurrentCore(model, shift=shift, seed=seed)
    sessions = _check_sessions(model, sessions, (1 << dut.count_bits) - 1)
    feed = [(int(c), k == len(p) - 1, n) for p, n in sessions for k, c in enumerate(p)]
    total_out = sum(n for _, n in sessions)
    accepted, produced, out = [], [], []
    clock = {"cycles": 0}

    async def testbench(ctx):
        rng = np.random.default_rng(stall_seed)
        cycle = taken = 0
        # Run until every prompt is in, every character out, and the core is idle again.
        while taken < len(feed) or len(out) < total_out or cycle < 2:
            offer = taken < len(feed) and not (stall and rng.random() < stall)
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.i.valid, offer)
            if offer:
                char, last, count = feed[taken]
                ctx.set(dut.i.payload.char, char)
                ctx.set(dut.i.payload.last, last)
                ctx.set(dut.i.payload.count, count)
            ctx.set(dut.o.ready, ready)
            _, _, i_ready, o_valid, o_char = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            if offer and i_ready:
                accepted.append(cycle)
                taken += 1
            if o_valid and ready:
                produced.append(cycle)
                out.append(int(o_char))
            cycle += 1
            if cycle > 64 + 4 * (len(feed) + total_out) / (1 - stall) ** 2:
                raise AssertionError("the recurrent core stopped making progress")
        clock["cycles"] = cycle

    seconds = run_testbench(dut, testbench, vcd)
    accepted = [(t, None) for t in accepted]
    produced = list(zip(produced, out))
    return GenResult(_timings(sessions, accepted, produced), clock["cycles"], seconds,
                     dut.cost)


def _check_sessions(model, sessions, limit):
    """``sessions`` as ``(prompt ids, n)`` arrays, checked for a core of ``model``."""
    sessions = [(np.asarray(p, dtype=np.int64).ravel(), int(n)) for p, n in sessions]
    for prompt, n in sessions:
        if not len(prompt):
            raise ClockpropError("the prompt is empty; give at least one character to "
                                 "start from")
        if prompt.min() < 0 or prompt.max() >= model.n_vocab:
            raise ClockpropError(f"prompt character ids must be in [0, {model.n_vocab - 1}]")
        if not 0 <= n <= limit:
            raise ClockpropError(f"the core generates 0 to {limit} characters per prompt, "
                                 f"asked for {n}")
    return sessions


def _timings(sessions, accepted, produced):
    """One :class:`GenSession` per session, from the clocks its characters went in and out."""
    results, fed, done = [], 0, 0
    for prompt, n in sessions:
        first_in, last_in = accepted[fed][0], accepted[fed + len(prompt) - 1][0]
        times = [t for t, _ in produced[done:done + n]]
        results.append(GenSession(
            ids=np.array([c for _, c in produced[done:done + n]], dtype=np.int64),
            prompt_clocks=last_in - first_in + 1,
            latency=times[0] - last_in if n else 0,
            gen_clocks=times[-1] - times[0] + 1 if n else 0))
        fed += len(prompt)
        done += n
    return results


def simulate_streams(model, streams, *, shift=None, seed=0xACE1, cuts=None, stall=0.0,
                     stall_seed=0, vcd=None):
    """Run the C-slow core (``RecurrentCore(streams=K)``, ``K = len(streams)``) with
    ``streams[s]``, a list of ``(prompt_ids, n)`` sessions, on stream ``s``.

    The testbench offers, every clock, the next prompt character of the stream whose turn
    it is (``turn``), and takes every generated character at once; with ``stall`` > 0 it
    also withholds input validity and output readiness at random (probability ``stall``
    per clock), and offers another stream's character instead (which the core must not
    take). Returns a :class:`GenResult` whose ``sessions`` is one list per stream.
    """
    K = len(streams)
    if K == 1:                  # the one-clock loop: no turns, no stream field
        if cuts:
            raise ClockpropError(f"one stream is the uncut loop; got the cuts {cuts!r}")
        seed = seed if isinstance(seed, int) else seed[0]
        result = simulate_generation(model, streams[0], shift=shift, seed=seed, stall=stall,
                                     stall_seed=stall_seed, vcd=vcd)
        return GenResult([result.sessions], result.cycles, result.seconds, result.cost)
    dut = RecurrentCore(model, shift=shift, seed=seed, streams=K, cuts=cuts)
    streams = [_check_sessions(model, ss, (1 << dut.count_bits) - 1) for ss in streams]
    feeds = [[(int(c), k == len(p) - 1, n) for p, n in ss for k, c in enumerate(p)]
             for ss in streams]
    totals = [sum(n for _, n in ss) for ss in streams]
    accepted = [[] for _ in range(K)]          # (clock, char) per stream
    produced = [[] for _ in range(K)]
    clock = {"cycles": 0}

    async def testbench(ctx):
        rng = np.random.default_rng(stall_seed)
        cycle = 0
        budget = 64 + 4 * K * (sum(map(len, feeds)) + sum(totals)) / (1 - stall) ** 2
        while (any(len(a) < len(f) for a, f in zip(accepted, feeds)) or
               any(len(p) < n for p, n in zip(produced, totals)) or cycle < 2):
            pending = [s for s in range(K) if len(accepted[s]) < len(feeds[s])]
            s = ctx.get(dut.turn)
            if stall and pending and rng.random() < stall:
                s = int(rng.choice(pending))            # maybe not its turn
            offer = s in pending and not (stall and rng.random() < stall)
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.i.valid, offer)
            if offer:
                char, last, count = feeds[s][len(accepted[s])]
                ctx.set(dut.i.payload, {"char": char, "last": last, "count": count,
                                        "stream": s})
            ctx.set(dut.o.ready, ready)
            _, _, i_ready, o_valid, o_out = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            if offer and i_ready:
                accepted[s].append((cycle, char))
            if o_valid and ready:
                produced[o_out.stream].append((cycle, int(o_out.char)))
            cycle += 1
            if cycle > budget:
                raise AssertionError("the recurrent core stopped making progress")
        clock["cycles"] = cycle

    seconds = run_testbench(dut, testbench, vcd)
    for s in range(K):
        if [c for _, c in accepted[s]] != [c for c, _, _ in feeds[s]]:
            raise AssertionError(f"stream {s} took other prompt characters than offered")
    sessions = [_timings(ss, a, p) for ss, a, p in zip(streams, accepted, produced)]
    return GenResult(sessions, clock["cycles"], seconds, dut.cost)


def generate_streams_sim(model, vocab, prompts, ns, shift=None, seeds=0xACE1, cuts=None):
    """:func:`~clockprop.models.recurrent.generate_streams`, computed by the simulated
    C-slow core with ``len(prompts)`` streams. Returns ``(texts, result)``."""
    if len(prompts) != len(ns):
        raise ClockpropError(f"one length per prompt: {len(prompts)} prompts, {len(ns)} "
                             f"lengths")
    ids = [prompt_ids(model, vocab, p, n) for p, n in zip(prompts, ns)]
    result = simulate_streams(model, [[(p, n)] for p, n in zip(ids, ns)], shift=shift,
                              seed=seeds, cuts=cuts)
    return [vocab.decode(ss[0].ids) for ss in result.sessions], result


def generate_sim(model, vocab, prompt, n, shift=None, seed=0xACE1, vcd=None):
    """:func:`clockprop.models.recurrent.generate`, computed by the simulated gateware.

    Returns ``(text, result)``: the ``n`` generated characters and the :class:`GenResult`.
    """
    ids = prompt_ids(model, vocab, prompt, n)
    result = simulate_generation(model, [(ids, n)], shift=shift, seed=seed, vcd=vcd)
    return vocab.decode(result.sessions[0].ids), result


def simulate_predictions(model, ids, *, shift=None, seed=0xACE1):
    """The gateware's next-character choice after each of ``ids[:-1]``, fed as one prompt.

    With ``shift=None`` this is ``argmax(model.run(ids[:-1]), axis=1)``, read from the
    core's ``predict`` port one prompt character per clock. Returns ``(predicted, cycles)``.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    if len(ids) < 2:
        raise ClockpropError("scoring needs a text of at least two characters")
    if ids.min() < 0 or ids.max() >= model.n_vocab:
        raise ClockpropError(f"character ids must be in [0, {model.n_vocab - 1}]")
    dut = RecurrentCore(model, shift=shift, seed=seed)
    prompt = ids[:-1]
    predicted = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload.count, 0)
        for k, char in enumerate(prompt):
            ctx.set(dut.i.payload.char, int(char))
            ctx.set(dut.i.payload.last, k == len(prompt) - 1)
            _, _, ready, choice = await ctx.tick().sample(dut.i.ready, dut.predict)
            assert ready, "the core must take one prompt character per clock"
            predicted.append(int(choice))

    run_testbench(dut, testbench)
    return np.array(predicted, dtype=np.int64), len(prompt)
