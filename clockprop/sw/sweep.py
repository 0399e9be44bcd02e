"""Design-space sweeps: a search space in TOML, its points, their results and the Pareto front.

A search space (``clockprop sweep SPACE.toml``)::

    name = "digits_up5k"              # results in reports/sweep/<name>/
    base = "configs/digits_up5k.toml" # every point starts from this config (default: defaults)
    sampling = "grid"                 # "grid" (every combination) or "random"
    samples = 24                      # random sampling: how many points
    seed = 0                          # random sampling: the draw
    synth = "front"                   # synthesize the estimated front, "all" points, or "none"
    timeout = 1800                    # seconds one synthesis may take

    [space]                           # any config key, as for --set, and "board"
    "train.rule" = ["ed", "csb"]
    "train.hidden" = [[4], [6], [8]]
    "format.weight_bits" = {range = [3, 5]}        # integers, both ends included (step 3rd)
    "train.lr" = {uniform = [0.02, 0.1]}           # random sampling only
    "train.hidden,train.fan_in" = [[[340], [3, 34]], [[600], [3, 60]]]   # keys that go together
    board = "icebreaker"              # a scalar is fixed for every point

    [resources]                       # what one Ray task asks of a node
    train_cpus = 1
    synth_cpus = 1
    synth_memory_gb = 4

Keys joined by commas take their values together: each value is a list of one value per key.
A point is the base config with the point's keys set; its key (:func:`point_key`) is a hash
of the full resolved config and the board, so a result is found again whatever the space
that produced it.
"""

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ClockpropError
from ..core.fileio import read_toml
from ..models.config import config_keys, from_dict

__all__ = ["Space", "load_space", "points", "resolve", "point_key", "text_key", "pareto_front",
           "DEFAULT_BOARD"]

DEFAULT_BOARD = "icebreaker"
SAMPLINGS = ("grid", "random")
SYNTH = ("front", "all", "none")
_SPACE_KEYS = {"name", "base", "sampling", "samples", "seed", "synth", "timeout", "space",
               "resources"}
_RESOURCES = {"train_cpus": 1, "synth_cpus": 1, "synth_memory_gb": 4}


@dataclass(frozen=True)
class Space:
    name: str
    base: dict                       # the base config's TOML tables
    dimensions: dict                 # key -> list of values, or ("uniform", lo, hi)
    sampling: str = "grid"
    samples: int = 0
    seed: int = 0
    synth: str = "front"
    timeout: float = 1800.0
    resources: dict = field(default_factory=lambda: dict(_RESOURCES))
    path: str = ""


def _fail(path, msg):
    raise ClockpropError(f"search space {path}: {msg}")


def _check_key(path, key):
    if key == "board":
        return
    keys = config_keys()
    keys[""].discard("name")                     # every point is named by its key
    section, _, name = key.rpartition(".")
    known = keys.get(section)
    if known is None:
        _fail(path, f"unknown key {key!r}: a key is 'board', a top-level config key "
                    f"({', '.join(sorted(keys['']))}) or section.key with a section of "
                    f"{', '.join(k for k in keys if k)}")
    if name not in known:
        where = f"[{section}]" if section else "the top level"
        _fail(path, f"unknown key {key!r}: {where} has {', '.join(sorted(known))}")


def _dimension(path, key, value, sampling):
    """A space entry as the list of its values, or ``("uniform", lo, hi)``."""
    if isinstance(value, list):
        if not value:
            _fail(path, f"{key!r} is an empty list: give at least one value")
        return value
    if not isinstance(value, dict):
        return [value]
    if set(value) == {"range"}:
        r = value["range"]
        if not (isinstance(r, list) and len(r) in (2, 3) and
                all(isinstance(v, int) and not isinstance(v, bool) for v in r)):
            _fail(path, f"{key!r}: range takes [first, last] or [first, last, step] integers")
        step = r[2] if len(r) == 3 else 1
        values = list(range(r[0], r[1] + (1 if step > 0 else -1), step)) if step else []
        if not values:
            _fail(path, f"{key!r}: range {r} holds no values")
        return values
    if set(value) == {"uniform"}:
        u = value["uniform"]
        if not (isinstance(u, list) and len(u) == 2 and
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in u)
                and u[0] < u[1]):
            _fail(path, f"{key!r}: uniform takes [low, high] numbers with low < high")
        if sampling != "random":
            _fail(path, f"{key!r}: uniform needs sampling = \"random\"")
        return ("uniform", float(u[0]), float(u[1]))
    _fail(path, f"{key!r}: a value is a scalar, a list, {{range = [a, b]}} or "
                f"{{uniform = [lo, hi]}}, got {value!r}")


def load_space(path):
    """Read and check a search space file (see the module)."""
    d = read_toml(path, "search space")
    unknown = sorted(set(d) - _SPACE_KEYS)
    if unknown:
        _fail(path, f"unknown setting(s) {', '.join(unknown)}; known: "
                    f"{', '.join(sorted(_SPACE_KEYS))}")
    name = d.get("name", Path(path).stem)
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        _fail(path, f"name must be letters, digits, '_' or '-', got {name!r}")
    sampling = d.get("sampling", "grid")
    if sampling not in SAMPLINGS:
        _fail(path, f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    samples = d.get("samples", 0)
    if sampling == "random" and not (isinstance(samples, int) and samples >= 1):
        _fail(path, f"random sampling needs samples = N (N >= 1), got {samples!r}")
    synth = d.get("synth", "front")
    if synth not in SYNTH:
        _fail(path, f"synth must be one of {', '.join(SYNTH)}, got {synth!r}")
    timeout = d.get("timeout", 1800)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        _fail(path, f"timeout must be a positive number of seconds, got {timeout!r}")
    table = d.get("space")
    if not isinstance(table, dict) or not table:
        _fail(path, "a [space] table with at least one key is needed")
    for key in table:
        for part in key.split(","):
            _check_key(path, part.strip())
    dims = {key: _dimension(path, key, value, sampling) for key, value in table.items()}
    for key, values in dims.items():
        n = len(key.split(","))
        if n > 1 and (isinstance(values, tuple) or not all(
                isinstance(v, list) and len(v) == n for v in values)):
            _fail(path, f"{key!r} joins {n} keys: each of its values is a list of {n} values")
    resources = dict(_RESOURCES)
    for key, value in (d.get("resources") or {}).items():
        if key not in _RESOURCES:
            _fail(path, f"unknown [resources] key {key!r}; known: {', '.join(_RESOURCES)}")
        if not isinstance(value, (int, float)) or value <= 0:
            _fail(path, f"[resources] {key} must be a positive number, got {value!r}")
        resources[key] = value
    base = {}
    if d.get("base"):
        base = read_toml(d["base"], "base config")
    return Space(name, base, dims, sampling, samples, d.get("seed", 0), synth, float(timeout),
                 resources, str(path))


def points(space):
    """The points of ``space``: dicts of key -> value, in a fixed order (grid) or the draw of
    ``space.seed`` (random). Duplicate points appear once."""
    keys = list(space.dimensions)
    if space.sampling == "grid":
        combos = itertools.product(*(space.dimensions[k] for k in keys))
        drawn = [dict(zip(keys, values)) for values in combos]
    else:
        rng = np.random.default_rng(space.seed)
        drawn = [{k: _draw(rng, space.dimensions[k]) for k in keys}
                 for _ in range(space.samples)]
    drawn = [_split_joined(p) for p in drawn]
    unique, seen = [], set()
    for p in drawn:
        tag = json.dumps(p, sort_keys=True)
        if tag not in seen:
            seen.add(tag)
            unique.append(p)
    return unique


def _split_joined(point):
    out = {}
    for key, value in point.items():
        parts = [k.strip() for k in key.split(",")]
        out.update(zip(parts, value) if len(parts) > 1 else [(key, value)])
    return out


def _draw(rng, dim):
    if isinstance(dim, tuple):
        return round(float(rng.uniform(dim[1], dim[2])), 6)
    return dim[int(rng.integers(len(dim)))]


def resolve(space, point):
    """``(RunConfig, board name)`` of a point (raises :class:`ClockpropError` if invalid)."""
    overrides = {k: v for k, v in point.items() if k != "board"}
    run = from_dict(space.base, overrides)
    return run, point.get("board", DEFAULT_BOARD)


def point_key(run, board):
    """A point's cache key: its full config (but its name) and board, hashed."""
    d = run.to_dict()
    d.pop("name")
    return text_key(json.dumps({"config": d, "board": board}, sort_keys=True))


def text_key(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pareto_front(rows, cost="lut_estimate", gain="int_acc"):
    """The rows no other row beats: none costs no more and gains at least as much, one of
    them strictly. Rows lacking either value are left out. Sorted by cost."""
    rows = [r for r in rows if r.get(cost) is not None and r.get(gain) is not None]
    front = []
    for r in sorted(rows, key=lambda r: (r[cost], -r[gain])):
        if not front or r[gain] > front[-1][gain]:
            front.append(r)
    return front
