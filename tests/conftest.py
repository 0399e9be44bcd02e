import os
import subprocess
import sys

import numpy as np
from hypothesis import settings

from clockprop.models.intmodel import IntLayer, IntModel
from clockprop.core.qformat import QFormat

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


def clockprop(cwd, *args, timeout=600):
    """Run the ``clockprop`` command line in ``cwd``, as a user would."""
    return subprocess.run([sys.executable, "-m", "clockprop.sw.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def assert_clean_error(result, *needles):
    """A failed command: non-zero exit, no traceback, a message naming ``needles``."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
