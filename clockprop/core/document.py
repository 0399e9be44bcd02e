"""Checked JSON documents: the envelope of every clockprop model file.

A document is one JSON object with ``format`` (what it is), ``version`` (of that format) and
``sha256`` (of the canonical JSON of everything else), written atomically.
"""

import hashlib
import json
from pathlib import Path

from .errors import ClockpropError
from .fileio import write_atomic

__all__ = ["save_document", "load_document"]


def _digest(content):
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def save_document(path, kind, version, content):
    """Write ``content`` (a dict) as a ``kind`` document of ``version``."""
    content = {"format": kind, "version": version, **content}
    content["sha256"] = _digest(content)
    write_atomic(path, json.dumps(content, ensure_ascii=False, separators=(",", ":")) + "\n")


def load_document(path, kind, version, what, remedy):
    """The content of a ``kind`` document, checked; ``format``, ``version``, ``sha256`` removed.

    ``what`` names the file in messages ("model file"); ``remedy`` says how to make a new one
    ("re-run 'clockprop train'"). Every problem is a one-line :class:`ClockpropError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClockpropError(f"{what} {path} does not exist; {remedy}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClockpropError(f"cannot read {what} {path}: {e}") from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError:
        raise ClockpropError(f"{what} {path} is truncated or not JSON; {remedy}") from None
    if not isinstance(content, dict) or content.get("format") != kind:
        raise ClockpropError(f"{path} is not a clockprop {what}")
    found = content.get("version")
    if not isinstance(found, int) or found > version:
        raise ClockpropError(f"{what} {path} has format version {found!r}, newer than this "
                             f"clockprop reads ({version}); upgrade clockprop")
    if content.pop("sha256", None) != _digest(content):
        raise ClockpropError(f"{what} {path} fails its checksum (edited or corrupted); "
                             f"{remedy}")
    del content["format"], content["version"]
    return content
