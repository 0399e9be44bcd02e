"""One entry point for cycle-accurate simulation, whichever simulator runs it.

    result = simulate(model, inputs, backend="auto")      # SimResult, as pysim.simulate

``"pysim"`` is Amaranth's Python simulator: no build step, waveforms, but a few hundred to a
few thousand clocks per second for a mid-sized pipeline. ``"verilator"`` compiles the
pipeline's Verilog to C++ first (a build of tens of seconds, cached), then runs tens of
thousands of clocks per second and more. ``"auto"`` picks Verilator when it is installed and
the job is big: at least :data:`AUTO_WORK` shift-add terms times samples (the Python
simulator evaluates every term of the pipeline every clock, so that product predicts its run
time; the default is about half a minute of pysim, more than a cached Verilator run costs).
A waveform (``vcd``) always means pysim.
"""

from ..hw.arith import csd_count
from ..core.errors import ClockpropError

__all__ = ["BACKENDS", "AUTO_WORK", "SIMULATOR_NAMES", "work", "choose_backend", "simulate"]

BACKENDS = ("auto", "pysim", "verilator")
SIMULATOR_NAMES = {"pysim": "Amaranth pysim", "verilator": "Verilator"}
AUTO_WORK = 5_000_000


def work(model, n_samples):
    """Shift-add terms of the whole pipeline times the number of samples."""
    terms = sum(csd_count(layer.weight) for layer in model.layers)
    return max(terms, 1) * int(n_samples)


def choose_backend(backend, model, n_samples, *, vcd=None):
    """The concrete backend (``"pysim"`` or ``"verilator"``) that ``backend`` stands for."""
    from . import verilator

    if backend not in BACKENDS:
        raise ClockpropError(f"unknown simulator backend {backend!r}; choose one of "
                             f"{', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if vcd or work(model, n_samples) < AUTO_WORK or not verilator.available():
        return "pysim"
    return "verilator"


def simulate(model, inputs, *, backend="auto", vcd=None, **kwargs):
    """Run ``inputs`` through ``model``'s pipeline on ``backend``; see the module docstring.

    The keyword arguments are those of :func:`clockprop.sim.pysim.simulate`
    (``register_every``, ``fold``, ``stall``, ``seed``, ``progress``); the Verilator backend
    also takes ``build_dir`` and ``log``.
    """
    name = choose_backend(backend, model, len(inputs), vcd=vcd)
    if name == "verilator":
        from .verilator import simulate as run
        return run(model, inputs, vcd=vcd, **kwargs)
    from .pysim import simulate as run
    kwargs.pop("build_dir", None)
    kwargs.pop("log", None)
    return run(model, inputs, vcd=vcd, **kwargs)
