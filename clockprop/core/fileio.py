"""Atomic file output: a reader never sees a half-written file, a failure leaves none."""

import os
import tempfile
import tomllib
from pathlib import Path

from .errors import ClockpropError

__all__ = ["write_atomic", "read_toml"]


def write_atomic(path, data):
    """Write ``data`` (``str`` or ``bytes``) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())        # mkstemp makes 0600; keep the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_toml(path, what):
    """The tables of TOML file ``path``; a missing, unreadable or invalid file raises
    :class:`ClockpropError` naming it as ``what`` ("config file", "search space", ...)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClockpropError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClockpropError(f"cannot read {what} {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ClockpropError(f"{what} {path} is not valid TOML: {e}") from None
