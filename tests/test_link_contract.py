"""The framed link's contract, the same for all three device cores (classifier, fabric
trainer, text generator), each simulated behind its UART: PING echoes, a corrupted frame is
caught by the CRC and sent again, an unknown type and a wrong length get error frames, and
the board answers normally after all of them."""

import numpy as np
import pytest

from clockprop.core.errors import ClockpropError
from clockprop.core.protocol import FrameType
from clockprop.core.qformat import QFormat
from clockprop.core.transport import Link
from clockprop.models.inttrain import IntTrainConfig, IntTrainer
from clockprop.models.recurrent import RecurrentConfig, quantize_recurrent, train_recurrent
from clockprop.models.text import Vocab
from clockprop.sim.recurrent_top_sim import simulated_recurrent_board
from clockprop.sim.top_sim import simulated_board
from clockprop.sim.train_top_sim import simulated_train_board

from conftest import random_model


def _classifier(**kwargs):
    return simulated_board(random_model(np.random.default_rng(5), [6, 5, 3]), **kwargs)


def _trainer(**kwargs):
    cfg = IntTrainConfig(rule="ed", hidden=(2,), weight_bits=6, frac=(3, 3), shift=(5, 6),
                         e_shift=3, e_max=3, drop=(0, 1), gate_margin=2, anneal=1, seed=5)
    return simulated_train_board(IntTrainer(cfg, 5, 3), **kwargs)


def _generator(**kwargs):
    text = "いよいしよい" * 4
    vocab = Vocab.from_text(text)
    net = train_recurrent(vocab.encode(text), len(vocab),
                          RecurrentConfig(cell="elman", hidden=4, epochs=2)).net
    return simulated_recurrent_board(quantize_recurrent(net, QFormat()), vocab, **kwargs)


# Each core, and its main request type (whose payload has a fixed or bounded form).
CORES = {"classify": (_classifier, FrameType.SAMPLE),
         "onchip": (_trainer, FrameType.TRAIN),
         "generate": (_generator, FrameType.GENERATE)}


@pytest.mark.parametrize("feature", sorted(CORES))
def test_link_contract(feature):
    make, main_type = CORES[feature]
    # Byte 5 from the host is the PING payload's second byte: the board sees a bad CRC,
    # drops the frame and asks for it again (an ERROR CRC frame), and the retry gets through.
    with Link(make(corrupt_to_board={5: 0x10}), timeout=600, retries=2) as link:
        assert link.ping(b"hello").payload == b"hello"
        assert link.resends == 1
        with pytest.raises(ClockpropError, match="UNKNOWN_TYPE"):
            link.request(0x42, b"xyz")
        with pytest.raises(ClockpropError, match="LENGTH"):
            link.request(main_type, b"\x01")
        assert link.ping(b"again").payload == b"again"
        assert link.resends == 1
