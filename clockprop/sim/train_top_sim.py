"""The simulated training board: a :class:`~clockprop.boards.train_top.TrainDeviceCore` behind
the UART model.

The same :class:`~clockprop.sim.top_sim.SimTransport` as the classifier's simulated board, so
the host code that trains a board (``clockprop train-onchip --port ...``) runs unchanged
against the simulator.
"""

import sys

from ..boards.train_top import TrainDeviceCore
from .top_sim import SimTransport

__all__ = ["simulated_train_board"]


def simulated_train_board(trainer, *, divisor=4, serial=True, fold=1, stored=None, **kwargs):
    """A :class:`SimTransport` to a fresh :class:`TrainDeviceCore` starting from ``trainer``'s
    weights and LFSR state.

    ``kwargs`` go to :class:`SimTransport` (``baud``, ``idle_chars``, ``corrupt_to_board``,
    ``corrupt_to_host``, ``vcd``).
    """
    core = TrainDeviceCore(trainer, divisor=divisor, serial=serial, fold=fold, stored=stored)
    # pysim writes the (wide) weights port's mask as a decimal literal: lift Python's limit
    # on int <-> str conversion while it compiles
    old_limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return SimTransport(core, **kwargs)
    finally:
        sys.set_int_max_str_digits(old_limit)
