"""clockprop: train tiny networks with a layer-local rule, compile them to gateware.

Layers, bottom to top; each imports only the ones below it (``tests/test_layers.py``):
``core`` (errors, files, number format, link protocol), ``models`` (datasets, trainers,
golden models), ``hw`` (Amaranth components), ``boards`` (fit check, board tops, builds),
``sim`` (simulation runners, simulated boards) and ``sw`` (the command line).
"""

__version__ = "0.1.0"
