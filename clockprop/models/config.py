"""A user's model configuration: one TOML file, validated into frozen dataclasses.

    name = "digits"            # names build/<name>/, gateware/<name>/, reports/<name>/
    dataset = "digits"         # a built-in name, or an .npz/.csv file (models.userdata)
    split_seed = 0
    label = "species"          # CSV files only: the label column (no default)
    scale = "feature"          # files only: "feature", "global" or "none" (models.userdata)

    [format]                   # core.qformat.QFormat
    act_bits = 4
    weight_bits = 6

    [train]                    # models.train.TrainConfig: the model that becomes gateware
    rule = "ed"
    hidden = [8]

    [reference]                # optional: a float reference trained on the same split
    rule = "bp"
    hidden = [80]

    [hardware]                 # optional: the pipeline variant the board commands build
    fold = [64, 1]             # fold factor per layer (default: all 1, fully parallel)
    register_every = 2         # adder-tree registers every k levels (default: the board's)
    lut_bits = 6               # hidden layers of at most this many input bits per neuron
                               # become truth tables (0: never; up to 12)
    pnr_seed = 8               # nextpnr's placement seed for `clockprop bitstream` (default 1)
"""

import re
from dataclasses import dataclass, field, fields

from .datasets import DATASETS
from .userdata import SCALES, is_data_file
from ..core.errors import ClockpropError
from ..core.fileio import read_toml
from ..core.qformat import QFormat
from .train import TrainConfig, config_from_dict
from .truthtable import LUT_BITS, check_table_bits

__all__ = ["HardwareConfig", "RunConfig", "load_config", "from_dict", "config_keys"]


def _count(value, minimum):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True)
class HardwareConfig:
    """How to build the gateware: ``fold`` (one factor per layer, None: all 1) and
    ``register_every`` and ``lut_bits`` (:class:`~clockprop.hw.pipeline.Pipeline`;
    ``register_every`` None: the board's
    default, :attr:`Board.register_every <clockprop.boards.registry.Board>`, and 0 off a
    board), and the ``pnr_seed`` that
    ``clockprop bitstream`` places with. Whether each fold factor divides its layer's fan-in is
    checked once the model exists."""
    fold: tuple | None = None
    register_every: int | None = None
    pnr_seed: int = 1
    lut_bits: int = LUT_BITS

    def __post_init__(self):
        if self.fold is not None and (not isinstance(self.fold, (list, tuple)) or not all(
                _count(f, 1) for f in self.fold)):
            raise ClockpropError(f"config [hardware]: fold must be a list of positive "
                                 f"integers, one per layer, got {self.fold!r}")
        if self.register_every is not None and not _count(self.register_every, 0):
            raise ClockpropError(f"config [hardware]: register_every must be a non-negative "
                                 f"integer, got {self.register_every!r}")
        try:
            check_table_bits(self.lut_bits)
        except ClockpropError as e:
            raise ClockpropError(f"config [hardware]: {e}") from None
        if not _count(self.pnr_seed, 1):
            raise ClockpropError(f"config [hardware]: pnr_seed must be a positive integer, "
                                 f"got {self.pnr_seed!r}")

    def to_dict(self):
        return {"fold": list(self.fold) if self.fold else None,
                "register_every": self.register_every, "pnr_seed": self.pnr_seed,
                "lut_bits": self.lut_bits}


@dataclass(frozen=True)
class RunConfig:
    name: str = "digits"
    dataset: str = "digits"
    split_seed: int = 0
    label: str | None = None
    scale: str = "feature"
    fmt: QFormat = field(default_factory=QFormat)
    train: TrainConfig = field(default_factory=TrainConfig)
    reference: TrainConfig | None = None
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}",
                                                              self.name):
            raise ClockpropError(f"config: name must be a letter followed by letters, digits "
                                 f"or '_' (it names files and a Verilog module), got "
                                 f"{self.name!r}")
        self._check_data()
        if not isinstance(self.split_seed, int) or isinstance(self.split_seed, bool) \
                or self.split_seed < 0:
            raise ClockpropError(f"config: split_seed must be a non-negative integer, got "
                                 f"{self.split_seed!r}")

        self._check_tables()

    def _check_data(self):
        if not isinstance(self.dataset, str) or (self.dataset not in DATASETS
                                                 and not is_data_file(self.dataset)):
            raise ClockpropError(f"config: unknown dataset {self.dataset!r}; give a built-in "
                                 f"one ({', '.join(sorted(DATASETS))}) or an .npz or .csv "
                                 f"file")
        if self.label is not None and (not isinstance(self.label, str) or not self.label):
            raise ClockpropError(f"config: label must be a column name, got {self.label!r}")
        if self.label is not None and not self.dataset.lower().endswith(".csv"):
            raise ClockpropError(f"config: label names the label column of a CSV dataset; "
                                 f"dataset {self.dataset!r} is not a CSV file")
        if self.scale not in SCALES:
            raise ClockpropError(f"config: scale must be one of "
                                 f"{', '.join(map(repr, SCALES))}, got {self.scale!r}")

    def _check_tables(self):
        """A sparse hidden layer is meant to become truth tables: its fan-in times the
        activation bits must be within ``[hardware] lut_bits`` (unless that is 0)."""
        limit = self.hardware.lut_bits
        for l, k in enumerate(self.train.fan_in[:-1]):
            bits = k * self.fmt.act_bits
            if self.train.rule == "lut" and not limit:
                raise ClockpropError(
                    f"config: rule lut learns truth tables, which have no shift-add form: "
                    f"set [hardware] lut_bits to at least {bits} (fan_in {k} x "
                    f"{self.fmt.act_bits} activation bits), not 0")
            if limit and bits > limit:
                raise ClockpropError(
                    f"config: layer {l}'s truth tables would read {bits} input bits (fan_in "
                    f"{k} x {self.fmt.act_bits} activation bits), over [hardware] lut_bits = "
                    f"{limit}: lower fan_in to {max(limit // self.fmt.act_bits, 1)}, raise "
                    f"lut_bits (up to 12), or set lut_bits = 0 for shift-adds")

    def to_dict(self):
        return {"name": self.name, "dataset": self.dataset, "split_seed": self.split_seed,
                "label": self.label, "scale": self.scale,
                "format": self.fmt.to_dict(), "train": self.train.to_dict(),
                "reference": self.reference.to_dict() if self.reference else None,
                "hardware": self.hardware.to_dict()}


_TABLES = ("format", "train", "reference", "hardware")
_TOP = {f.name for f in fields(RunConfig)} - {"fmt", "train", "reference", "hardware"}


def config_keys():
    """Every setting a config has: ``{"": top-level keys, "format": ..., "train": ...,
    "reference": ..., "hardware": ...}`` (the keys of ``--set section.key``)."""
    train = {f.name for f in fields(TrainConfig)}
    return {"": set(_TOP), "format": {f.name for f in fields(QFormat)}, "train": train,
            "reference": train, "hardware": {f.name for f in fields(HardwareConfig)}}


def from_dict(d, overrides=None):
    """A :class:`RunConfig` from the TOML tables, then ``overrides`` (``section.key`` or
    ``key`` for the top level, as given on the command line)."""
    top = {k: v for k, v in d.items() if k not in _TABLES}
    tables = {k: dict(d.get(k) or {}) for k in _TABLES}
    for key, value in (overrides or {}).items():
        section, _, name = key.rpartition(".")
        (tables[section] if section else top)[name] = value
    for k in _TABLES:
        if not isinstance(d.get(k, {}), dict):
            raise ClockpropError(f"config: [{k}] must be a table")
    unknown = sorted(set(top) - _TOP)
    if unknown:
        raise ClockpropError(f"config: unknown setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(_TOP))} and the tables "
                             f"{', '.join(f'[{k}]' for k in _TABLES)}")
    fmt = tables["format"]
    known_fmt = {f.name for f in fields(QFormat)}
    unknown = sorted(set(fmt) - known_fmt)
    if unknown:
        raise ClockpropError(f"config: unknown [format] setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known_fmt))}")
    train, reference = (_train_config(tables[k], k) if tables[k] or k == "train" else None
                        for k in ("train", "reference"))
    hardware = tables["hardware"]
    known_hw = {f.name for f in fields(HardwareConfig)}
    unknown = sorted(set(hardware) - known_hw)
    if unknown:
        raise ClockpropError(f"config: unknown [hardware] setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known_hw))}")
    if isinstance(hardware.get("fold"), list):
        hardware["fold"] = tuple(hardware["fold"])
    return RunConfig(fmt=QFormat(**fmt), train=train, reference=reference,
                     hardware=HardwareConfig(**hardware), **top)


def _train_config(table, section):
    if isinstance(table.get("hidden"), list):
        table["hidden"] = tuple(table["hidden"])
    try:
        return config_from_dict(table)
    except ClockpropError as e:
        raise ClockpropError(f"config [{section}]: {e}") from None


def load_config(path=None, overrides=None):
    """Read a TOML config (or the defaults when ``path`` is None) and apply ``overrides``."""
    d = read_toml(path, "config file") if path is not None else {}
    return from_dict(d, overrides)
