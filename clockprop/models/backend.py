"""The array backends of the trainer: numpy (the default) or PyTorch on a CPU or a CUDA GPU.

The learning rules (:mod:`clockprop.models.rules`) are written once, against the few operations
a backend offers; Python operators (``+``, ``*``, ``@``, ``.T``, indexing, comparisons) work
the same on numpy arrays and torch tensors and are used directly.

    xp = get_backend("cpu")        # "numpy", "cpu" (torch on the CPU) or "cuda"
    w = xp.asarray(np.zeros((3, 4)))
    xp.to_numpy(xp.clip(w, 0.0, 1.0))

Randomness never comes from a backend: initial weights and sample orders are drawn from one
``np.random.default_rng(seed)`` and then moved, so every backend starts from the same
numbers. Torch computes in float64, like numpy, so a numpy run and a torch run of the same
config agree to float rounding.
"""

import numpy as np

from ..core.errors import ClockpropError

__all__ = ["DEVICES", "Backend", "NumpyBackend", "TorchBackend", "get_backend", "NUMPY"]

DEVICES = ("numpy", "cpu", "cuda")
TORCH_VERSION = "2.13.0"


class Backend:
    """The operations the rules need beyond Python operators (numpy semantics)."""

    name = ""           # the TrainConfig.device value
    description = ""    # for reports: where and with what the trainer ran

    def asarray(self, x):
        """A float array on this backend from a numpy array (or a backend array)."""
        raise NotImplementedError

    def index(self, idx):
        """An integer index array (sample order, class tags) on this backend."""
        raise NotImplementedError

    def to_numpy(self, x):
        """A float64 numpy array that shares no memory with ``x``."""
        raise NotImplementedError


class NumpyBackend(Backend):
    name = "numpy"
    description = "cpu (numpy)"

    asarray = staticmethod(lambda x: np.asarray(x, dtype=np.float64))
    index = staticmethod(np.asarray)
    to_numpy = staticmethod(lambda x: np.array(x, dtype=np.float64))
    clip = staticmethod(np.clip)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    einsum = staticmethod(np.einsum)

    @staticmethod
    def concat(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def maximum(x, value):
        """Elementwise ``max(x, value)`` for a scalar ``value``."""
        return np.maximum(x, value)

    @staticmethod
    def amax(x, axis, keepdims=False):
        return x.max(axis=axis, keepdims=keepdims)

    @staticmethod
    def to_float(mask):
        """A boolean array as 0.0 / 1.0."""
        return mask.astype(np.float64)


class TorchBackend(Backend):
    """PyTorch tensors (float64) on ``device`` ``"cpu"`` or ``"cuda"``."""

    def __init__(self, device):
        import torch
        self.torch = torch
        self.name = device
        self.device = torch.device(device)
        self.dtype = torch.float64
        where = ("cpu" if device == "cpu" else
                 f"cuda ({torch.cuda.get_device_name(self.device)})")
        self.description = f"{where} (torch {torch.__version__}, float64)"

    def asarray(self, x):
        if isinstance(x, self.torch.Tensor):
            return x.to(device=self.device, dtype=self.dtype)
        return self.torch.as_tensor(np.asarray(x, dtype=np.float64), device=self.device)

    def index(self, idx):
        return self.torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.device)

    def to_numpy(self, x):
        if isinstance(x, self.torch.Tensor):
            return x.detach().to("cpu", self.dtype).numpy().copy()
        return np.array(x, dtype=np.float64)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)

    def exp(self, x):
        return self.torch.exp(x)

    def log(self, x):
        return self.torch.log(x)

    def einsum(self, spec, *operands):
        return self.torch.einsum(spec, *operands)

    def concat(self, xs, axis):
        return self.torch.cat(xs, dim=axis)

    def maximum(self, x, value):
        return self.torch.clamp(x, min=value)

    def amax(self, x, axis, keepdims=False):
        return self.torch.amax(x, dim=axis, keepdim=keepdims)

    def to_float(self, mask):
        return mask.to(self.dtype)

    def synchronize(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)


NUMPY = NumpyBackend()


def get_backend(device="numpy"):
    """The backend for a ``TrainConfig.device`` value.

    Raises :class:`ClockpropError` when PyTorch is missing or CUDA is asked for and no CUDA
    GPU is visible.
    """
    if device == "numpy":
        return NUMPY
    if device not in DEVICES:
        raise ClockpropError(f"train: device must be one of {', '.join(DEVICES)}, "
                             f"got {device!r}")
    try:
        import torch
    except ImportError:
        raise ClockpropError(f"train: device {device!r} needs PyTorch, which is not installed; "
                             f"pip install torch=={TORCH_VERSION} (or use "
                             f"device = \"numpy\")") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise ClockpropError("train: device 'cuda' asked for but no CUDA GPU is visible; "
                             "use device = \"cpu\" or \"numpy\"")
    return TorchBackend(device)
