"""Write the gateware of a model as Verilog and RTLIL, the files a user takes away."""

from pathlib import Path

from amaranth.back import rtlil, verilog

from ..core.fileio import write_atomic
from .pipeline import Pipeline

__all__ = ["export"]


def export(model, out_dir, name, *, register_every=0, fold=None):
    """Write ``<out_dir>/<name>.v`` and ``<name>.il`` (top module ``name``); return the paths.

    Both texts are generated before either file is written, so a failure leaves no files.
    """
    texts = {}
    for suffix, backend in ((".il", rtlil), (".v", verilog)):
        texts[suffix] = backend.convert(
            Pipeline(model, register_every=register_every, fold=fold), name=name)
    paths = []
    for suffix, text in texts.items():
        path = Path(out_dir) / f"{name}{suffix}"
        write_atomic(path, text)
        paths.append(path)
    return paths
