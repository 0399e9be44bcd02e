"""clockprop: train tiny networks with a layer-local rule, compile them to gateware.

The import package is assembled from the top-level folders (see pyproject.toml):
``clockprop.sw`` (trainer, golden model, reports, CLI), ``clockprop.hw`` (Amaranth
components), ``clockprop.sim`` (simulation runners) and ``clockprop.boards`` (board tops).
"""

__version__ = "0.1.0"
