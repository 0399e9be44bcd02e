"""Hidden neurons as exact truth tables of their input bits.

A hidden neuron ``j`` of an :class:`~clockprop.models.intmodel.IntLayer` computes the next
layer's activation ``clip((w_j . a + b_j) >> frac, 0, A)`` from the ``act_bits``-bit
activations ``a``. Only its inputs with a non-zero weight matter, so with ``n`` of them it is a
function of ``n * act_bits`` bits, and enumerating the golden model over every input code
gives its truth table: exact by construction, whatever the weights.

An input code packs the neuron's inputs in the order of :attr:`NeuronTable.inputs`, input
``k`` in bits ``[k * act_bits, (k + 1) * act_bits)``, so ``code = sum(a[inputs[k]] << (k *
act_bits))`` and ``table[code]`` is the neuron's output.
"""

from dataclasses import dataclass

import numpy as np

from ..core.errors import ClockpropError

__all__ = ["LUT_BITS", "MAX_LUT_BITS", "NeuronTable", "neuron_table", "layer_tables",
           "table_bits", "check_layer_fits", "check_table_bits", "pack_codes"]

LUT_BITS = 6          # default limit: a LUT4 fabric builds 6-input functions from a few LUTs
MAX_LUT_BITS = 12     # the most a user may configure (4096 entries per neuron)


@dataclass(frozen=True)
class NeuronTable:
    """The function of one hidden neuron: the inputs it reads, and its output per code."""
    inputs: tuple        # indices of the layer inputs with a non-zero weight, ascending
    table: np.ndarray    # int64 [2 ** (len(inputs) * act_bits)]: the activation per code

    @property
    def n_bits(self):
        return int(len(self.table)).bit_length() - 1


def pack_codes(a, inputs, act_bits):
    """Input codes of activations ``a`` [N, n_in] for a neuron reading ``inputs``."""
    a = np.asarray(a, dtype=np.int64)
    code = np.zeros(len(a), dtype=np.int64)
    for k, i in enumerate(inputs):
        code |= a[:, i] << (k * act_bits)
    return code


def neuron_table(layer, j, fmt):
    """The truth table of neuron ``j`` of hidden layer ``layer`` in format ``fmt``: its
    learned table for a table layer (``layer.table``), else its golden model enumerated."""
    inputs = tuple(int(i) for i in np.flatnonzero(layer.weight[j]))
    if layer.table is not None:
        return NeuronTable(inputs, np.asarray(layer.table[j], dtype=np.int64))
    ab = fmt.act_bits
    codes = np.arange(1 << (len(inputs) * ab), dtype=np.int64)
    acc = np.full(len(codes), int(layer.bias[j]), dtype=np.int64)
    for k, i in enumerate(inputs):
        acc += ((codes >> (k * ab)) & fmt.a_max) * int(layer.weight[j, i])
    return NeuronTable(inputs, fmt.activate(acc, layer.frac))


def layer_tables(layer, fmt):
    """One :class:`NeuronTable` per neuron of a hidden layer."""
    return [neuron_table(layer, j, fmt) for j in range(layer.n_out)]


def table_bits(layer, fmt):
    """Input bits of the layer's widest truth table: non-zero weights of its densest neuron
    times ``act_bits``."""
    return int((layer.weight != 0).sum(axis=1).max(initial=0)) * fmt.act_bits


def check_layer_fits(layer, fmt, limit, name="a truth-table layer"):
    """Raise :class:`ClockpropError` when a neuron of ``layer`` reads more than ``limit``
    input bits, naming the layer, its bits and what to change."""
    bits = table_bits(layer, fmt)
    if bits > limit:
        densest = int((layer.weight != 0).sum(axis=1).max())
        raise ClockpropError(
            f"{name} needs truth tables of {bits} input bits ({densest} inputs x "
            f"{fmt.act_bits} bits) and the limit is {limit} (lut_bits): train it with "
            f"fan_in <= {max(limit // fmt.act_bits, 1)}, or raise lut_bits (up to "
            f"{MAX_LUT_BITS}; wider tables cost 2**(bits-4) LUT4 and more per output bit)")


def check_table_bits(limit):
    """``limit`` (``[hardware] lut_bits``) as an int in ``0..MAX_LUT_BITS`` (0: no tables)."""
    if (not isinstance(limit, (int, np.integer)) or isinstance(limit, bool)
            or not 0 <= limit <= MAX_LUT_BITS):
        raise ClockpropError(f"lut_bits must be an integer in [0, {MAX_LUT_BITS}] (0: no "
                             f"truth-table layers), got {limit!r}")
    return int(limit)
