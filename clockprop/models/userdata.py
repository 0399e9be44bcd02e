"""A user's own data: an NPZ or CSV file becomes a :class:`~clockprop.models.datasets.Dataset`.

Files:

- **NPZ** with ``x_train, y_train, x_test, y_test`` (the split is the file's), or ``x, y``
  (the stratified shuffled 75/25 split of the built-in digits, fixed by ``split_seed``).
  ``x`` is two-dimensional (one row per sample) or an image stack, flattened per sample.
- **CSV** with a header row: the column named by ``label`` holds the classes, every other
  column is an input; split as for ``x, y``.

Labels may be numbers or strings; the sorted distinct training labels become classes
``0..C-1`` (their names are kept in :attr:`DataSource.classes`).

Inputs are scaled to ``[0, 1]`` by ``scale``, computed on the training split only:

- ``"feature"`` (the default): per input column, ``(x - min) / (max - min)``; a constant
  column becomes 0.
- ``"global"``: one min and max over all training inputs (keeps the relative grey levels of
  images: the raw 0..16 digits become exactly the built-in ``x / 16``).
- ``"none"``: the inputs are already in ``[0, 1]``; anything outside is refused.

Test inputs (and any later data, :func:`apply_scale`) use the training split's min and max and
are clipped to ``[0, 1]``. The model file stores the rule, the minima and maxima, the file's
SHA-256 and the class names, so that the same data is found again (:func:`check_source`).
"""

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ClockpropError

__all__ = ["SCALES", "DataSource", "is_data_file", "load_file", "load_samples",
           "apply_scale", "sha256_of", "check_source"]

SCALES = ("feature", "global", "none")
SUFFIXES = (".npz", ".csv")
TEST_FRACTION = 0.25


def is_data_file(name):
    """Whether dataset ``name`` names a file (by its suffix) rather than a built-in dataset."""
    return isinstance(name, str) and Path(name).suffix.lower() in SUFFIXES


@dataclass(frozen=True)
class DataSource:
    """Where a file dataset came from and how it was scaled: what a model file records."""
    path: str
    sha256: str
    label: str | None
    scale: str
    lo: tuple
    hi: tuple
    classes: tuple

    def to_dict(self):
        return {"path": self.path, "sha256": self.sha256, "label": self.label,
                "scale": self.scale, "min": list(self.lo), "max": list(self.hi),
                "classes": list(self.classes)}


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- reading ----------------------------------------------------------------------------

def _npz_arrays(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ClockpropError(f"dataset {path}: not a readable NPZ file ({e})") from None


def _read_npz(path):
    arrays = _npz_arrays(path)
    split_keys, whole_keys = ("x_train", "y_train", "x_test", "y_test"), ("x", "y")
    if all(k in arrays for k in split_keys):
        return tuple(arrays[k] for k in split_keys)
    if all(k in arrays for k in whole_keys):
        return arrays["x"], arrays["y"]
    raise ClockpropError(f"dataset {path}: an NPZ dataset holds x_train, y_train, x_test, "
                         f"y_test (or x and y); it has {', '.join(sorted(arrays)) or 'nothing'}")


def _csv_rows(path):
    """The header and the non-empty data rows of a CSV file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ClockpropError(f"dataset {path}: cannot read it as CSV ({e})") from None
    if len(rows) < 2:
        raise ClockpropError(f"dataset {path}: a CSV dataset needs a header row and data rows")
    return [h.strip() for h in rows[0]], rows[1:]


def _read_csv(path, label, required=True):
    """Inputs and labels of a CSV file; with ``required`` False a file without the label
    column gives every column as inputs and labels None."""
    if not label and required:
        raise ClockpropError(f"dataset {path} is a CSV file: name its label column with "
                             f"label = \"...\" in the config (or --set label=...)")
    header, rows = _csv_rows(path)
    if label not in header and not required:
        return _csv_numbers(path, header, rows, None), None
    if label not in header:
        raise ClockpropError(f"dataset {path} has no column {label!r} (the label); its "
                             f"columns are {', '.join(header)}")
    col = header.index(label)
    labels = [row[col].strip() if len(row) == len(header) else "" for row in rows]
    return _csv_numbers(path, header, rows, col), _numeric_labels(np.asarray(labels))


def _csv_numbers(path, header, rows, label_col):
    x = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ClockpropError(f"dataset {path}, line {line}: {len(row)} cells, the header "
                                 f"has {len(header)}")
        values = []
        for c, (name, cell) in enumerate(zip(header, row)):
            if c == label_col:
                continue
            try:
                values.append(float(cell))
            except ValueError:
                raise ClockpropError(f"dataset {path}, line {line}, column {name!r}: "
                                     f"{cell.strip()!r} is not a number") from None
        x.append(values)
    return np.asarray(x, dtype=np.float64)


def _numeric_labels(y):
    """CSV labels are numbers where every one parses as a number, else strings."""
    try:
        values = y.astype(np.float64)
    except ValueError:
        return y
    return values.astype(np.int64) if np.all(values == np.round(values)) else values


def _as_inputs(x, path, what):
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ClockpropError(f"dataset {path}: {what} holds no samples")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ClockpropError(f"dataset {path}: {what} must be real numbers, got {x.dtype}")
    x = x.reshape(len(x), -1).astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, column = map(int, np.argwhere(bad)[0])
        raise ClockpropError(f"dataset {path}: {what} has {int(bad.sum())} NaN or infinite "
                             f"value(s), the first in sample {row}, input {column}; drop or "
                             f"impute them first")
    return x


def _check_pair(x, y, path, what):
    y = np.asarray(y).reshape(-1)
    if len(x) != len(y):
        raise ClockpropError(f"dataset {path}: {len(x)} {what}samples but {len(y)} labels; "
                             f"give one label per sample")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ClockpropError(f"dataset {path}: the {what}labels hold NaN or infinite values")
    return y


# -- scaling ----------------------------------------------------------------------------

def _fit_scale(x, rule, path):
    if rule == "feature":
        return x.min(axis=0), x.max(axis=0)
    if rule == "global":
        return np.full(x.shape[1], x.min()), np.full(x.shape[1], x.max())
    if x.min() < 0 or x.max() > 1:
        raise ClockpropError(f"dataset {path}: scale = \"none\" needs inputs in [0, 1], the "
                             f"training inputs span [{x.min():g}, {x.max():g}]; use scale = "
                             f"\"feature\" or \"global\"")
    return np.zeros(x.shape[1]), np.ones(x.shape[1])


def apply_scale(x, lo, hi):
    """Inputs ``x`` scaled by the training split's ``lo``/``hi`` and clipped to ``[0, 1]``."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    span = hi - lo
    safe = np.where(span > 0, span, 1.0)
    scaled = np.where(span > 0, (x - lo) / safe, 0.0)
    return np.clip(scaled, 0.0, 1.0)


# -- the dataset ------------------------------------------------------------------------

def load_file(path, split_seed=0, *, label=None, scale="feature"):
    """The :class:`~clockprop.models.datasets.Dataset` in file ``path`` (see the module)."""
    from .datasets import Dataset, _stratified_split

    if scale not in SCALES:
        raise ClockpropError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    path = Path(path)
    if not path.is_file():
        raise ClockpropError(f"dataset file {path} does not exist (give an .npz or .csv file, "
                             f"relative to the current folder, or a built-in dataset name)")
    csv_file = path.suffix.lower() == ".csv"
    if not csv_file and label:
        raise ClockpropError(f"label names a CSV column; dataset {path} is an NPZ file, "
                             f"whose labels are y (or y_train, y_test)")
    arrays = _read_csv(path, label) if csv_file else _read_npz(path)
    if len(arrays) == 2:
        x = _as_inputs(arrays[0], path, "x")
        y = _check_pair(x, arrays[1], path, "")
        _check_classes(y, path, "the labels")
        xtr, ytr, xte, yte = _stratified_split(x, y, TEST_FRACTION, split_seed)
        split = (f"stratified shuffled {100 - round(100 * TEST_FRACTION)}/"
                 f"{round(100 * TEST_FRACTION)} split, split seed {split_seed}")
    else:
        xtr, xte = (_as_inputs(a, path, k) for a, k in zip(arrays[::2], ("x_train", "x_test")))
        ytr, yte = (_check_pair(x, a, path, k) for x, a, k in
                    zip((xtr, xte), arrays[1::2], ("training ", "test ")))
        if xtr.shape[1] != xte.shape[1]:
            raise ClockpropError(f"dataset {path}: x_train has {xtr.shape[1]} inputs per "
                                 f"sample, x_test {xte.shape[1]}")
        split = "the file's own train/test split"
    classes = _check_classes(ytr, path, "the training labels")
    unseen = sorted(set(yte.tolist()) - set(classes.tolist()))
    if unseen:
        raise ClockpropError(f"dataset {path}: the test split holds class(es) "
                             f"{', '.join(map(str, unseen[:5]))} never seen in training; "
                             f"give every class training samples")
    lo, hi = _fit_scale(xtr, scale, path)
    source = DataSource(str(path), sha256_of(path), label, scale, tuple(lo.tolist()),
                        tuple(hi.tolist()), tuple(c.item() for c in classes))
    index = {c: i for i, c in enumerate(source.classes)}
    ytr, yte = (np.array([index[v] for v in y.tolist()], dtype=np.int64) for y in (ytr, yte))
    statement = (f"{path} (sha256 {source.sha256[:16]}), {xtr.shape[1]} inputs scaled by "
                 f"{_SCALE_WORDS[scale]}, {len(classes)} classes"
                 f"{f' from column {label!r}' if label else ''}; {split}: {len(ytr)} train / "
                 f"{len(yte)} test")
    return Dataset(str(path), apply_scale(xtr, lo, hi), ytr, apply_scale(xte, lo, hi), yte,
                   len(classes), statement, source)


_SCALE_WORDS = {"feature": "per-input min-max of the training split",
                "global": "one min-max over the training split",
                "none": "nothing (already in [0, 1])"}


def _check_classes(y, path, what):
    classes = np.unique(y)
    if len(classes) < 2:
        raise ClockpropError(f"dataset {path}: {what} hold a single class "
                             f"({classes[0] if len(classes) else 'none'}); a classifier "
                             f"needs at least two")
    return classes


def check_source(model_meta):
    """Raise unless the data file a model was trained on is still the same file."""
    source = model_meta.get("data")
    if not source:
        return
    path = Path(source["path"])
    if not path.is_file():
        raise ClockpropError(f"the model was trained on {path}, which no longer exists; "
                             f"put the file back (sha256 {source['sha256'][:16]}) or retrain")
    digest = sha256_of(path)
    if digest != source["sha256"]:
        raise ClockpropError(f"{path} has changed since the model was trained on it (sha256 "
                             f"{digest[:16]}, the model's {source['sha256'][:16]}); restore "
                             f"it or retrain the model")


def load_samples(path, meta, n_inputs):
    """Samples of a data file for a trained model, scaled as its training data was: the
    inputs and the labels as class numbers (None where the file has none).

    An NPZ file gives ``x_test`` (and ``y_test``) or ``x`` (and ``y``); a CSV file gives
    every row, its label column (the model's ``label``) if present.
    """
    path = Path(path)
    source = meta.get("data") or {}
    if not path.is_file():
        raise ClockpropError(f"data file {path} does not exist")
    if path.suffix.lower() == ".csv":
        x, y = _read_csv(path, source.get("label"), required=False)
    elif path.suffix.lower() == ".npz":
        x, y = _read_npz_samples(path)
    else:
        raise ClockpropError(f"data file {path}: give an .npz or .csv file")
    x = _as_inputs(x, path, "the inputs")
    if x.shape[1] != n_inputs:
        raise ClockpropError(f"data file {path} has {x.shape[1]} inputs per sample; the model "
                             f"takes {n_inputs}")
    if source:
        x = apply_scale(x, source["min"], source["max"])
    elif x.min() < 0 or x.max() > 1:
        raise ClockpropError(f"data file {path}: the model was trained on a built-in dataset, "
                             f"whose inputs are in [0, 1]; these span [{x.min():g}, "
                             f"{x.max():g}]")
    if y is None:
        return x, None
    y = _check_pair(x, y, path, "")
    classes = source.get("classes") or list(range(meta.get("n_classes", 0)))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in y.tolist() if v not in index}, key=str)
    if unknown:
        raise ClockpropError(f"data file {path}: label(s) {', '.join(map(str, unknown[:5]))} "
                             f"are not classes of the model ({', '.join(map(str, classes))})")
    return x, np.array([index[v] for v in y.tolist()], dtype=np.int64)


def _read_npz_samples(path):
    arrays = _npz_arrays(path)
    for xk, yk in (("x_test", "y_test"), ("x", "y")):
        if xk in arrays:
            return arrays[xk], arrays.get(yk)
    raise ClockpropError(f"data file {path}: an NPZ file of samples holds x_test (or x); it "
                         f"has {', '.join(sorted(arrays)) or 'nothing'}")
