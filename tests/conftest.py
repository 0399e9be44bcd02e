import os

import numpy as np
from hypothesis import settings

from clockprop.sw.intmodel import IntLayer, IntModel
from clockprop.sw.qformat import QFormat

# The Amaranth simulator compiles every design it runs: keep property tests few but varied.
settings.register_profile("default", max_examples=30, deadline=None)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def random_model(rng, shape, fmt=QFormat(act_bits=4, weight_bits=6, bias_bits=16),
                 density=0.7, frac=None):
    """A random integer model: weights anywhere in the format, some exactly zero."""
    layers = []
    for n_in, n_out in zip(shape, shape[1:]):
        w = rng.integers(-fmt.w_max, fmt.w_max + 1, (n_out, n_in))
        w[rng.random(w.shape) > density] = 0
        b = rng.integers(-fmt.b_max // 8, fmt.b_max // 8 + 1, n_out)
        layers.append(IntLayer(w.astype(np.int64), b.astype(np.int64),
                               frac if frac is not None else int(rng.integers(1, 8))))
    return IntModel(fmt, tuple(layers), {"name": "random"})
