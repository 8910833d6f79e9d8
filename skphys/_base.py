"""What every torch-backed skphys estimator shares.

- device choice (``device="auto"`` -> CUDA when available),
- seeding from ``random_state``,
- validation of trajectory arrays ``X`` (channels-last, see :mod:`skphys.datasets`),
- batch iteration for ``transform`` (works on lazy array-likes too),
- mixed precision on GPU,
- pickling that stores modules on the CPU, so a GPU-trained model loads on a CPU-only machine.

The estimators themselves live in their own private modules and only call these helpers.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_random_state

__all__ = [
    "resolve_device",
    "torch_seed",
    "check_trajectories",
    "iter_batches",
    "autocast",
    "TorchEstimatorMixin",
    "to_channels_first",
]


def resolve_device(device="auto"):
    """Return a :class:`torch.device` for ``device``.

    ``"auto"`` gives ``cuda`` when a GPU is visible and ``cpu`` otherwise. A CUDA device asked
    for explicitly on a machine without one raises a ``ValueError``.
    """
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"device={device!r} is not a valid torch device") from exc
    else:
        raise TypeError(f"device must be 'auto', a string or a torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return dev


def torch_seed(random_state):
    """Draw a 31-bit integer seed from ``random_state`` (None, int or RandomState)."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def torch_generator(seed, device="cpu"):
    """A :class:`torch.Generator` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def is_lazy(X):
    """True for array-likes that are not numpy arrays (e.g. :class:`skphys.datasets.LazyWindows`)."""
    return not isinstance(X, np.ndarray) and hasattr(X, "shape") and hasattr(X, "__getitem__")


def check_trajectories(
    X,
    *,
    spatial_dims=(1, 2),
    min_frames=1,
    min_space=None,
    n_channels=None,
    estimator=None,
    allow_lazy=True,
    check_finite=True,
):
    """Validate a trajectory array ``X`` of shape ``(n, T, *space, C)``.

    Parameters
    ----------
    X : array-like
        Trajectories, channels-last: ``(n, T, X, C)`` (1-D systems) or ``(n, T, H, W, C)`` (2-D).
    spatial_dims : tuple of int
        Accepted numbers of spatial axes.
    min_frames : int
        Minimum number of frames ``T``.
    min_space : int or sequence of int, optional
        Minimum size of each spatial axis.
    n_channels : int, optional
        Required number of channels (the one seen in ``fit``).
    estimator : str, optional
        Name used in error messages.
    allow_lazy : bool
        Pass lazy array-likes through unchanged (their batches are checked when read).
    check_finite : bool
        Raise on NaN or inf.

    Returns
    -------
    X : ndarray of float32, or the lazy array-like unchanged.
    """
    who = f"{estimator}: " if estimator else ""
    if allow_lazy and is_lazy(X):
        shape = tuple(X.shape)
    else:
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        try:
            X = np.asarray(X)
        except Exception as exc:  # ragged lists and similar
            raise TypeError(f"{who}X must be an array of trajectories, got {type(X).__name__}") from exc
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise TypeError(f"{who}X must be numeric, got dtype {X.dtype}")
        if np.iscomplexobj(X):
            raise TypeError(f"{who}X must be real; store real and imaginary parts as two channels")
        X = np.ascontiguousarray(X, dtype=np.float32)
        shape = X.shape
    allowed = sorted(2 + d + 1 for d in spatial_dims)
    if len(shape) not in allowed:
        layouts = " or ".join(
            "(n_samples, n_frames, " + ", ".join(["n_points"] if d == 1 else ["ny", "nx"][:d]) + ", n_channels)"
            for d in sorted(spatial_dims)
        )
        raise ValueError(f"{who}X must have {' or '.join(map(str, allowed))} dimensions {layouts}; got shape {shape}")
    if shape[0] < 1:
        raise ValueError(f"{who}X has no samples (shape {shape})")
    if shape[1] < min_frames:
        raise ValueError(f"{who}X has {shape[1]} frames but at least {min_frames} are needed")
    if min_space is not None:
        space = shape[2:-1]
        mins = [min_space] * len(space) if isinstance(min_space, numbers.Integral) else list(min_space)
        if any(s < m for s, m in zip(space, mins)):
            raise ValueError(f"{who}X has spatial size {tuple(space)} but at least {tuple(mins)} is needed")
    if n_channels is not None and shape[-1] != n_channels:
        raise ValueError(f"{who}X has {shape[-1]} channels but the estimator was fitted with {n_channels}")
    if check_finite and isinstance(X, np.ndarray) and not np.isfinite(X).all():
        raise ValueError(f"{who}X contains NaN or infinite values")
    return X


def check_finite_batch(batch, who=""):
    """Raise ``ValueError`` if a batch read from a lazy array holds NaN or inf."""
    if not np.isfinite(batch).all():
        raise ValueError(f"{who}X contains NaN or infinite values")
    return batch


def iter_batches(X, batch_size):
    """Yield ``(start, batch)`` with float32 numpy batches of ``X`` (array or lazy array-like)."""
    n = X.shape[0]
    for start in range(0, n, batch_size):
        batch = X[start : start + batch_size]
        yield start, np.ascontiguousarray(np.asarray(batch), dtype=np.float32)


def to_channels_first(x):
    """``(n, T, *space, C)`` tensor -> ``(n, C, T, *space)``."""
    return x.movedim(-1, 1)


def autocast(device, enabled=True):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TorchEstimatorMixin:
    """Pickling and device handling for estimators holding fitted ``torch.nn.Module`` attributes.

    Fitted modules are stored on the CPU when pickled, so a model trained on a GPU loads on a
    machine without one. ``_module_on(name)`` returns the module on the device the estimator
    should run on now (``self.device`` resolved at call time).
    """

    def __getstate__(self):
        state = self.__dict__.copy()
        for key, value in state.items():
            if isinstance(value, torch.nn.Module) and key.endswith("_"):
                state[key] = copy.deepcopy(value).to("cpu")
            elif isinstance(value, torch.Tensor):
                state[key] = value.detach().to("cpu")
        return state

    def _runtime_device(self):
        """Device for inference: ``self.device``, falling back to the CPU (with a warning) when a
        model whose ``device`` names CUDA is used on a machine without a GPU."""
        device = getattr(self, "device", "auto")
        if not torch.cuda.is_available() and str(device).startswith("cuda"):
            warnings.warn(f"device={device!r} is not available here; running on the CPU", RuntimeWarning)
            return torch.device("cpu")
        return resolve_device(device)

    def _module_on(self, name, device):
        module = getattr(self, name)
        if next(module.parameters(), torch.empty(0)).device != device:
            module = module.to(device)
            setattr(self, name, module)
        return module
