"""The simulated recurrent board: a :class:`~clockprop.boards.recurrent_top.RecurrentDeviceCore`
behind the UART model.

It is the same :class:`~clockprop.sim.top_sim.SimTransport` as the classifier's simulated
board (any core with ``rx``, ``tx`` and ``divisor`` works), so the host code that talks to a
board (``clockprop generate --port ...``) runs unchanged against the simulator.
"""

from ..boards.recurrent_top import MAX_CHARS, MAX_PROMPT, RecurrentDeviceCore
from .top_sim import SimTransport

__all__ = ["simulated_recurrent_board"]


def simulated_recurrent_board(model, vocab, *, shift=None, seed=0xACE1, divisor=4,
                              max_prompt=MAX_PROMPT, max_chars=MAX_CHARS, streams=1, **kwargs):
    """A :class:`SimTransport` to a fresh :class:`RecurrentDeviceCore` for ``model``.

    ``kwargs`` go to :class:`SimTransport` (``baud``, ``idle_chars``, ``corrupt_to_board``,
    ``corrupt_to_host``, ``vcd``).
    """
    core = RecurrentDeviceCore(model, vocab, divisor=divisor, shift=shift, seed=seed,
                               max_prompt=max_prompt, max_chars=max_chars, streams=streams)
    return SimTransport(core, **kwargs)
